"""Richer networks: adaptive-threshold neurons, exponential synapses, weight gains, spike
sources, membrane recording, HebLLM presets and log-normal weights.

The reference ``_simulate`` is written here, independently of the simulator: float64 numpy,
dense weight matrices per delay, one neuron at a time, one step at a time. Weights and inputs
are multiples of 1/16, so synaptic sums are exact in any order and spikes must agree exactly;
the per-neuron arithmetic is written in the simulator's documented order, so membranes agree
bit for bit too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_spiking.adaptive_lif import AdaptiveLIFParams
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import (
    LogNormalWeights,
    Network,
    Population,
    Projection,
    SpikeSource,
    random_projection,
)
from neuro_spiking.presets import hebllm_population

DT = 0.5


@dataclass
class _Neuron:
    source: bool
    beta: float = 0.0
    v_rest: float = 0.0
    theta: float = math.inf
    v_reset: float = 0.0
    refractory: int = 0
    alpha: float = 0.0  # synaptic decay, 0: delta synapse
    rho: float = 0.0  # adaptation decay
    inc: float = 0.0  # adaptation increment


def _neurons(net: Network) -> list[_Neuron]:
    out = []
    for pop in net.populations:
        for _ in range(pop.size):
            if isinstance(pop, SpikeSource):
                out.append(_Neuron(source=True))
                continue
            p = pop.lif
            adaptive = isinstance(p, AdaptiveLIFParams)
            euler = p.integrator == "euler"
            out.append(
                _Neuron(
                    source=False,
                    beta=1 - DT / p.tau_mem_ms if euler else math.exp(-DT / p.tau_mem_ms),
                    v_rest=p.v_rest,
                    theta=p.v_threshold,
                    v_reset=p.v_reset,
                    refractory=round(p.refractory_ms / DT),
                    alpha=math.exp(-DT / pop.tau_syn_ms) if pop.tau_syn_ms > 0 else 0.0,
                    rho=(1 - DT / p.tau_adapt_ms) if adaptive else 0.0,  # type: ignore[union-attr]
                    inc=p.adapt_increment if adaptive else 0.0,  # type: ignore[union-attr]
                )
            )
    return out


def _simulate(
    net: Network, inject: np.ndarray, sources: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(spikes [T, N], v [T, N])``; ``sources [T, N]`` gives the spikes of source neurons."""
    n_steps, n = inject.shape
    cells = _neurons(net)
    weights: dict[int, np.ndarray] = {}
    for pr in net.projections:
        pre = net.pops[pr.pre]
        gain = (-1.0 if pre.kind == "inhibitory" else 1.0) * pre.weight_gain
        rows = pr.row_indices.tolist()
        for r, c, w, d in zip(
            rows, pr.col_indices.tolist(), pr.weight.tolist(), pr.delay_ms.tolist()
        ):
            m = weights.setdefault(round(d / DT), np.zeros((n, n)))
            m[net.offsets[pr.post] + r, net.offsets[pr.pre] + c] += gain * w
    v = np.array([c.v_rest for c in cells])
    cur = np.zeros(n)
    adapt = np.zeros(n)
    refr = np.zeros(n, dtype=int)
    spikes = np.zeros((n_steps, n), dtype=bool)
    v_rec = np.zeros((n_steps, n))
    for t in range(n_steps):
        arrivals = np.zeros(n)
        for d, w in weights.items():
            if t - d >= 0:
                arrivals += w @ spikes[t - d].astype(float)
        for i, c in enumerate(cells):
            if c.source:
                spikes[t, i] = sources[t, i]
                continue
            cur[i] = c.alpha * cur[i] + arrivals[i]
            x = (cur[i] + (1 - c.beta) * c.v_rest) + inject[t, i]
            h = c.beta * v[i] + x
            if refr[i] > 0:
                refr[i] -= 1
                v[i] = c.v_reset
            elif h >= c.theta + adapt[i]:
                spikes[t, i] = True
                v[i] = c.v_reset
                refr[i] = c.refractory
            else:
                v[i] = h
            adapt[i] = c.rho * adapt[i] + c.inc * spikes[t, i]
            v_rec[t, i] = v[i]
    return spikes, v_rec


def _lif(refractory_steps: int, theta: float = 1.0) -> LIFParams:
    return LIFParams(
        tau_mem_ms=10.0,
        dt_ms=DT,
        reset="hard",
        v_threshold=theta,
        v_reset=0.125,
        v_rest=0.0625,
        refractory_ms=refractory_steps * DT,
    )


def _alif(refractory_steps: int) -> AdaptiveLIFParams:
    return AdaptiveLIFParams(
        tau_mem_ms=10.0,
        dt_ms=DT,
        v_threshold=0.75,
        v_rest=-0.125,
        v_reset=-0.125,
        refractory_ms=refractory_steps * DT,
        tau_adapt_ms=20.0,
        adapt_increment=0.25,
    )


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(1, 5), st.integers(1, 5)),
    p=st.floats(0.2, 0.9),
    max_delay=st.integers(1, 4),
    refractory=st.integers(0, 3),
    tau_syn=st.sampled_from([0.0, 1.0, 4.0]),
    gain=st.sampled_from([1.0, 1.25]),
    n_steps=st.integers(1, 50),
    split=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_network_equals_float64_step_by_step_reference(
    sizes: tuple[int, int, int, int],
    p: float,
    max_delay: int,
    refractory: int,
    tau_syn: float,
    gain: float,
    n_steps: int,
    split: float,
    seed: int,
) -> None:
    """Sources → adaptive (exponential synapses) ↔ inhibitory (gain) → LIF output: spikes and
    recorded membranes equal the reference, also across a split into two runs."""
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="src", size=sizes[0]),
        Population(name="assoc", size=sizes[1], lif=_alif(refractory), tau_syn_ms=tau_syn),
        Population(
            name="inh", size=sizes[2], lif=_lif(refractory), kind="inhibitory", weight_gain=gain
        ),
        Population(name="out", size=sizes[3], lif=_lif(0, theta=0.875), tau_syn_ms=tau_syn / 2),
    ]
    pairs = [(0, 1), (0, 3), (1, 1), (1, 2), (2, 1), (1, 3), (2, 3)]
    g = torch.Generator().manual_seed(seed)
    projs = []
    for a, b in pairs:
        pr = random_projection(
            popl[a],
            popl[b],  # type: ignore[arg-type]
            p=p,
            weight=0.0,
            delay_ms=(DT, max_delay * DT),
            dt_ms=DT,
            seed=seed + 7 * a + b,
        )
        w = torch.randint(1, 10, (pr.nnz,), generator=g).double() / 16
        projs.append(Projection(pr.pre, pr.post, pr.crow_indices, pr.col_indices, w, pr.delay_ms))
    net = Network(popl, projs, dt_ms=DT, dtype=torch.float64)
    n = net.size
    inject = torch.randint(0, 12, (n_steps, n), generator=g).double() / 16
    inject *= torch.rand(n_steps, n, generator=g) < 0.4
    inject[:, net.slice("src")] = 0.0
    src = torch.rand(n_steps, sizes[0], generator=g) < 0.3
    sources = np.zeros((n_steps, n), dtype=bool)
    sources[:, net.slice("src")] = src.numpy()
    want_s, want_v = _simulate(net, inject.numpy(), sources)
    cut = int(split * n_steps)
    rec = ["assoc", "inh", "out"]
    s1, r1 = net.run(cut, inject=inject[:cut], source_spikes={"src": src[:cut]}, record_v=rec)
    s2, r2 = net.run(
        n_steps - cut, s1, inject=inject[cut:], source_spikes={"src": src[cut:]}, record_v=rec
    )
    names = ["src", *rec]
    got = torch.cat([torch.cat([r.spikes[k] for k in names], dim=1) for r in (r1, r2)])
    np.testing.assert_array_equal(got.numpy(), want_s)
    got_v = torch.cat([torch.cat([r.v[k] for k in rec], dim=1) for r in (r1, r2)])
    np.testing.assert_array_equal(got_v.numpy(), want_v[:, sizes[0] :])
    if n_steps:
        np.testing.assert_array_equal(s2.v[sizes[0] :].numpy(), want_v[-1, sizes[0] :])


def test_float32_default_network_equals_reference_within_rounding() -> None:
    """The default float32 network with every feature on agrees with the float64 reference up
    to float32 rounding of the membranes (inputs chosen away from the thresholds)."""
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="src", size=3),
        Population(name="a", size=4, lif=_alif(1), tau_syn_ms=2.0),
    ]
    pr = Projection.from_edges(
        "src",
        "a",
        n_post=4,
        pre_index=[0, 1, 2, 0],
        post_index=[0, 1, 2, 3],
        weight=0.3,
        delay_ms=DT,
    )
    net = Network(popl, [pr], dt_ms=DT)
    src = torch.zeros(40, 3, dtype=torch.bool)
    src[[2, 3, 10, 11, 12, 25], [0, 1, 2, 0, 1, 2]] = True
    _, res = net.run(40, source_spikes={"src": src}, record_v=["a"])
    sources = np.zeros((40, 7), dtype=bool)
    sources[:, :3] = src.numpy()
    _, want_v = _simulate(net, np.zeros((40, 7)), sources)
    np.testing.assert_allclose(res.v["a"].double().numpy(), want_v[:, 3:], atol=1e-6)


def test_exponential_synapse_membrane_has_the_closed_form() -> None:
    """One spike of weight w onto a neuron at rest (v_rest = 0, no threshold crossing):
    ``v_n = w · Σ_{j ≤ n} β^{n−j} α^j = w (β^{n+1} − α^{n+1}) / (β − α)`` n steps after arrival."""
    tau_m, tau_s, w, d = 10.0, 3.0, 0.5, 2
    lif = LIFParams(tau_mem_ms=tau_m, dt_ms=DT, reset="hard", v_threshold=10.0)
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="s", size=1),
        Population(name="n", size=1, lif=lif, tau_syn_ms=tau_s),
    ]
    pr = Projection.from_edges(
        "s", "n", n_post=1, pre_index=[0], post_index=[0], weight=w, delay_ms=d * DT
    )
    net = Network(popl, [pr], dt_ms=DT, dtype=torch.float64)
    src = torch.zeros(30, 1, dtype=torch.bool)
    src[0, 0] = True
    _, res = net.run(30, source_spikes={"s": src}, record_v=["n"])
    beta, alpha = 1 - DT / tau_m, math.exp(-DT / tau_s)
    want = [0.0] * d + [
        w * (beta ** (k + 1) - alpha ** (k + 1)) / (beta - alpha) for k in range(30 - d)
    ]
    np.testing.assert_allclose(res.v["n"][:, 0].numpy(), want, rtol=1e-12, atol=1e-15)


def test_adaptive_threshold_blocks_a_second_spike_that_a_plain_lif_fires() -> None:
    """Two identical kicks 4 steps apart: the associative neuron's threshold is raised by
    Δθ·ρ³ after the first spike, so the second kick (between θ₀ and θ₀ + Δθ·ρ³) fails."""
    assoc = hebllm_population("associative", size=1, name="a")
    plain = hebllm_population("output", size=1, name="o")
    lif_same = Population(
        name="l",
        size=1,
        lif=LIFParams(
            tau_mem_ms=20.0,
            dt_ms=1.0,
            v_threshold=0.6,
            v_rest=-0.1,
            v_reset=-0.1,
            reset="hard",
            refractory_ms=4.0,
        ),
    )
    net = Network([assoc, plain, lif_same], [], dt_ms=1.0, dtype=torch.float64)
    beta, rho, v0 = 0.95, 1 - 1 / 500, -0.1
    # membrane at rest is v_rest; a kick k gives h = β·v_rest + (1−β)·v_rest + k = v_rest + k
    kick = 0.6 - v0 + 0.05  # crosses θ₀ = 0.6 by 0.05 < 0.1·ρ⁵
    x = torch.zeros(12, 3, dtype=torch.float64)
    x[0, [0, 2]] = kick
    x[5, [0, 2]] = kick  # refractory 4 ms: free again at step 5, membrane back at v_rest
    _, res = net.run(12, inject=x, record_v=["a", "l"])
    assert res.spikes["l"][:, 0].nonzero().flatten().tolist() == [0, 5]
    assert res.spikes["a"][:, 0].nonzero().flatten().tolist() == [0]
    a_at_5 = 0.1 * rho**4  # adaptation after steps 1..4 decays (the spike step sets it to 0.1)
    assert float(res.v["a"][5, 0]) == pytest.approx(v0 + kick)
    assert v0 + kick < 0.6 + a_at_5
    assert beta == pytest.approx(net.beta[0].item())


def test_hebllm_presets_have_the_published_parameters() -> None:
    """Table of reference-systems.md §2.1, typed out here."""
    table = {
        "sensory": (0.5, 0.0, 2.0, "excitatory", 1.0),
        "associative": (0.6, -0.1, 4.0, "excitatory", 1.0),
        "inhibitory": (0.4, -0.2, 3.0, "inhibitory", 1.2),
        "output": (0.8, -0.1, 5.0, "excitatory", 1.0),
    }
    for role, (theta, v_rest, refr, kind, gain) in table.items():
        pop = hebllm_population(role, size=3)  # type: ignore[arg-type]
        assert pop.name == role
        assert pop.size == 3
        assert (pop.lif.v_threshold, pop.lif.v_rest, pop.lif.v_reset) == (theta, v_rest, v_rest)
        assert pop.lif.refractory_ms == refr
        assert pop.lif.tau_mem_ms == 20.0
        assert pop.lif.integrator == "euler"
        assert pop.lif.dt_ms == 1.0
        assert (pop.kind, pop.weight_gain) == (kind, gain)
        assert pop.model == ("adaptive_lif" if role == "associative" else "lif")
    a = hebllm_population("associative", size=1).lif
    assert isinstance(a, AdaptiveLIFParams)
    assert (a.adapt_increment, a.tau_adapt_ms) == (0.1, 500.0)
    with pytest.raises(ValueError, match="role"):
        hebllm_population("motor", size=1)  # type: ignore[arg-type]


def test_inhibitory_gain_scales_the_delivered_weight() -> None:
    inh = hebllm_population("inhibitory", size=1, name="i")
    tgt = Population(
        name="t", size=1, lif=LIFParams(tau_mem_ms=20.0, dt_ms=1.0, reset="hard", v_threshold=5.0)
    )
    pr = Projection.from_edges(
        "i", "t", n_post=1, pre_index=[0], post_index=[0], weight=0.25, delay_ms=1.0
    )
    net = Network([inh, tgt], [pr], dt_ms=1.0, dtype=torch.float64)
    x = torch.zeros(3, 2, dtype=torch.float64)
    x[0, 0] = 1.0
    _, res = net.run(3, inject=x, record_v=["t"])
    assert res.spikes["i"][0, 0]
    assert float(res.v["t"][1, 0]) == pytest.approx(-1.2 * 0.25)


def test_lognormal_weights_have_the_published_distribution() -> None:
    a = Population(name="a", size=400)
    b = Population(name="b", size=300)
    init = LogNormalWeights()
    pr = random_projection(a, b, p=0.2, weight=init, delay_ms=1.0, dt_ms=1.0, seed=3)
    again = random_projection(a, b, p=0.2, weight=init, delay_ms=1.0, dt_ms=1.0, seed=3)
    assert torch.equal(pr.weight, again.weight)
    w = pr.weight.double()
    n = w.numel()
    assert float(w.min()) >= 0.01
    assert float(w.max()) <= 1.0
    logs = w.log()
    assert float(logs.mean()) == pytest.approx(-1.5, abs=5 * 0.5 / math.sqrt(n))
    assert float(logs.std()) == pytest.approx(0.5, rel=0.02)
    assert float(w.median()) == pytest.approx(math.exp(-1.5), rel=0.02)
    clipped = LogNormalWeights(mu=0.0, sigma=1.0, w_min=0.5, w_max=2.0).sample(
        20000, torch.Generator().manual_seed(0)
    )
    # P(w ≤ 0.5) = Φ(ln 0.5) ≈ 0.2441 of the draws sit at the lower bound
    frac = float((clipped == 0.5).double().mean())
    assert frac == pytest.approx(0.5 * (1 + math.erf(math.log(0.5) / math.sqrt(2))), abs=0.01)
    with pytest.raises(ValueError, match="w_min"):
        LogNormalWeights(w_min=1.0, w_max=0.5)


def test_sources_membranes_and_new_state_are_validated_and_run_stays_pure() -> None:
    popl: list[Population | SpikeSource] = [
        SpikeSource(name="s", size=2),
        Population(name="n", size=2, lif=_alif(1), tau_syn_ms=2.0),
    ]
    pr = Projection.from_edges(
        "s", "n", n_post=2, pre_index=[0, 1], post_index=[0, 1], weight=0.5, delay_ms=DT
    )
    onto_source = Projection.from_edges(
        "n", "s", n_post=2, pre_index=[0], post_index=[0], weight=0.5, delay_ms=DT
    )
    with pytest.raises(ValueError, match="SpikeSource"):
        Network(popl, [onto_source], dt_ms=DT)
    net = Network(popl, [pr], dt_ms=DT)
    with pytest.raises(ValueError, match="inject"):
        net.run(3, inject=torch.ones(3, 4))
    with pytest.raises(ValueError, match="not a SpikeSource"):
        net.run(3, source_spikes={"n": torch.zeros(3, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="source_spikes"):
        net.run(3, source_spikes={"s": torch.zeros(4, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="record_v"):
        net.run(3, record_v=["s"])
    with pytest.raises(ValueError, match="tau_syn_ms"):
        Population(name="x", size=1, tau_syn_ms=-1.0)
    with pytest.raises(ValueError, match="weight_gain"):
        SpikeSource(name="x", size=1, weight_gain=0.0)
    src = torch.zeros(20, 2, dtype=torch.bool)
    src[[0, 1, 2, 3, 8], [0, 0, 1, 0, 1]] = True
    start, _ = net.run(4, source_spikes={"s": src[:4]})
    saved = [t.clone() for t in (start.v, start.i_syn, start.adaptation, start.spike_count)]
    a, ra = net.run(16, start, source_spikes={"s": src[4:]}, record_v=["n"])
    b, rb = net.run(16, start, source_spikes={"s": src[4:]}, record_v=["n"])
    for t, s in zip((start.v, start.i_syn, start.adaptation, start.spike_count), saved):
        assert torch.equal(t, s)
    assert torch.equal(ra.v["n"], rb.v["n"])
    assert torch.equal(a.adaptation, b.adaptation)
    assert a.spike_count.tolist()[:2] == src.sum(0).tolist()
    assert float(start.i_syn.abs().sum()) > 0
