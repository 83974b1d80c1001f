"""Fast and slow plasticity regimes per synapse (HebLLM's consolidation): closed-form STDP windows
of both regimes, the mask semantics, and composition with transforms and topologies."""

from __future__ import annotations

import math

import pytest
import torch

from neuro_plasticity import (
    CSR,
    ConsolidatingRule,
    clip,
    consolidating,
    hebbian,
    modulate,
    on_topology,
    pair_stdp,
    two_regime_stdp,
)

A_PLUS, A_MINUS, TAU = 0.01, 0.0105, 20.0


def _pairing(rule: ConsolidatingRule, first: str, lag: int, slow: list[bool]) -> torch.Tensor:
    """One pre neuron onto two post neurons; a spike of ``first`` at step 0 and of the other
    side at step ``lag``; returns the summed weight change of both synapses."""
    w = torch.full((2, 1), 0.5, dtype=torch.float64)
    state = rule.init(w)
    state = rule.consolidate(state, torch.tensor(slow).view(2, 1))
    total = torch.zeros_like(w)
    for t in range(lag + 1):
        pre_s = float((first == "pre" and t == 0) or (first == "post" and t == lag))
        post_s = float((first == "post" and t == 0) or (first == "pre" and t == lag))
        pre = torch.tensor([pre_s], dtype=torch.float64)
        post = torch.tensor([post_s, post_s], dtype=torch.float64)
        dw, state = rule(pre, post, state, w + total, modulator=1.0)
        total += dw
    return total.flatten()


@pytest.mark.parametrize("lag", [1, 5, 17])
def test_slow_regime_has_a_fifth_of_the_rate_and_twice_the_time_constant(lag: int) -> None:
    rule = two_regime_stdp(a_plus=A_PLUS, a_minus=A_MINUS, tau_plus_ms=TAU, tau_minus_ms=TAU)
    ltp = _pairing(rule, "pre", lag, [False, True])
    assert float(ltp[0]) == pytest.approx(A_PLUS * math.exp(-lag / TAU), rel=1e-12)
    assert float(ltp[1]) == pytest.approx(0.2 * A_PLUS * math.exp(-lag / (2 * TAU)), rel=1e-12)
    ltd = _pairing(rule, "post", lag, [True, False])
    assert float(ltd[0]) == pytest.approx(-0.2 * A_MINUS * math.exp(-lag / (2 * TAU)), rel=1e-12)
    assert float(ltd[1]) == pytest.approx(-A_MINUS * math.exp(-lag / TAU), rel=1e-12)


def test_consolidate_is_sticky_pure_and_checked() -> None:
    rule = consolidating(hebbian(lr=1.0), hebbian(lr=0.1))
    w = torch.zeros(2, 2)
    s0 = rule.init(w)
    s1 = rule.consolidate(s0, torch.tensor([[True, False], [False, False]]))
    s2 = rule.consolidate(s1, torch.tensor([[False, False], [False, True]]))
    assert not bool(s0.slow_mask.any())
    assert s2.slow_mask.tolist() == [[True, False], [False, True]]
    dw, _ = rule(torch.ones(2), torch.ones(2), s2, w)
    torch.testing.assert_close(dw, torch.tensor([[0.1, 1.0], [1.0, 0.1]]))
    with pytest.raises(ValueError, match="mask"):
        rule.consolidate(s0, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="fast"):
        consolidating(
            on_topology(hebbian(lr=1.0), CSR(torch.tensor([0, 1]), torch.tensor([0]), 1)),
            hebbian(lr=1.0),
        )


def test_transforms_and_topology_keep_the_regimes() -> None:
    """modulate() and clip() follow each regime; on a CSR topology the rule keeps consolidate."""
    topo = CSR(torch.tensor([0, 1, 2]), torch.tensor([0, 0]), 1)
    rule = on_topology(
        two_regime_stdp(a_plus=0.5, a_minus=0.0, transforms=(modulate(), clip(w_min=0, w_max=1))),
        topo,
    )
    assert isinstance(rule, ConsolidatingRule)
    w = torch.tensor([0.9, 0.9], dtype=torch.float64)
    state = rule.consolidate(rule.init(w), torch.tensor([False, True]))
    one = torch.ones(1, dtype=torch.float64)
    _, state = rule(one, torch.zeros(2, dtype=torch.float64), state, w, modulator=2.0)
    dw, _ = rule(
        torch.zeros(1, dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
        state,
        w,
        modulator=2.0,
    )
    fast = min(0.9 + 2 * 0.5 * math.exp(-1 / 20), 1.0) - 0.9
    slow = min(0.9 + 2 * 0.2 * 0.5 * math.exp(-1 / 40), 1.0) - 0.9
    torch.testing.assert_close(dw, torch.tensor([fast, slow], dtype=torch.float64))
    assert fast == pytest.approx(0.1)  # clipped at w_max
    with pytest.raises(ValueError, match="slow_tau_factor"):
        two_regime_stdp(slow_tau_factor=0.0)
    assert pair_stdp().name in rule.name
