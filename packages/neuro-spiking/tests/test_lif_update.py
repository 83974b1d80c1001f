"""The one LIF update (`lif_update`) against a scalar reference written here, and its callers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_spiking import (
    AdaptiveLIFParams,
    LIFParams,
    adaptive_lif_init,
    adaptive_lif_step,
    lif_init,
    lif_step,
    lif_update,
)
from neuro_spiking.ops.alif_scan import fused_alif_scan
from neuro_spiking.ops.lif_scan import fused_lif_scan
from neuro_spiking.surrogates import ATan


def scalar_lif(v, x, beta, theta, v_reset, v_rest, reset, a, active):
    """One neuron, Python floats (IEEE double, one rounding per operation)."""
    h = v_rest + beta * (v - v_rest) + x if active else v_reset
    s = 1.0 if active and (h - theta) - a >= 0 else 0.0
    if reset == "subtract":
        return s, h - (theta + a - v_reset) * s
    return s, v_reset if s else h


values = st.floats(-2.0, 2.0, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    beta=st.floats(0.05, 1.0),
    theta=st.floats(0.1, 1.5),
    v_reset=st.floats(-0.5, 0.05),
    v_rest=st.sampled_from([0.0, -0.1, 0.2]),
    reset=st.sampled_from(["subtract", "hard"]),
    adaptive=st.booleans(),
    refractory=st.booleans(),
)
def test_lif_update_matches_scalar_reference_on_torch_and_numpy(
    n, data, beta, theta, v_reset, v_rest, reset, adaptive, refractory
):
    v = data.draw(st.lists(values, min_size=n, max_size=n))
    x = data.draw(st.lists(values, min_size=n, max_size=n))
    a = data.draw(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n)) if adaptive else [0.0] * n
    act = data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) if refractory else [True] * n
    want = [
        scalar_lif(*z, beta, theta, v_reset, v_rest, reset, ai, ok)
        for z, ai, ok in zip(zip(v, x), a, act)
    ]
    kw = dict(beta=beta, threshold=theta, v_reset=v_reset, v_rest=v_rest, reset=reset)
    for lib, arr in ((torch, torch.tensor), (np, np.array)):
        extra = {}
        if adaptive:
            extra["adaptation"] = arr(a, dtype=lib.float64)
        if refractory:
            extra["active"] = arr(act)
        s, v_new = lif_update(arr(v, dtype=lib.float64), arr(x, dtype=lib.float64), **kw, **extra)
        assert [float(e) for e in s] == [w[0] for w in want]
        assert [float(e) for e in v_new] == [w[1] for w in want]
    # with a surrogate (the autograd path, arithmetic hard reset) the values are the same
    s, v_new = lif_update(
        torch.tensor(v, dtype=torch.float64),
        torch.tensor(x, dtype=torch.float64),
        **kw,
        adaptation=torch.tensor(a, dtype=torch.float64) if adaptive else None,
        active=torch.tensor(act) if refractory else None,
        surrogate=ATan(),
    )
    assert s.tolist() == [w[0] for w in want]
    assert v_new.tolist() == [w[1] for w in want]


@pytest.mark.parametrize("reset", ["subtract", "hard"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_lif_update_gradient_is_the_surrogate_chain_rule(reset: str, detach_reset: bool) -> None:
    """dv'/dx and ds/dx by hand: ds/dx = σ'(u); dv'/dx = 1 − (θ − v_reset)·σ'(u) (subtract) or
    (1 − s) + (v_reset − h)·σ'(u) (hard), without the σ' term when the reset is detached."""
    g = torch.Generator().manual_seed(0)
    v = torch.rand(50, generator=g, dtype=torch.float64)
    x = (torch.rand(50, generator=g, dtype=torch.float64) * 1.2).requires_grad_(True)
    beta, theta, v_reset, sur = 0.9, 1.0, -0.2, ATan(slope=2.0)
    s, v_new = lif_update(
        v,
        x,
        beta=beta,
        threshold=theta,
        v_reset=v_reset,
        reset=reset,
        surrogate=sur,
        detach_reset=detach_reset,
    )
    (ds,) = torch.autograd.grad(s.sum(), x, retain_graph=True)
    (dv,) = torch.autograd.grad(v_new.sum(), x)
    h = beta * v + x.detach()
    sg = sur.derivative(h - theta)
    s0 = (h >= theta).double()
    torch.testing.assert_close(ds, sg)
    through_s = torch.zeros_like(sg) if detach_reset else sg
    want = (
        1 - (theta - v_reset) * through_s
        if reset == "subtract"
        else (1 - s0) + (v_reset - h) * through_s
    )
    torch.testing.assert_close(dv, want)
    assert 0 < s0.sum() < 50


@pytest.mark.parametrize("reset", ["subtract", "hard"])
def test_steps_and_reference_scans_share_the_update_bit_for_bit(reset: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, 17, generator=g) * 0.6 + 0.3
    p = LIFParams(reset=reset, v_reset=-0.2, v_rest=0.1, tau_mem_ms=5.0)
    state, steps = lif_init(x[0], p), []
    for t in range(x.shape[0]):
        s, state = lif_step(x[t], state, p)
        steps.append(s)
    o = fused_lif_scan(
        x,
        torch.full_like(x[0], 0.1),
        beta=p.beta,
        v_rest=0.1,
        v_reset=-0.2,
        reset=reset,
        backend="reference",
    )
    assert torch.equal(torch.stack(steps), o.spikes)
    assert torch.equal(state.v, o.v)
    assert o.spikes.sum() > 50
    pa = AdaptiveLIFParams(reset=reset, refractory_ms=0.0, tau_mem_ms=5.0, adapt_increment=0.3)
    state_a, steps = adaptive_lif_init(x[0], pa), []
    for t in range(x.shape[0]):
        s, state_a = adaptive_lif_step(x[t], state_a, pa)
        steps.append(s)
    s_ref, v_ref, a_ref = fused_alif_scan(
        x,
        torch.full_like(x[0], pa.v_rest),
        beta=1 - pa.dt_ms / pa.tau_mem_ms,
        rho=1 - pa.dt_ms / pa.tau_adapt_ms,
        adapt_increment=pa.adapt_increment,
        v_rest=pa.v_rest,
        threshold=pa.v_threshold,
        v_reset=pa.v_reset,
        reset=reset,
        backend="reference",
    )
    assert torch.equal(torch.stack(steps), s_ref)
    assert torch.equal(state_a.v, v_ref)
    assert torch.equal(state_a.a, a_ref)
