"""neuro-plasticity's ActivityModulator as the neuromodulator of neuro-spiking's Network, driving
three-factor STDP step by step.

The reference written here recomputes, from the spikes the network recorded, the modulation of
every step with Python sets (novelty from Jaccard similarities, surprise from a predicted output
activity, reward; HebLLM's gains, decays and clip) and replays three-factor STDP
(e ← e·exp(−dt/τ_e) + pair STDP, Δw = η·m·e, then w ← max(w, 0)) synapse by synapse in float64.
Delays of 3 steps make the simulator advance in blocks of K = 3, so the per-step modulation
inside a block is exercised.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuro_plasticity import (
    CSR,
    ActivityModulator,
    ActivityModulatorParams,
    chain,
    clip,
    event_driven,
    modulate,
    on_topology,
    pair_stdp,
    three_factor_stdp,
)
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import Network, Population, Projection, SpikeSource

DT = 1.0
A_PLUS, A_MINUS, TAU, TAU_E, LR = 0.02, 0.025, 20.0, 50.0, 0.5
NOVELTY_GAIN = 2.0


def _network(hook_kind: str) -> tuple[Network, Projection]:
    lif = LIFParams(tau_mem_ms=20.0, dt_ms=DT, reset="hard", v_threshold=1.0)
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="pre", size=5),
        Population(name="post", size=4, lif=lif),
    ]
    pre_i = [j for i in range(4) for j in range(5) if (i + j) % 3]
    post_i = [i for i in range(4) for j in range(5) if (i + j) % 3]
    proj = Projection.from_edges(
        "pre", "post", n_post=4, pre_index=pre_i, post_index=post_i, weight=0.3, delay_ms=3 * DT
    )
    topo = CSR(proj.crow_indices, proj.col_indices, 5)
    if hook_kind == "three_factor":
        rule = three_factor_stdp(
            tau_e_ms=TAU_E,
            lr=LR,
            dt_ms=DT,
            a_plus=A_PLUS,
            a_minus=A_MINUS,
            tau_plus_ms=TAU,
            tau_minus_ms=TAU,
        )
        hook = on_topology(rule, topo)
    else:
        rule = chain(
            pair_stdp(a_plus=A_PLUS, a_minus=A_MINUS, dt_ms=DT, tau_plus_ms=TAU, tau_minus_ms=TAU),
            modulate(),
            clip(w_min=0.0, w_max=1.0),
        )
        hook = event_driven(rule, topo, backend="events")  # type: ignore[assignment]
    # novelty gain 2 instead of 8 so that m is not pinned at the clip by random spike sets
    mod = ActivityModulator(ActivityModulatorParams(novelty_gain=NOVELTY_GAIN), output=slice(5, 9))
    net = Network(
        popl, [proj], dt_ms=DT, plasticity={0: hook}, neuromodulator=mod, dtype=torch.float64
    )
    return net, proj


def _reference_modulation(
    spikes: np.ndarray, predicted: np.ndarray, reward: np.ndarray, out: slice
) -> list[float]:
    nov, sur, rew = 0.2, 0.0, 0.0
    seen: list[set[int]] = []
    ms = []
    for t in range(spikes.shape[0]):
        cur = set(np.flatnonzero(spikes[t]).tolist())
        nov, sur, rew = nov * 0.95, sur * 0.9, rew * 0.8
        if cur:
            if len(seen) + 1 < 5:
                nov = 0.5
            else:
                past = seen[-10:]
                nov = 1 - sum(len(cur & h) / len(cur | h) for h in past) / len(past)
            seen.append(cur)
        if not np.isnan(predicted[t]).any():
            sur = float(np.abs(spikes[t, out].astype(float) - predicted[t]).mean())
        if not np.isnan(reward[t]):
            rew = min(max(float(reward[t]), 0.0), 1.0)
        ms.append(min(max(1.5 + NOVELTY_GAIN * nov + 3 * sur + 2 * rew, 0.1), 5.0))
    return ms


def _replay(
    proj: Projection, pre: np.ndarray, post: np.ndarray, m: list[float], kind: str
) -> np.ndarray:
    rows, cols = proj.row_indices.tolist(), proj.col_indices.tolist()
    w = proj.weight.double().tolist()
    e = [0.0] * len(w)
    x, y = [0.0] * pre.shape[1], [0.0] * post.shape[1]
    d, d_e = math.exp(-DT / TAU), math.exp(-DT / TAU_E)
    for t in range(pre.shape[0]):
        x, y = [v * d for v in x], [v * d for v in y]
        for s, (i, j) in enumerate(zip(rows, cols)):
            stdp = A_PLUS * x[j] * post[t, i] - A_MINUS * y[i] * pre[t, j]
            if kind == "three_factor":
                e[s] = e[s] * d_e + stdp
                w[s] = max(w[s] + LR * m[t] * e[s], 0.0)
            else:
                w[s] = max(min(w[s] + m[t] * stdp, 1.0), 0.0)
        x = [v + float(pre[t, j]) for j, v in enumerate(x)]
        y = [v + float(post[t, i]) for i, v in enumerate(y)]
    return np.array(w)


@pytest.mark.parametrize("kind", ["three_factor", "event_modulated"])
def test_modulation_from_activity_drives_stdp_step_by_step(kind: str) -> None:
    net, proj = _network(kind)
    n = 160
    g = torch.Generator().manual_seed(0)
    src = torch.rand(n, 5, generator=g) < 0.15
    kick = torch.zeros(n, net.size, dtype=torch.float64)
    kick[:, 5:] = (torch.rand(n, 4, generator=g) < 0.08).double() * 2.0
    predicted = torch.full((n, 4), math.nan, dtype=torch.float64)
    predicted[::7] = torch.rand(len(range(0, n, 7)), 4, generator=g).double()
    reward = torch.full((n,), math.nan, dtype=torch.float64)
    reward[[30, 90, 91]] = torch.tensor([1.0, 0.4, 2.0], dtype=torch.float64)
    inputs = {"predicted": predicted, "reward": reward}
    s1, r1 = net.run(
        70,
        inject=kick[:70],
        source_spikes={"pre": src[:70]},
        modulator_inputs={k: v[:70] for k, v in inputs.items()},
    )
    s2, r2 = net.run(
        n - 70,
        s1,
        inject=kick[70:],
        source_spikes={"pre": src[70:]},
        modulator_inputs={k: v[70:] for k, v in inputs.items()},
    )
    spikes = np.concatenate(
        [torch.cat([r.spikes["pre"], r.spikes["post"]], dim=1).numpy() for r in (r1, r2)]
    )
    assert spikes[:, 5:].sum() > 10
    want_m = _reference_modulation(spikes, predicted.numpy(), reward.numpy(), slice(5, 9))
    got_m = torch.cat([r1.modulation, r2.modulation]).numpy()
    np.testing.assert_allclose(got_m, want_m, rtol=1e-12)
    assert min(want_m) < 4.0 < max(want_m)  # the modulation actually varies
    want_w = _replay(proj, spikes[:, :5], spikes[:, 5:], want_m, kind)
    np.testing.assert_allclose(s2.weights[0].numpy(), want_w, rtol=1e-9, atol=1e-12)
    assert np.abs(want_w - 0.3).max() > 1e-3


def test_constant_modulator_is_refused_with_a_neuromodulator() -> None:
    net, _ = _network("three_factor")
    with pytest.raises(ValueError, match="modulator must be None"):
        net.run(3, modulator=1.0)
    plain = Network(net.populations, net.projections, dt_ms=DT)
    with pytest.raises(ValueError, match="modulator_inputs"):
        plain.run(3, modulator_inputs={"reward": torch.zeros(3)})
    with pytest.raises(ValueError, match="n_steps"):
        net.run(3, modulator_inputs={"reward": torch.zeros(4)})
