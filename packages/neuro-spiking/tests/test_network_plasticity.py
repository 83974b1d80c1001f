"""Plasticity inside blocks of K = min_delay/dt steps, event-driven hooks, and a pure ``run``.

Two independent references written here:

* ``_replay_pair_stdp``: pair STDP (traces decay, weight change from the decayed traces, then the
  traces are bumped; Morrison et al. 2008) replayed one synapse and one step at a time on the
  spike trains the network recorded, with clipping to ``[0, 1]`` or soft bounds, followed by
  ``w ← max(w, 0)`` (Dale's law) every step.
* ``_simulate_plastic``: a whole network simulated one step at a time with per-synapse weights
  that change every step (a spike carries the weight of its synapse at its emission step).
  The rule used there keeps every number a multiple of 2⁻⁷, so the network must agree with it
  bit for bit, spikes included.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from neuro_spiking.lif import LIFParams
from neuro_spiking.network import (
    EventPlasticityHook,
    Network,
    PlasticityHook,
    Population,
    Projection,
    random_projection,
)

DT = 0.1


def _lif(refractory_steps: int = 0) -> LIFParams:
    return LIFParams(
        tau_mem_ms=10.0,
        dt_ms=DT,
        reset="hard",
        v_threshold=1.0,
        v_reset=0.0,
        refractory_ms=refractory_steps * DT,
    )


# --------------------------------------------------------------------------- pair STDP hook


class _PairTraces(NamedTuple):
    x: torch.Tensor  # [n_pre]
    y: torch.Tensor  # [n_post]


class PairSTDPHook:
    """Pair STDP on a projection's CSR synapses, as ``neuro_plasticity``'s
    ``chain(pair_stdp(...), clip(w_min=0, w_max=1))`` (``bound="additive"``) or
    ``pair_stdp(bound="soft")``; written here because this package must not import it."""

    def __init__(
        self, proj: Projection, n_pre: int, *, a_plus: float, a_minus: float, bound: str
    ) -> None:
        self.rows, self.cols, self.n_pre = proj.row_indices, proj.col_indices, n_pre
        self.a_plus, self.a_minus, self.bound = a_plus, a_minus, bound
        self.dec = math.exp(-DT / 20.0)

    def init(self, weight: torch.Tensor, batch: int = 1) -> _PairTraces:
        return _PairTraces(torch.zeros(self.n_pre), torch.zeros(int(self.rows.max()) + 1))

    def __call__(self, pre, post, state, weight, modulator=None):  # type: ignore[no-untyped-def]
        x, y = state.x * self.dec, state.y * self.dec
        ltp = post[0, self.rows] * x[self.cols]
        ltd = y[self.rows] * pre[0, self.cols]
        if self.bound == "soft":
            dw = self.a_plus * (1.0 - weight) * ltp - self.a_minus * weight * ltd
        else:
            dw = (weight + (self.a_plus * ltp - self.a_minus * ltd)).clamp(0.0, 1.0) - weight
        return dw, _PairTraces(x + pre[0], y + post[0])


def _replay_pair_stdp(
    pre: np.ndarray, post: np.ndarray, proj: Projection, hook: PairSTDPHook
) -> np.ndarray:
    """Step-by-step, synapse-by-synapse replay in float64 on recorded spikes ``[T, n]``."""
    rows, cols = proj.row_indices.tolist(), proj.col_indices.tolist()
    w = proj.weight.double().tolist()
    x = [0.0] * pre.shape[1]
    y = [0.0] * post.shape[1]
    for t in range(pre.shape[0]):
        x = [v * hook.dec for v in x]
        y = [v * hook.dec for v in y]
        for s, (i, j) in enumerate(zip(rows, cols)):
            ltp = hook.a_plus * x[j] * post[t, i]
            ltd = hook.a_minus * y[i] * pre[t, j]
            if hook.bound == "soft":
                new = w[s] + ltp * (1.0 - w[s]) - ltd * w[s]
            else:
                new = min(max(w[s] + ltp - ltd, 0.0), 1.0)
            w[s] = max(new, 0.0)
        x = [v + float(pre[t, j]) for j, v in enumerate(x)]
        y = [v + float(post[t, i]) for i, v in enumerate(y)]
    return np.array(w)


def _two_population_net(k: int, hook_factory: Any, seed: int = 0) -> tuple[Network, Projection]:
    """``a`` (10) → ``b`` (6), p = 0.5, delays K·dt .. (K + 3)·dt; plastic a → b; b → a static."""
    popl = [Population(name="a", size=10, lif=_lif()), Population(name="b", size=6, lif=_lif())]
    ab = random_projection(
        popl[0], popl[1], p=0.5, weight=0.45, delay_ms=(k * DT, (k + 3) * DT), dt_ms=DT, seed=seed
    )
    ba = random_projection(popl[1], popl[0], p=0.3, weight=0.1, delay_ms=k * DT, dt_ms=DT, seed=1)
    return Network(popl, [ab, ba], dt_ms=DT, plasticity={0: hook_factory(ab)}), ab


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("bound", ["additive", "soft"])
def test_plasticity_equals_step_by_step_replay_for_any_block_length(k: int, bound: str) -> None:
    # soft bounds keep w in [0, 1] while a₊·x + a₋·y ≤ 1 (traces stay below ~5 here)
    amp = (0.2, 0.1) if bound == "additive" else (0.1, 0.05)
    net, ab = _two_population_net(
        k, lambda pr: PairSTDPHook(pr, 10, a_plus=amp[0], a_minus=amp[1], bound=bound)
    )
    g = torch.Generator().manual_seed(3)
    n_steps = 600
    inject = (torch.rand(n_steps, net.size, generator=g) < 0.01).float() * 1.5
    state, res = net.run(n_steps, inject=inject)
    assert net.min_delay == k
    pre, post = res.spikes["a"].numpy(), res.spikes["b"].numpy()
    want = _replay_pair_stdp(pre, post, ab, net.plasticity[0])  # type: ignore[arg-type]
    # the spike trains exercise several events per synapse inside one block
    assert pre.sum() > 60
    assert post.sum() > 100
    if bound == "additive":
        assert (want == 1.0).sum() >= 10
        assert (want < 0.9).sum() >= 1
    else:
        assert want.max() < 1.0
        assert (want > 0.9).sum() >= 5
    np.testing.assert_allclose(state.weights[0].numpy(), want, rtol=0, atol=1e-5)


def test_clipped_synapse_reaches_w_max_with_15_step_blocks() -> None:
    """Issue 15's reproduction: delay 1.5 ms at dt 0.1 ms (K = 15), clip to [0, 1]. Every 150
    steps the pre neuron fires, then the post neuron twice (2 and 6 steps later; θ = 2, so only
    these external kicks make them fire). Every cycle potentiates and the synapse must sit at
    w_max = 1. Summing K changes computed from the block-start weight drove it above 1, and the
    next block's clipping then subtracted K·(w − 1): it ended at 0.0."""
    lif = LIFParams(tau_mem_ms=10.0, dt_ms=DT, reset="hard", v_threshold=2.0, v_reset=0.0)
    popl = [Population(name="a", size=1, lif=lif), Population(name="b", size=1, lif=lif)]
    proj = Projection.from_edges(
        "a", "b", n_post=1, pre_index=[0], post_index=[0], weight=0.5, delay_ms=1.5
    )
    hook = PairSTDPHook(proj, 1, a_plus=0.2, a_minus=0.05, bound="additive")
    net = Network(popl, [proj], dt_ms=DT, plasticity={0: hook})
    n_steps = 1500
    inject = torch.zeros(n_steps, 2)
    for c in range(3, n_steps - 20, 150):
        inject[c, 0] = inject[c + 5, 1] = inject[c + 9, 1] = 5.0
    state, res = net.run(n_steps, inject=inject)
    assert int(res.spikes["a"].sum()) == 10
    assert int(res.spikes["b"].sum()) == 20
    want = _replay_pair_stdp(res.spikes["a"].numpy(), res.spikes["b"].numpy(), proj, hook)
    assert want[0] == 1.0
    assert float(state.weights[0][0]) == 1.0


# ------------------------------------------------- exact (dyadic) rule: whole-network reference

WINDOW = 4  # steps; traces are 2^-lag for lags 1..WINDOW, else 0
ETA = 2.0**-3


class _LastSpikes(NamedTuple):
    pre: torch.Tensor  # [n_pre] step of the last spike (−10⁶: none)
    post: torch.Tensor  # [n_post]
    step: torch.Tensor  # 0-d: steps seen (dense hook only)


def _window(lag: torch.Tensor) -> torch.Tensor:
    return torch.where((lag >= 1) & (lag <= WINDOW), torch.exp2(-lag.float()), 0.0)


class WindowHook:
    """Nearest-neighbour STDP with traces 2^-lag cut at ``WINDOW`` steps, ``ETA`` = 2⁻³ and
    clipping to [0, 1]: every weight stays a multiple of 2⁻⁷, so sums are exact in any order."""

    def __init__(self, proj: Projection, n_pre: int) -> None:
        self.rows, self.cols, self.n_pre = proj.row_indices, proj.col_indices, n_pre
        self.crow, self.n_post = proj.crow_indices, proj.n_post

    def init(self, weight: torch.Tensor, batch: int = 1) -> _LastSpikes:
        return _LastSpikes(
            torch.full((self.n_pre,), -(10**6)),
            torch.full((self.n_post,), -(10**6)),
            torch.zeros((), dtype=torch.int64),
        )

    def _dw(self, t: int, pre: torch.Tensor, post: torch.Tensor, st: _LastSpikes) -> torch.Tensor:
        x, y = _window(t - st.pre), _window(t - st.post)
        return ETA * (post[self.rows] * x[self.cols] - y[self.rows] * pre[self.cols])

    def __call__(self, pre, post, state, weight, modulator=None):  # type: ignore[no-untyped-def]
        t = int(state.step)
        dw = self._dw(t, pre[0], post[0], state)
        delta = (weight + dw).clamp(0.0, 1.0) - weight
        new = _LastSpikes(
            torch.where(pre[0] > 0, t, state.pre),
            torch.where(post[0] > 0, t, state.post),
            state.step + 1,
        )
        return delta, new


class EventWindowHook(WindowHook):
    """The same rule through the event protocol: touches only rows of post spikes and columns
    of pre spikes, updates its state in place (the network gives it a private copy)."""

    def on_spikes(self, step, pre, post, state, weight, modulator=None):  # type: ignore[no-untyped-def]
        touched = torch.isin(self.rows, post) | torch.isin(self.cols, pre)
        index = touched.nonzero().flatten()
        s_pre, s_post = torch.zeros(self.n_pre), torch.zeros(self.n_post)
        s_pre[pre], s_post[post] = 1.0, 1.0
        dw = self._dw(step, s_pre, s_post, state)[index]
        state.pre[pre] = step
        state.post[post] = step
        return index, (weight[index] + dw).clamp(0.0, 1.0), state


def _simulate_plastic(
    net: Network, inject: np.ndarray, hooks: dict[int, WindowHook]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One step at a time: arrivals, LIF update, spikes scheduled with the current weights,
    then the rule (numpy, per synapse) and ``w ← max(w, 0)``."""
    n_steps, n = inject.shape
    lif = [p.lif for p in net.populations for _ in range(p.size)]
    beta = np.array([p.beta for p in lif], np.float32)
    v_rest = np.array([p.v_rest for p in lif], np.float32)
    leak = ((1 - torch.from_numpy(beta)) * torch.from_numpy(v_rest)).numpy()
    v = v_rest.copy()
    refr = np.zeros(n, np.int64)
    w = [pr.weight.numpy().astype(np.float32).copy() for pr in net.projections]
    last = {
        k: (np.full(net.pops[pr.pre].size, -(10**6)), np.full(pr.n_post, -(10**6)))
        for k, pr in enumerate(net.projections)
    }
    arrivals = np.zeros((n_steps + 64, n), np.float32)
    spikes = np.zeros((n_steps, n), dtype=bool)
    for t in range(n_steps):
        x = (arrivals[t] + leak) + inject[t]
        for i in range(n):
            if refr[i] > 0:
                refr[i] -= 1
                v[i] = lif[i].v_reset
                continue
            h = np.float32(beta[i] * v[i]) + x[i]
            if h >= lif[i].v_threshold:
                spikes[t, i], v[i], refr[i] = True, lif[i].v_reset, lif[i].refractory_steps
            else:
                v[i] = h
        for k, pr in enumerate(net.projections):
            o_pre, o_post = net.offsets[pr.pre], net.offsets[pr.post]
            sign = -1.0 if net.pops[pr.pre].kind == "inhibitory" else 1.0
            rows, cols = pr.row_indices.numpy(), pr.col_indices.numpy()
            delays = np.round(pr.delay_ms.numpy() / DT).astype(int)
            for s in range(pr.nnz):
                if spikes[t, o_pre + cols[s]]:
                    arrivals[t + delays[s], o_post + rows[s]] += sign * w[k][s]
        for k, _hook in hooks.items():
            pr = net.projections[k]
            pre_s = spikes[t, net.slice(pr.pre)]
            post_s = spikes[t, net.slice(pr.post)]
            lp, lq = last[k]
            for s, (i, j) in enumerate(zip(pr.row_indices.tolist(), pr.col_indices.tolist())):
                lag_x, lag_y = t - lp[j], t - lq[i]
                x_j = 2.0**-lag_x if 1 <= lag_x <= WINDOW else 0.0
                y_i = 2.0**-lag_y if 1 <= lag_y <= WINDOW else 0.0
                dw = ETA * (x_j * post_s[i] - y_i * pre_s[j])
                w[k][s] = max(min(max(w[k][s] + dw, 0.0), 1.0), 0.0)
            lp[pre_s], lq[post_s] = t, t
    return spikes, w


def _dyadic_net(k: int, hook_cls: type[WindowHook], seed: int) -> Network:
    popl = [
        Population(name="e", size=9, lif=_lif(refractory_steps=2)),
        Population(name="i", size=5, lif=_lif(), kind="inhibitory"),
    ]
    g = torch.Generator().manual_seed(seed)
    projs = []
    for a in range(2):
        for b in range(2):
            pr = random_projection(
                popl[a],
                popl[b],
                p=0.5,
                weight=0.0,
                delay_ms=(k * DT, (k + 2) * DT),
                dt_ms=DT,
                seed=seed + 2 * a + b,
                allow_autapses=True,
            )
            w = torch.randint(2, 14, (pr.nnz,), generator=g).float() / 16
            projs.append(
                Projection(pr.pre, pr.post, pr.crow_indices, pr.col_indices, w, pr.delay_ms)
            )
    hooks = {0: hook_cls(projs[0], 9), 1: hook_cls(projs[1], 9)}
    return Network(popl, projs, dt_ms=DT, plasticity=hooks)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("hook_cls", [WindowHook, EventWindowHook])
def test_plastic_network_equals_step_by_step_simulation(k: int, hook_cls: type) -> None:
    """Spikes and weights equal the independent step-by-step simulation bit for bit, for the
    dense and the event-driven protocol, also across a split into two runs."""
    net = _dyadic_net(k, hook_cls, seed=k)
    hook = net.plasticity[0]
    assert isinstance(hook, EventPlasticityHook if hook_cls is EventWindowHook else PlasticityHook)
    g = torch.Generator().manual_seed(10 + k)
    n_steps = 240
    inject = torch.randint(0, 20, (n_steps, net.size), generator=g).float() / 16
    inject *= torch.rand(n_steps, net.size, generator=g) < 0.12
    want_spikes, want_w = _simulate_plastic(net, inject.numpy(), net.plasticity)  # type: ignore[arg-type]
    s1, r1 = net.run(97, inject=inject[:97])
    s2, r2 = net.run(n_steps - 97, s1, inject=inject[97:])
    got = torch.cat([torch.cat([r.spikes["e"], r.spikes["i"]], dim=1) for r in (r1, r2)])
    assert want_spikes[:, :9].sum() > 30  # enough activity for the rule to act
    np.testing.assert_array_equal(got.numpy(), want_spikes)
    for k_proj in range(4):
        np.testing.assert_array_equal(s2.weights[k_proj].numpy(), want_w[k_proj])
    assert not np.array_equal(want_w[0], net.projections[0].weight.numpy())


# ----------------------------------------------------------------------------- pure run


def _snapshot(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, tuple):
        return tuple(_snapshot(i) for i in x)
    return x


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for i, j in zip(a, b):
            _assert_same(i, j)
    else:
        assert a == b


@pytest.mark.parametrize("hook_cls", [None, WindowHook, EventWindowHook])
def test_run_is_pure_rerunning_from_one_state_gives_the_same_result(hook_cls: Any) -> None:
    net = _dyadic_net(5, hook_cls or WindowHook, seed=2)
    if hook_cls is None:
        net = Network(net.populations, net.projections, dt_ms=DT)
    g = torch.Generator().manual_seed(0)
    inject = (torch.rand(300, net.size, generator=g) < 0.1).float() * 0.9
    saved, _ = net.run(150, inject=inject[:150])
    assert saved.buffer.abs().sum() > 0  # spikes in flight: the buffer matters
    before = _snapshot(tuple(saved))
    s_a, r_a = net.run(150, saved, inject=inject[150:])
    _assert_same(tuple(saved), before)
    s_b, r_b = net.run(150, saved, inject=inject[150:])
    _assert_same(tuple(saved), before)
    for name in r_a.spikes:
        assert torch.equal(r_a.spikes[name], r_b.spikes[name])
    assert r_a.spikes["e"].sum() > 10
    _assert_same(tuple(s_a), tuple(s_b))
    # the returned state shares no storage with the input that run writes to
    assert s_a.buffer.data_ptr() != saved.buffer.data_ptr()
    if hook_cls is not None:
        assert s_a.weights[0].data_ptr() != saved.weights[0].data_ptr()


def test_hook_protocol_is_checked() -> None:
    popl = [Population(name="a", size=1, lif=_lif())]
    proj = Projection.from_edges(
        "a", "a", n_post=1, pre_index=[0], post_index=[0], weight=0.1, delay_ms=DT
    )
    with pytest.raises(ValueError, match=r"plasticity\[0\] must follow"):
        Network(popl, [proj], dt_ms=DT, plasticity={0: object()})  # type: ignore[dict-item]
