"""The kernel-comparison helper catches wrong outputs, wrong gradients and unwritten elements."""

from __future__ import annotations

import pytest
import torch

from neuro_core.testing import assert_backends_match, poisoned_allocations


def reference(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * 2


class _WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.tanh(x) * 2

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * (1 - torch.tanh(x) ** 2)  # factor 2 missing


def forgets_last_element(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    out.view(-1)[:-1] = (torch.tanh(x) * 2).view(-1)[:-1]
    return out


def test_matching_candidate_passes() -> None:
    x = torch.randn(5, 7)
    assert_backends_match(
        reference, lambda x: torch.tanh(x) * 2, {"x": x}, dtype=torch.float32, grad=("x",)
    )


def test_wrong_output_is_caught() -> None:
    with pytest.raises(AssertionError, match="output 0"):
        assert_backends_match(
            reference, lambda x: torch.tanh(x) * 2.01, {"x": torch.randn(4, 4)}, dtype=torch.float32
        )


def test_wrong_gradient_is_caught() -> None:
    with pytest.raises(AssertionError, match="gradient of x"):
        assert_backends_match(
            reference, _WrongGrad.apply, {"x": torch.randn(4, 4)}, dtype=torch.float32, grad=("x",)
        )


def test_unwritten_element_is_caught_by_poisoning() -> None:
    x = torch.randn(3, 5)
    with pytest.raises(AssertionError):
        assert_backends_match(reference, forgets_last_element, {"x": x}, dtype=torch.float32)


def test_poisoning_is_undone() -> None:
    with poisoned_allocations():
        assert torch.isnan(torch.empty(3)).all()
        assert torch.isnan(torch.empty_like(torch.zeros(2))).all()
    assert torch.empty(2).dtype == torch.float32
    assert not torch.isnan(torch.zeros(2)).any()


def test_fp16_candidate_uses_fp16_tolerance() -> None:
    x = torch.randn(16, 16)
    assert_backends_match(
        reference,
        lambda x: torch.tanh(x.float()).half() * 2,
        {"x": x},
        dtype=torch.float16,
        grad=("x",),
    )
