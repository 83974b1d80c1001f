"""Fused multi-step multi-bit GIF: ``fused_gif_scan(x, v0, theta0, beta=..., backend="auto")``.

Backends: ``"reference"`` (:mod:`.reference`, autograd), ``"fused"`` (:mod:`.fused`: eager,
spikes out, state recomputed chunk by chunk in a hand-written backward), ``"compile"``
(``torch.compile`` of the reference), ``"triton"`` (:mod:`.triton`, one launch forward and one
backward). ``"auto"``: Triton on CUDA, ``"compile"`` on CPU when ``NEURO_CPU_COMPILE=1``, else
``"fused"`` on CPU and the reference on other devices.
"""

from __future__ import annotations

import torch

from neuro_core.dispatch import compiled, resolve_backend
from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_spiking.ops.gif_scan.reference import GIFConstants, gif_scan_reference

_compiled_reference = compiled(gif_scan_reference)
_SUPPORTED = ("auto", "reference", "fused", "compile", "triton")


def fused_gif_scan(
    x: torch.Tensor,
    v0: torch.Tensor | None = None,
    theta0: torch.Tensor | None = None,
    *,
    beta: float,
    theta_rest: float = 1.0,
    levels: int = 16,
    adapt_rate: float = 0.01,
    clamp_factor: float = 2.0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multi-bit GIF over ``x [T, B, ...]``; see :mod:`.reference` for the equations.

    Args:
        x: ``[T, B, ...]``. v0: ``[B, ...]`` (zeros). theta0: ``[B, ...]`` (``theta_rest``).
        beta: membrane decay in (0, 1]. theta_rest: θ₀ > 0. levels: L ≥ 1.
        adapt_rate: α in [0, 1]. clamp_factor: c > 0.

    Returns:
        ``(spikes [T, B, ...], v_T, θ_T)``.
    """
    check_tensor("x", x, floating=True)
    if x.ndim < 2:
        raise ValueError(f"x must be shaped [T, B, ...] (≥ 2 dims), got shape {tuple(x.shape)}")
    check_in_range("beta", beta, 0.0, 1.0, low_open=True)
    check_positive("theta_rest", theta_rest)
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels must be an integer ≥ 1, got {levels!r}")
    check_in_range("adapt_rate", adapt_rate, 0.0, 1.0)
    check_positive("clamp_factor", clamp_factor)
    v0 = x.new_zeros(x.shape[1:]) if v0 is None else v0
    theta0 = x.new_full(x.shape[1:], theta_rest) if theta0 is None else theta0
    check_tensor("v0", v0, shape=tuple(x.shape[1:]), device=x.device, floating=True)
    check_tensor("theta0", theta0, shape=tuple(x.shape[1:]), device=x.device, floating=True)
    chosen = resolve_backend(backend, x, supported=_SUPPORTED, op="fused_gif_scan")
    if backend == "auto" and chosen == "reference" and x.device.type == "cpu":
        chosen = "fused"
    c = GIFConstants(
        float(beta), float(theta_rest), int(levels), float(adapt_rate), float(clamp_factor)
    )
    args = (x, v0, theta0, c)
    if chosen == "triton":
        from neuro_spiking.ops.gif_scan.triton import gif_scan_triton

        return gif_scan_triton(*args)
    if chosen == "compile":
        return _compiled_reference(*args)  # type: ignore[no-any-return]
    if chosen == "fused":
        from neuro_spiking.ops.gif_scan.fused import DEFAULT_CHUNK, GIFScanFunction

        s, v, th = GIFScanFunction.apply(*args, DEFAULT_CHUNK)
        return s, v, th
    return gif_scan_reference(*args)


__all__ = ["fused_gif_scan"]
