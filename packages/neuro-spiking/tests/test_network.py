"""Recurrent simulator: direction, delays, Dale's law, events, plasticity hooks, validation."""

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_spiking.lif import LIFParams
from neuro_spiking.network import (
    Network,
    PlasticityHook,
    PoissonInput,
    Population,
    Projection,
    random_projection,
)

DT = 0.5
LIF = LIFParams(tau_mem_ms=10.0, dt_ms=DT, reset="hard", v_threshold=1.0)


def pops(*specs: tuple[str, int, str]) -> list[Population]:
    return [Population(name=n, size=s, lif=LIF, kind=k) for n, s, k in specs]  # type: ignore[arg-type]


def kick(net: Network, n_steps: int, at: dict[int, list[int]], amount: float = 5.0) -> torch.Tensor:
    x = torch.zeros(n_steps, net.size)
    for t, idx in at.items():
        x[t, idx] = amount
    return x


def test_spikes_flow_pre_to_post_only() -> None:
    p = pops(("a", 1, "excitatory"), ("b", 1, "excitatory"))
    proj = Projection.from_edges(
        "a", "b", n_post=1, pre_index=[0], post_index=[0], weight=3.0, delay_ms=DT
    )
    net = Network(p, [proj], dt_ms=DT)
    # drive a: b must fire one step later
    _, res = net.run(6, inject=kick(net, 6, {1: [0]}))
    assert res.spikes["a"].flatten().nonzero().flatten().tolist() == [1]
    assert res.spikes["b"].flatten().nonzero().flatten().tolist() == [2]
    # drive b: a must stay silent
    _, res = net.run(6, inject=kick(net, 6, {1: [1]}))
    assert res.spikes["b"].flatten().nonzero().flatten().tolist() == [1]
    assert res.spikes["a"].sum() == 0


@pytest.mark.parametrize("delay_ms", [0.5, 1.5, 4.0, 7.5])
def test_delay_of_d_ms_arrives_exactly_d_ms_later(delay_ms: float) -> None:
    p = pops(("a", 2, "excitatory"), ("b", 2, "excitatory"))
    proj = Projection.from_edges(
        "a", "b", n_post=2, pre_index=[1], post_index=[0], weight=3.0, delay_ms=delay_ms
    )
    net = Network(p, [proj], dt_ms=DT)
    n = 40
    _, res = net.run(n, inject=kick(net, n, {3: [1]}))
    assert res.spikes["a"][:, 1].nonzero().flatten().tolist() == [3]
    assert res.spikes["b"][:, 0].nonzero().flatten().tolist() == [3 + round(delay_ms / DT)]
    assert res.n_events == 1


def test_mixed_delays_and_state_carry_over_match_one_run() -> None:
    p = pops(("e", 30, "excitatory"), ("i", 10, "inhibitory"))
    projs = [
        random_projection(
            p[a], p[b], p=0.3, weight=0.4, delay_ms=(0.5, 3.0), dt_ms=DT, seed=a * 2 + b
        )
        for a in range(2)
        for b in range(2)
    ]
    net = Network(p, projs, dt_ms=DT)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(100, net.size, generator=g) < 0.05).float() * 1.2
    full_state, full = net.run(100, inject=x)
    s1, r1 = net.run(37, inject=x[:37])
    s2, r2 = net.run(63, s1, inject=x[37:])
    for name in ("e", "i"):
        assert torch.equal(torch.cat([r1.spikes[name], r2.spikes[name]]), full.spikes[name])
    torch.testing.assert_close(s2.v, full_state.v)
    assert full.spikes["e"].sum() > 10
    assert r1.n_events + r2.n_events == full.n_events
    # recording nothing changes nothing else
    quiet_state, quiet = net.run(100, inject=x, record=[])
    assert quiet.spikes == {}
    assert quiet.n_events == full.n_events
    assert torch.equal(quiet_state.v, full_state.v)


def test_inhibitory_spike_lowers_target_membrane() -> None:
    p = pops(("inh", 1, "inhibitory"), ("tgt", 1, "excitatory"))
    proj = Projection.from_edges(
        "inh", "tgt", n_post=1, pre_index=[0], post_index=[0], weight=0.3, delay_ms=1.0
    )
    net = Network(p, [proj], dt_ms=DT)
    x = kick(net, 6, {0: [0]})
    x[:, 1] = 0.05  # weak drive on the target, far below threshold
    state = net.init_state()
    vs = []
    for t in range(6):
        state, _ = net.run(1, state, inject=x[t : t + 1])
        vs.append(float(state.v[1]))
    beta = LIF.beta
    # the inhibitory spike at step 0 arrives at step 2 (1 ms) and subtracts 0.3
    assert vs[1] == pytest.approx(beta * vs[0] + 0.05)
    assert vs[2] == pytest.approx(beta * vs[1] + 0.05 - 0.3)
    assert vs[2] < vs[1]


def test_dale_law_and_signs() -> None:
    with pytest.raises(ValueError, match="weight must be ≥ 0"):
        Projection.from_edges(
            "a", "b", n_post=1, pre_index=[0], post_index=[0], weight=-1.0, delay_ms=1.0
        )
    p = pops(("e", 3, "excitatory"), ("i", 3, "inhibitory"))
    projs = [
        random_projection(p[a], p[b], p=1.0, weight=0.2, delay_ms=1.0, dt_ms=DT, seed=0)
        for a in range(2)
        for b in range(2)
    ]
    net = Network(p, projs, dt_ms=DT)
    signed = net._signed(list(net.init_state().weights))
    pre = net.syn_pre[net.pre_order]
    assert bool((signed[pre < 3] > 0).all())
    assert bool((signed[pre >= 3] < 0).all())


def test_validation_names_the_problem() -> None:
    p = pops(("a", 2, "excitatory"), ("b", 3, "excitatory"))
    bad_col = Projection.from_edges(
        "a", "b", n_post=3, pre_index=[2], post_index=[0], weight=1.0, delay_ms=1.0
    )
    with pytest.raises(ValueError, match="col_indices out of range"):
        Network(p, [bad_col], dt_ms=DT)
    with pytest.raises(ValueError, match="post_index"):
        Projection.from_edges(
            "a", "b", n_post=3, pre_index=[0], post_index=[3], weight=1.0, delay_ms=1.0
        )
    short = Projection.from_edges(
        "a", "b", n_post=3, pre_index=[0], post_index=[0], weight=1.0, delay_ms=0.2
    )
    with pytest.raises(ValueError, match="delay_ms must be ≥ dt_ms"):
        Network(p, [short], dt_ms=DT)
    off_grid = Projection.from_edges(
        "a", "b", n_post=3, pre_index=[0], post_index=[0], weight=1.0, delay_ms=0.75
    )
    with pytest.raises(ValueError, match="multiples of dt_ms"):
        Network(p, [off_grid], dt_ms=DT)
    unknown = Projection.from_edges(
        "a", "z", n_post=3, pre_index=[0], post_index=[0], weight=1.0, delay_ms=1.0
    )
    with pytest.raises(ValueError, match="'z' does not exist"):
        Network(p, [unknown], dt_ms=DT)
    wrong_rows = Projection.from_edges(
        "a", "b", n_post=2, pre_index=[0], post_index=[0], weight=1.0, delay_ms=1.0
    )
    with pytest.raises(ValueError, match="crow_indices"):
        Network(p, [wrong_rows], dt_ms=DT)
    with pytest.raises(ValueError, match="dt_ms"):
        Network(p, [], dt_ms=0.1)
    with pytest.raises(ValueError, match="distinct names"):
        Network([p[0], p[0]], [], dt_ms=DT)
    net = Network(p, [], dt_ms=DT)
    with pytest.raises(ValueError, match="inject"):
        net.run(4, inject=torch.zeros(3, 5))


def test_random_projection_is_seeded_and_has_density_p() -> None:
    p = pops(("a", 200, "excitatory"), ("b", 150, "excitatory"))
    a = random_projection(p[0], p[1], p=0.1, weight=1.0, delay_ms=1.0, dt_ms=DT, seed=5)
    b = random_projection(p[0], p[1], p=0.1, weight=1.0, delay_ms=1.0, dt_ms=DT, seed=5)
    c = random_projection(p[0], p[1], p=0.1, weight=1.0, delay_ms=1.0, dt_ms=DT, seed=6)
    assert torch.equal(a.col_indices, b.col_indices)
    assert not torch.equal(a.col_indices, c.col_indices)
    assert a.nnz / (200 * 150) == pytest.approx(0.1, abs=0.01)
    auto = random_projection(p[0], p[0], p=1.0, weight=1.0, delay_ms=1.0, dt_ms=DT, seed=0)
    assert bool((auto.row_indices != auto.col_indices).all())
    assert auto.nnz == 200 * 199


class _Traces(NamedTuple):
    pre: torch.Tensor
    post: torch.Tensor


class CoincidenceHook:
    """Δw = η·post_i·pre_j on the projection's CSR synapses (rows = post, cols = pre)."""

    def __init__(self, proj: Projection, eta: float) -> None:
        self.rows, self.cols, self.eta = proj.row_indices, proj.col_indices, eta
        self.calls = 0

    def init(self, weight: torch.Tensor, batch: int = 1) -> Any:
        return _Traces(torch.zeros(batch, 1), torch.zeros(batch, 1))

    def __call__(self, pre, post, state, weight, modulator=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.eta * post[0, self.rows] * pre[0, self.cols], state


def test_plasticity_hook_protocol_changes_only_coactive_synapses() -> None:
    p = pops(("a", 2, "excitatory"), ("b", 2, "excitatory"))
    proj = Projection.from_edges(
        "a", "b", n_post=2, pre_index=[0, 1, 0], post_index=[0, 1, 1], weight=0.1, delay_ms=DT
    )
    hook = CoincidenceHook(proj, eta=0.25)
    assert isinstance(hook, PlasticityHook)
    net = Network(p, [proj], dt_ms=DT, plasticity={0: hook})
    x = torch.zeros(4, 4)
    x[1, 0] = 5.0  # a0 fires at step 1
    x[1, 2] = 5.0  # b0 fires at step 1 as well (external kick)
    state, _ = net.run(4, inject=x)
    # CSR order (sorted by post): (a0→b0), (a0→b1), (a1→b1); only a0→b0 was co-active
    torch.testing.assert_close(state.weights[0], torch.tensor([0.35, 0.1, 0.1]))
    assert hook.calls == 4
    torch.testing.assert_close(proj.weight, torch.full((3,), 0.1))  # the projection is untouched


@pytest.mark.parametrize("n_sources", [10, 300, 3000])  # λ = 0.1, 3, 30: the three samplers
def test_poisson_input_counts_are_independent_poisson_on_targets_only(n_sources: int) -> None:
    p = pops(("a", 50, "excitatory"), ("b", 50, "excitatory"))
    net = Network(p, [], dt_ms=DT)
    inp = PoissonInput(net, rate_hz=20.0, n_sources=n_sources, weight=0.5, targets=["b"], seed=0)
    lam = n_sources * 20 * DT / 1000
    x = torch.cat([inp(0, 1000), inp(1000, 3000)])  # two calls: successive blocks
    assert x[:, :50].sum() == 0
    counts = x[:, 50:] / 0.5
    assert torch.equal(counts, counts.round())
    n = counts.numel()
    # mean and variance of Poisson(λ) (tolerances: several standard errors)
    assert float(counts.mean()) == pytest.approx(lam, abs=5 * math.sqrt(lam / n))
    assert float(counts.var()) == pytest.approx(lam, rel=0.05)
    # P(N = k) near the mode
    mode = int(lam)
    for k in range(max(0, mode - 1), mode + 3):
        p_k = math.exp(-lam) * lam**k / math.factorial(k)
        assert float((counts == k).float().mean()) == pytest.approx(p_k, abs=5 * math.sqrt(p_k / n))
    # independence: neighbouring neurons and neighbouring steps are uncorrelated
    c = counts - counts.mean()
    for a, b in ((c[:, :-1], c[:, 1:]), (c[:-1], c[1:])):
        corr = float((a * b).mean() / (a.std() * b.std()))
        assert abs(corr) < 0.02


class _Dense(NamedTuple):
    """An independent reference: dense weights per delay, one neuron-state update per step."""

    weights: dict[int, np.ndarray]  # delay (steps) -> [N_post, N_pre] signed weights
    beta: np.ndarray
    v_rest: np.ndarray
    leak_bias: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    refractory: np.ndarray


def _dense_reference(net: Network) -> _Dense:
    weights: dict[int, np.ndarray] = {}
    for pr in net.projections:
        sign = -1.0 if net.pops[pr.pre].kind == "inhibitory" else 1.0
        rows = torch.repeat_interleave(torch.arange(pr.n_post), pr.crow_indices.diff())
        for r, c, w, d in zip(
            rows.tolist(), pr.col_indices.tolist(), pr.weight.tolist(), pr.delay_ms.tolist()
        ):
            steps = round(d / net.dt_ms)
            m = weights.setdefault(steps, np.zeros((net.size, net.size), np.float32))
            m[net.offsets[pr.post] + r, net.offsets[pr.pre] + c] += sign * w
    lif = [pop.lif for pop in net.populations for _ in range(pop.size)]
    f32 = lambda xs: np.array(xs, dtype=np.float32)
    beta = f32([p.beta for p in lif])
    v_rest = f32([p.v_rest for p in lif])
    return _Dense(
        weights,
        beta,
        v_rest,
        ((1 - torch.from_numpy(beta)) * torch.from_numpy(v_rest)).numpy(),
        f32([p.v_threshold for p in lif]),
        f32([p.v_reset for p in lif]),
        np.array([p.refractory_steps for p in lif]),
    )


def _simulate_dense(ref: _Dense, inject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_steps, n = inject.shape
    v = ref.v_rest.copy()
    refr = np.zeros(n, dtype=np.int64)
    spikes = np.zeros((n_steps, n), dtype=bool)
    for t in range(n_steps):
        syn = np.zeros(n, np.float32)
        for d, w in ref.weights.items():
            if t - d >= 0:
                syn += w @ spikes[t - d].astype(np.float32)
        x = (syn + ref.leak_bias) + inject[t]
        for i in range(n):
            if refr[i] > 0:
                refr[i] -= 1
                v[i] = ref.v_reset[i]
                continue
            h = np.float32(ref.beta[i] * v[i]) + x[i]
            if h >= ref.threshold[i]:
                spikes[t, i] = True
                v[i] = ref.v_reset[i]
                refr[i] = ref.refractory[i]
            else:
                v[i] = h
    return spikes, v


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    p=st.floats(0.1, 0.9),
    max_delay=st.integers(1, 5),
    refractory_steps=st.integers(0, 4),
    v_rest=st.sampled_from([0.0, 0.25]),
    n_steps=st.integers(1, 40),
    split=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_network_equals_dense_step_by_step_reference(
    sizes: tuple[int, int],
    p: float,
    max_delay: int,
    refractory_steps: int,
    v_rest: float,
    n_steps: int,
    split: float,
    seed: int,
) -> None:
    """Spikes and membranes equal a dense, per-neuron simulation written independently.

    Weights and inputs are multiples of 1/16, so synaptic sums are exact in any order and the
    two simulations must agree bit for bit (the network's block update, candidate subsets and
    event-driven propagation included), also across a split into two runs."""
    lif = LIFParams(
        tau_mem_ms=10.0,
        dt_ms=DT,
        reset="hard",
        v_threshold=1.0,
        v_reset=0.125,
        v_rest=v_rest,
        refractory_ms=refractory_steps * DT,
    )
    popl = [
        Population(name="e", size=sizes[0], lif=lif),
        Population(name="i", size=sizes[1], lif=lif, kind="inhibitory"),
    ]
    g = torch.Generator().manual_seed(seed)
    projs = []
    for a in range(2):
        for b in range(2):
            pr = random_projection(
                popl[a],
                popl[b],
                p=p,
                weight=0.0,
                delay_ms=(DT, max_delay * DT),
                dt_ms=DT,
                seed=seed + 2 * a + b,
                allow_autapses=True,
            )
            w = torch.randint(1, 12, (pr.nnz,), generator=g).float() / 16
            projs.append(
                Projection(pr.pre, pr.post, pr.crow_indices, pr.col_indices, w, pr.delay_ms)
            )
    net = Network(popl, projs, dt_ms=DT)
    inject = torch.randint(0, 12, (n_steps, net.size), generator=g).float() / 16
    inject *= torch.rand(n_steps, net.size, generator=g) < 0.4
    want_spikes, want_v = _simulate_dense(_dense_reference(net), inject.numpy())
    cut = int(split * n_steps)
    s1, r1 = net.run(cut, inject=inject[:cut])
    s2, r2 = net.run(n_steps - cut, s1, inject=inject[cut:])
    got = torch.cat([torch.cat([r.spikes["e"], r.spikes["i"]], dim=1) for r in (r1, r2)]).numpy()
    np.testing.assert_array_equal(got, want_spikes)
    assert r1.n_events + r2.n_events == sum(
        int(want_spikes[:, i].sum()) * int((net.syn_pre == i).sum()) for i in range(net.size)
    )
    np.testing.assert_array_equal(s2.v.numpy(), want_v)


def test_event_driven_work_counts_only_active_synapses() -> None:
    p = pops(("a", 20, "excitatory"), ("b", 20, "excitatory"))
    proj = random_projection(p[0], p[1], p=0.5, weight=0.01, delay_ms=1.0, dt_ms=DT, seed=1)
    net = Network(p, [proj], dt_ms=DT)
    _, res = net.run(10, inject=torch.zeros(10, 40))
    assert res.n_events == 0
    _, res = net.run(10, inject=kick(net, 10, {2: [3, 7]}))
    out_degree = torch.bincount(proj.col_indices, minlength=20)
    assert res.n_events == int(out_degree[3] + out_degree[7])
