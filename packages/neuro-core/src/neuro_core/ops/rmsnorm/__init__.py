"""RMSNorm: ``rms_norm(x, weight, eps, backend="auto")`` and the :class:`RMSNorm` module."""

from __future__ import annotations

import torch
from torch import nn

from neuro_core.dispatch import Backend, compiled, resolve_backend
from neuro_core.ops.rmsnorm.reference import rms_norm_reference
from neuro_core.validation import check_positive, check_tensor

_compiled_reference = compiled(rms_norm_reference)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-6,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """RMSNorm over the last dimension; see :func:`rms_norm_reference` for the equation.

    Args:
        x: ``[..., N]`` floating-point input.
        weight: ``[N]`` scale or None.
        eps: stabilizer, > 0.
        backend: ``"auto"`` (Triton on CUDA, reference on CPU), ``"reference"``, ``"triton"``,
            ``"compile"`` (``torch.compile`` of the reference).

    Returns:
        ``[..., N]`` in ``x.dtype``.
    """
    check_tensor("x", x, floating=True)
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dim, got a scalar")
    if weight is not None:
        check_tensor("weight", weight, shape=(x.shape[-1],), device=x.device, floating=True)
    check_positive("eps", eps)
    chosen = resolve_backend(backend, x, op="rms_norm")
    if chosen == "triton":
        from neuro_core.ops.rmsnorm.triton import rms_norm_triton

        return rms_norm_triton(x, weight, eps)
    if chosen == "compile":
        return _compiled_reference(x, weight, eps)
    return rms_norm_reference(x, weight, eps)


class RMSNorm(nn.Module):
    """RMSNorm with a learnable scale initialized to ones (``dim`` parameters)."""

    def __init__(self, dim: int, eps: float = 1e-6, *, backend: Backend = "auto") -> None:
        super().__init__()
        check_positive("eps", eps)
        self.eps = eps
        self.backend: Backend = backend
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, backend=self.backend)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, backend={self.backend!r}"


__all__ = ["RMSNorm", "rms_norm", "rms_norm_reference"]
