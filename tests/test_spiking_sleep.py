"""Wake → sleep → wake with neuro-plasticity's two-regime STDP and activity-driven modulation
inside neuro-spiking's simulator, against a synapse-by-synapse float64 reference written here.

The reference replays, on the spikes the network recorded, HebLLM's modulation (Python sets),
pair STDP in both regimes (fast: τ = 20 ms; slow: 0.2× rate, τ = 40 ms; each with its own
traces), ``modulate`` and ``clip(0, 1)``; during sleep the stored pattern is replayed with
0.3·m, then synapses with w < 0.01 are pruned and the survivors of presynaptic neurons with
more than 50 spikes turn slow.
"""

from __future__ import annotations

import math

import numpy as np
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
    two_regime_stdp,
)
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import Network, Population, Projection, SpikeSource
from neuro_spiking.sleep_phase import raster, sleep

A_PLUS, A_MINUS, TAU, NOVELTY_GAIN = 0.02, 0.021, 20.0, 2.0
W0 = [0.4, 0.005, 0.4, 0.4, 0.012, 0.4]  # rows post0 (pre 0..2), post1 (pre 0..2)


def _network() -> tuple[Network, Projection]:
    lif = LIFParams(tau_mem_ms=20.0, dt_ms=1.0, reset="hard", v_threshold=1.0)
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="pre", size=3),
        Population(name="post", size=2, lif=lif),
    ]
    proj = Projection.from_edges(
        "pre",
        "post",
        n_post=2,
        pre_index=[0, 1, 2, 0, 1, 2],
        post_index=[0, 0, 0, 1, 1, 1],
        weight=torch.tensor(W0),
        delay_ms=1.0,
    )
    rule = two_regime_stdp(
        a_plus=A_PLUS, a_minus=A_MINUS, transforms=(modulate(), clip(w_min=0.0, w_max=1.0))
    )
    hook = on_topology(rule, CSR(proj.crow_indices, proj.col_indices, 3))
    mod = ActivityModulator(ActivityModulatorParams(novelty_gain=NOVELTY_GAIN))
    net = Network(
        popl, [proj], dt_ms=1.0, plasticity={0: hook}, neuromodulator=mod, dtype=torch.float64
    )
    return net, proj


class _Reference:
    def __init__(self, proj: Projection) -> None:
        self.rows, self.cols = proj.row_indices.tolist(), proj.col_indices.tolist()
        self.w = proj.weight.double().tolist()
        self.alive = [True] * len(self.w)
        self.slow = [False] * len(self.w)
        # traces per regime: (pre x, post y)
        self.tr = {tau: ([0.0] * 3, [0.0] * 2) for tau in (TAU, 2 * TAU)}
        self.nov, self.seen = 0.2, []  # type: ignore[var-annotated]

    def modulation(self, fired: set[int]) -> float:
        self.nov *= 0.95
        if fired:
            if len(self.seen) + 1 < 5:
                self.nov = 0.5
            else:
                past = self.seen[-10:]
                self.nov = 1 - sum(len(fired & h) / len(fired | h) for h in past) / len(past)
            self.seen.append(fired)
        return min(max(1.5 + NOVELTY_GAIN * self.nov, 0.1), 5.0)

    def step(self, spikes: np.ndarray, scale: float = 1.0) -> float:
        m = scale * self.modulation(set(np.flatnonzero(spikes).tolist()))
        pre, post = spikes[:3].astype(float), spikes[3:].astype(float)
        for tau, (x, y) in self.tr.items():
            d = math.exp(-1.0 / tau)
            x[:] = [v * d for v in x]
            y[:] = [v * d for v in y]
        for s, (i, j) in enumerate(zip(self.rows, self.cols)):
            tau, rate = (2 * TAU, 0.2) if self.slow[s] else (TAU, 1.0)
            x, y = self.tr[tau]
            dw = rate * (A_PLUS * x[j] * post[i] - A_MINUS * y[i] * pre[j]) * m
            new = max(min(self.w[s] + dw, 1.0), 0.0)
            self.w[s] = new if self.alive[s] else 0.0
        for x, y in self.tr.values():
            x[:] = [v + p for v, p in zip(x, pre)]
            y[:] = [v + p for v, p in zip(y, post)]
        return m


def _drive(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.zeros(n, 3, dtype=torch.bool)
    src[offset::10, 0] = True  # 105 spikes in 1050 steps
    src[offset + 4 :: 25, 1] = True  # 42
    src[offset + 3 :: 7, 2] = True  # 150
    kick = torch.zeros(n, 5, dtype=torch.float64)
    kick[offset + 2 :: 10, 3] = 2.0  # post0 follows pre0
    kick[offset + 1 :: 7, 4] = 2.0  # post1 precedes pre2
    return src, kick


def test_wake_sleep_wake_equals_the_reference() -> None:
    net, proj = _network()
    src, kick = _drive(1050, 0)
    awake, res = net.run(1050, inject=kick, source_spikes={"pre": src})
    wake_raster = raster(net, res.spikes)
    pattern = wake_raster[-60:]
    slept, report = sleep(net, awake, pattern)
    src2, kick2 = _drive(120, 5)
    final, res2 = net.run(120, slept, inject=kick2, source_spikes={"pre": src2})

    ref = _Reference(proj)
    for t in range(1050):
        ref.step(wake_raster[t].numpy())
    want_m = [ref.step(pattern[t].numpy(), scale=0.3) for t in range(60)]
    ref.alive = [w >= 0.01 for w in ref.w]
    ref.w = [w if a else 0.0 for w, a in zip(ref.w, ref.alive)]
    counts = wake_raster[:, :3].sum(0).tolist()
    ref.slow = [a and counts[j] > 50 for a, j in zip(ref.alive, ref.cols)]
    for t in range(120):
        ref.step(raster(net, res2.spikes)[t].numpy())

    assert counts == [105, 42, 150]
    np.testing.assert_allclose(report.modulation.numpy(), want_m, rtol=1e-12)
    n_alive, n_slow = sum(ref.alive), sum(ref.slow)
    assert report.synapses_before == (6,)
    assert report.synapses_after == (n_alive,)
    assert report.slow == (n_slow,)
    assert 0 < n_slow < n_alive < 6  # something was pruned, some survivors slow, some not
    assert torch.equal(final.alive[0], torch.tensor(ref.alive))
    np.testing.assert_allclose(final.weights[0].numpy(), ref.w, rtol=1e-9, atol=1e-12)
    assert max(abs(a - b) for a, b in zip(ref.w, W0)) > 1e-2


def test_event_driven_hook_sleeps_like_the_dense_rule() -> None:
    """``event_driven(chain(pair_stdp, modulate, clip))`` through wake, sleep (replay, pruning)
    and wake again gives the dense rule's weights; pruned synapses stay at 0 under both."""
    rule = chain(pair_stdp(a_plus=A_PLUS, a_minus=A_MINUS), modulate(), clip(w_min=0.0, w_max=1.0))
    out = []
    for event in (False, True):
        net, proj = _network()
        topo = CSR(proj.crow_indices, proj.col_indices, 3)
        hook = event_driven(rule, topo, backend="events") if event else on_topology(rule, topo)
        net = Network(
            net.populations,
            net.projections,
            dt_ms=1.0,
            plasticity={0: hook},
            neuromodulator=net.neuromodulator,
            dtype=torch.float64,
        )
        src, kick = _drive(300, 0)
        awake, res = net.run(300, inject=kick, source_spikes={"pre": src})
        slept, report = sleep(net, awake, raster(net, res.spikes)[-40:])
        src2, kick2 = _drive(100, 5)
        final, _ = net.run(100, slept, inject=kick2, source_spikes={"pre": src2})
        out.append((final, report))
    (dense, r_dense), (ev, r_ev) = out
    assert r_dense.synapses_after == r_ev.synapses_after
    assert r_dense.synapses_after[0] < 6
    assert torch.equal(dense.alive[0], ev.alive[0])
    assert bool((ev.weights[0][~ev.alive[0]] == 0).all())
    torch.testing.assert_close(ev.weights[0], dense.weights[0], rtol=1e-10, atol=1e-12)
