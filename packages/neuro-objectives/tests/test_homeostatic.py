import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    PUBLISHED_WEIGHT,
    HomeostaticRegularizer,
    homeostatic_penalty,
    homeostatic_terms,
)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=4),
    weight=st.floats(0, 2),
    target=st.floats(-1, 2),
)
def test_constant_signals_give_the_closed_form(
    values: list[float], weight: float, target: float
) -> None:
    """λ Σ_s (c_s − s*)² for signals constant at c_s, whatever their shape."""
    signals = {f"s{i}": torch.full((2, 5, 3), v) for i, v in enumerate(values)}
    got = homeostatic_penalty(signals, weight=weight, target=target)
    want = weight * sum((v - target) ** 2 for v in values)
    assert math.isclose(float(got), want, rel_tol=1e-5, abs_tol=1e-6)


def test_published_init_reproduces_the_logged_plateau() -> None:
    """With the NCN biases zeroed (β = softplus(0)+0.01, γ = σ(0), g = 2σ(0)) the term is the
    0.0033-0.0034 that the published training log shows from step 20 to the end."""
    shape = (4, 16, 6)
    beta = torch.full(shape, math.log(2.0) + 0.01)
    gate = torch.full(shape, 0.5)
    gain = torch.ones(shape)
    reg = homeostatic_penalty({"gain": gain, "precision": beta, "gate": gate})
    assert PUBLISHED_WEIGHT == 0.01
    assert 0.0033 <= float(reg) <= 0.0035


def test_mask_ignores_masked_positions() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 7, 2, generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.4
    poisoned = s.clone()
    poisoned[~mask] = 1e6
    got = homeostatic_terms({"s": poisoned}, mask=mask)["s"]
    want = (s[mask] - 1).pow(2).mean()
    torch.testing.assert_close(got, want)


def test_gradient_is_the_analytic_one() -> None:
    s = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    homeostatic_penalty({"s": s}, weight=0.3).backward()
    torch.testing.assert_close(s.grad, 0.3 * 2 * (s.detach() - 1) / s.numel())


def test_gradient_descent_drives_signals_to_the_set_point() -> None:
    s = torch.tensor([[[-2.0, 0.3, 4.0]]], requires_grad=True)
    opt = torch.optim.SGD([s], lr=10.0)
    for _ in range(200):
        opt.zero_grad()
        homeostatic_penalty({"s": s}, weight=0.1).backward()
        opt.step()
    torch.testing.assert_close(s.detach(), torch.ones_like(s), atol=1e-4, rtol=0)


def test_module_reports_each_term_separately() -> None:
    reg = HomeostaticRegularizer(weight=0.5)
    signals = {"gain": torch.full((1, 2, 1), 2.0), "gate": torch.full((1, 2, 1), 0.0)}
    penalty, report = reg(signals)
    assert float(report["homeostatic/gain"]) == pytest.approx(1.0)
    assert float(report["homeostatic/gate"]) == pytest.approx(1.0)
    assert float(penalty) == pytest.approx(1.0)
    assert not report["homeostatic"].requires_grad
    assert penalty.requires_grad is False  # no parameter involved; signals were leaves without grad


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="weight"):
        HomeostaticRegularizer(weight=-1.0)
    with pytest.raises(ValueError, match="signals"):
        homeostatic_penalty({})
    with pytest.raises(ValueError, match="gate"):
        homeostatic_penalty({"gate": torch.ones(2, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match="mask"):
        homeostatic_terms({"s": torch.ones(2, 3, 4)}, mask=torch.ones(3, 2, dtype=torch.bool))
