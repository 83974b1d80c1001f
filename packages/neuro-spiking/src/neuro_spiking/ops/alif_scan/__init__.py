"""Fused multi-step adaptive LIF: ``fused_alif_scan(x, v0, a0, beta=..., backend="auto")``.

Backends: ``"reference"`` (:mod:`.reference`, autograd), ``"fused"`` (:mod:`.fused`: eager,
spikes out, state recomputed chunk by chunk in a hand-written backward), ``"compile"``
(``torch.compile`` of the reference; one graph per T), ``"triton"`` (:mod:`.triton`, one launch
forward and one backward). ``"auto"``: Triton on CUDA when the surrogate has a kernel form, else
``"compile"`` on CPU when ``NEURO_CPU_COMPILE=1``, else ``"fused"`` on CPU and the reference on
other devices.
"""

from __future__ import annotations

import torch

from neuro_core.dispatch import compiled, resolve_backend
from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_spiking._common import check_binary_surrogate, check_reset
from neuro_spiking.ops.alif_scan.reference import alif_scan_reference
from neuro_spiking.ops.lif_scan import TRITON_SURROGATES, _as_beta, check_lif_inputs
from neuro_spiking.ops.lif_scan.reference import LIFConstants, Reset
from neuro_spiking.surrogates import ATan, Surrogate

_compiled_reference = compiled(alif_scan_reference)
_SUPPORTED = ("auto", "reference", "fused", "compile", "triton")


def fused_alif_scan(
    x: torch.Tensor,
    v0: torch.Tensor | None = None,
    a0: torch.Tensor | None = None,
    *,
    beta: float | torch.Tensor,
    rho: float,
    adapt_increment: float,
    v_rest: float = 0.0,
    threshold: float = 1.0,
    v_reset: float = 0.0,
    reset: Reset = "subtract",
    detach_reset: bool = False,
    surrogate: Surrogate | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adaptive LIF over ``x [T, B, ...]``; see :mod:`.reference` for the equations.

    Args:
        x: ``[T, B, ...]`` input increments. v0, a0: ``[B, ...]`` (zeros when None).
        beta: membrane decay in (0, 1], float or per-neuron tensor (receives a gradient).
        rho: adaptation decay in (0, 1]. adapt_increment: Δθ ≥ 0 per spike.
        v_rest, threshold (θ₀), v_reset, reset, detach_reset, surrogate: as in
            :func:`~neuro_spiking.ops.lif_scan.fused_lif_scan`.

    Returns:
        ``(spikes [T, B, ...], v_T, a_T)``.
    """
    v0 = check_lif_inputs(x, v0, threshold, v_reset)
    if a0 is None:
        a0 = torch.zeros_like(v0)
    check_tensor("a0", a0, shape=tuple(x.shape[1:]), device=x.device, floating=True)
    b = _as_beta(beta, x)
    check_in_range("rho", rho, 0.0, 1.0, low_open=True)
    check_positive("adapt_increment", adapt_increment, allow_zero=True)
    surrogate = ATan() if surrogate is None else surrogate
    check_binary_surrogate(surrogate)
    check_reset(reset)
    chosen = resolve_backend(backend, x, supported=_SUPPORTED, op="fused_alif_scan")
    if chosen == "triton" and surrogate.kind not in TRITON_SURROGATES:
        if backend == "triton":
            raise ValueError(f"surrogate {type(surrogate).__name__} has no Triton form")
        chosen = "reference"
    if backend == "auto" and chosen == "reference" and x.device.type == "cpu":
        chosen = "fused"
    c = LIFConstants(
        float(v_rest), float(threshold), float(v_reset), reset, bool(detach_reset), surrogate
    )
    args = (x, v0, a0, b, float(rho), float(adapt_increment), c)
    if chosen == "triton":
        from neuro_spiking.ops.alif_scan.triton import alif_scan_triton

        return alif_scan_triton(*args)
    if chosen == "compile":
        return _compiled_reference(*args)  # type: ignore[no-any-return, arg-type]
    if chosen == "fused":
        from neuro_spiking.ops.alif_scan.fused import DEFAULT_CHUNK, ALIFScanFunction

        s, v, a = ALIFScanFunction.apply(*args, DEFAULT_CHUNK)
        return s, v, a
    return alif_scan_reference(*args)


__all__ = ["fused_alif_scan"]
