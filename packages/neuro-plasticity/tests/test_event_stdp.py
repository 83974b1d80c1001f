"""Event-driven STDP against the dense rule stepped every step, the closed-form window, and the
set of synapses it touches."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_plasticity import (
    CSR,
    Dense,
    chain,
    clip,
    modulate,
    on_topology,
    pair_stdp,
    scale,
    three_factor_stdp,
    triplet_stdp,
    weight_decay,
)
from neuro_plasticity.ops.event_stdp import (
    REBASE_EXPONENT,
    DenseReplay,
    EventPairSTDP,
    event_driven,
)
from neuro_plasticity.rule import Rule


def _topology(n_pre: int, n_post: int, p: float, seed: int) -> CSR:
    g = torch.Generator().manual_seed(seed)
    return CSR.from_dense_mask(torch.rand(n_post, n_pre, generator=g) < p)


def _spikes(steps: int, n: int, rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, n, generator=g) < rate


def _dense(rule: Rule, topo: CSR, w0: torch.Tensor, pre, post, modulator=None) -> torch.Tensor:
    """The dense rule called at every step, ``w ← w + Δw``."""
    bound = on_topology(rule, topo)
    w = w0.clone()
    st_ = bound.init(w)
    for t in range(pre.shape[0]):
        dw, st_ = bound.update(
            pre[t : t + 1].to(w.dtype), post[t : t + 1].to(w.dtype), st_, w, modulator
        )
        w = w + dw
    return w


def _events(ev, w0: torch.Tensor, pre, post, modulator=None, offset: int = 0) -> torch.Tensor:
    """The event rule, called only at steps with a spike, ``w[index] = value``."""
    w = w0.clone()
    st_ = ev.init(w)
    for t in range(pre.shape[0]):
        p_idx, q_idx = pre[t].nonzero().flatten(), post[t].nonzero().flatten()
        if p_idx.numel() or q_idx.numel():
            index, value, st_ = ev.on_spikes(t + offset, p_idx, q_idx, st_, w, modulator)
            w[index] = value
    return w


RULES = {
    "additive_clip": lambda: chain(
        pair_stdp(a_plus=0.05, a_minus=0.06, dt_ms=0.5), clip(w_min=0.0, w_max=1.0)
    ),
    "soft": lambda: pair_stdp(a_plus=0.05, a_minus=0.06, dt_ms=0.5, bound="soft"),
    "soft_nearest_clip": lambda: chain(
        pair_stdp(a_plus=0.05, a_minus=0.04, dt_ms=0.5, bound="soft", pairing="nearest"),
        clip(w_min=0.0, w_max=1.0),
    ),
    "scale_max_delta_clip": lambda: chain(
        pair_stdp(a_plus=0.2, a_minus=0.1, tau_minus_ms=35.0, dt_ms=0.5, pairing="nearest"),
        scale(0.5),
        clip(max_delta=0.03, w_min=0.0, w_max=1.0),
    ),
    # clip before scale: not the native plan, the transforms' own update_fn on touched synapses
    "clip_then_scale": lambda: chain(
        pair_stdp(a_plus=0.1, a_minus=0.12, dt_ms=0.5), clip(w_min=0.0, w_max=1.0), scale(0.5)
    ),
    "modulated_clip": lambda: chain(
        pair_stdp(a_plus=0.05, a_minus=0.06, dt_ms=0.5), modulate(), clip(w_min=0.0, w_max=1.0)
    ),
}


@pytest.mark.parametrize("name", list(RULES))
def test_events_equal_dense_rule_float64(name: str) -> None:
    topo = _topology(30, 20, 0.3, seed=1)
    w0 = torch.rand(topo.nnz, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # the same neurons on both sides for the first 20: many steps with a synapse's pre and post
    pre, post = _spikes(400, 30, 0.06, seed=3), None
    post = pre[:, :20] | _spikes(400, 20, 0.03, seed=4)
    m = 0.7 if name == "modulated_clip" else None
    rule = RULES[name]()
    ev = event_driven(rule, topo)
    assert isinstance(ev, EventPairSTDP)
    want = _dense(rule, topo, w0, pre, post, m)
    got = _events(ev, w0, pre, post, m)
    assert (want - w0).abs().max() > 0.05  # the rule did something
    if name in ("additive_clip", "scale_max_delta_clip", "modulated_clip"):
        assert bool((want == 1.0).any() | (want == 0.0).any())  # and the bounds acted
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_events_equal_dense_rule_float32() -> None:
    topo = _topology(50, 40, 0.2, seed=5)
    w0 = torch.rand(topo.nnz, generator=torch.Generator().manual_seed(6))
    pre, post = _spikes(500, 50, 0.05, seed=7), _spikes(500, 40, 0.05, seed=8)
    rule = RULES["additive_clip"]()
    want = _dense(rule, topo, w0, pre, post)
    got = _events(event_driven(rule, topo), w0, pre, post)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


@settings(max_examples=25, deadline=None)
@given(
    n_pre=st.integers(1, 9),
    n_post=st.integers(1, 9),
    p=st.floats(0.2, 1.0),
    rate=st.floats(0.02, 0.5),
    steps=st.integers(1, 60),
    rule_name=st.sampled_from(list(RULES)),
    seed=st.integers(0, 2**16),
)
def test_event_backend_equals_reference_backend(
    n_pre: int, n_post: int, p: float, rate: float, steps: int, rule_name: str, seed: int
) -> None:
    topo = _topology(n_pre, n_post, p, seed)
    w0 = torch.rand(topo.nnz, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    pre, post = _spikes(steps, n_pre, rate, seed + 1), _spikes(steps, n_post, rate, seed + 2)
    rule = RULES[rule_name]()
    m = 1.3 if rule_name == "modulated_clip" else None
    ref = event_driven(rule, topo, backend="reference")
    assert isinstance(ref, DenseReplay)
    want = _events(ref, w0, pre, post, m)
    got = _events(event_driven(rule, topo, backend="events"), w0, pre, post, m)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pairing", ["all_to_all", "nearest"])
@pytest.mark.parametrize("lag", [1, 7, 40])
def test_exponential_window_far_from_the_origin(pairing: str, lag: int) -> None:
    """One synapse, a pre and a post spike ``lag`` steps apart, 10⁷ steps into the run (the
    traces are rescaled on the way): Δw = η A₊ exp(−lag·dt/τ₊) or −η A₋ exp(−lag·dt/τ₋)."""
    topo = CSR.from_dense_mask(torch.ones(1, 1, dtype=torch.bool))
    rule = pair_stdp(
        lr=0.5,
        a_plus=0.01,
        a_minus=0.012,
        tau_plus_ms=20.0,
        tau_minus_ms=30.0,
        dt_ms=0.5,
        pairing=pairing,
    )
    ev = event_driven(rule, topo)
    one, none = torch.tensor([0]), torch.tensor([], dtype=torch.int64)
    t0 = 10**7
    for first, sign in (("pre", 1.0), ("post", -1.0)):
        w = torch.full((1,), 0.5, dtype=torch.float64)
        state = ev.init(w)
        assert (t0 - 5) * 0.5 / 20.0 > REBASE_EXPONENT  # the first call rescales
        _, _, state = ev.on_spikes(t0 - 5, none, none, state, w)
        a, b = (one, none) if first == "pre" else (none, one)
        index, value, state = ev.on_spikes(t0, a, b, state, w)
        w[index] = value
        index, value, state = ev.on_spikes(t0 + lag, b, a, state, w)
        w[index] = value
        tau, amp = (20.0, 0.01) if sign > 0 else (30.0, 0.012)
        want = 0.5 + sign * 0.5 * amp * math.exp(-lag * 0.5 / tau)
        assert float(w[0]) == pytest.approx(want, rel=1e-12)


def test_only_synapses_of_spiking_neurons_are_touched() -> None:
    topo = _topology(40, 30, 0.3, seed=9)
    ev = event_driven(RULES["soft"](), topo)
    w = torch.rand(topo.nnz, dtype=torch.float64)
    state = ev.init(w)
    pre, post = torch.tensor([3, 17]), torch.tensor([0, 5, 29])
    index, value, state = ev.on_spikes(0, pre, post, state, w)
    rows = topo.row_indices  # type: ignore[attr-defined]
    want = (torch.isin(rows, post) | torch.isin(topo.col_indices, pre)).nonzero().flatten()
    assert sorted(index.tolist()) == want.tolist()  # each once, no other
    assert value.shape == index.shape
    index, value, state = ev.on_spikes(9, torch.tensor([], dtype=torch.int64), pre[:0], state, w)
    assert index.numel() == 0


def test_state_is_per_call_and_weight_is_never_modified() -> None:
    topo = _topology(10, 10, 0.5, seed=10)
    ev = event_driven(RULES["additive_clip"](), topo)
    w = torch.rand(topo.nnz)
    before = w.clone()
    state = ev.init(w)
    for t in range(30):
        _, _, state = ev.on_spikes(
            t, torch.tensor([t % 10]), torch.tensor([(3 * t) % 10]), state, w
        )
    assert torch.equal(w, before)
    assert float(state.x_pre.sum()) > 0
    assert float(state.y_post.sum()) > 0


def test_unsupported_rules_and_bad_input_raise() -> None:
    topo = _topology(5, 4, 0.5, seed=11)
    for rule in (
        chain(pair_stdp(), weight_decay(1e-3)),
        triplet_stdp(),
        three_factor_stdp(),
    ):
        with pytest.raises(ValueError, match=r"rule .* has no event-driven form"):
            event_driven(rule, topo, backend="events")
        assert isinstance(event_driven(rule, topo), DenseReplay)  # auto falls back to the spec
    with pytest.raises(ValueError, match="topology must be a CSR"):
        event_driven(pair_stdp(), Dense(4, 5))
    with pytest.raises(ValueError, match="backend"):
        event_driven(pair_stdp(), topo, backend="triton")  # type: ignore[arg-type]
    ev = event_driven(RULES["additive_clip"](), topo)
    with pytest.raises(ValueError, match="batch must be 1"):
        ev.init(torch.rand(topo.nnz), batch=2)
    with pytest.raises(ValueError, match="weight"):
        ev.init(torch.rand(topo.nnz + 1))
    with pytest.raises(ValueError, match=r"w_max=1\.0"):
        ev.init(torch.full((topo.nnz,), 1.5))
    w = torch.rand(topo.nnz)
    state = ev.init(w)
    with pytest.raises(ValueError, match="pre"):
        ev.on_spikes(0, torch.tensor([0.0]), torch.tensor([0]), state, w)
    with pytest.raises(ValueError, match=r"post indices must lie in \[0, 4\)"):
        ev.on_spikes(0, torch.tensor([0]), torch.tensor([4]), state, w)
    _, _, state = ev.on_spikes(10**6, torch.tensor([0]), torch.tensor([0]), state, w)
    mod = event_driven(RULES["modulated_clip"](), topo)
    with pytest.raises(ValueError, match="modulator is required"):
        mod.on_spikes(0, torch.tensor([0]), torch.tensor([0]), mod.init(w), w)
    with pytest.raises(ValueError, match="step must be"):
        ev.on_spikes(5, torch.tensor([0]), torch.tensor([0]), state, w)
