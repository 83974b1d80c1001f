"""Fused multi-step LIF: ``fused_lif_scan(x, v0, beta=..., backend="auto")``.

Backends:

``"reference"``
    :func:`.reference.lif_scan_reference`, a Python loop under autograd (the spec).
``"fused"``
    :class:`.fused.LIFScanFunction`: hand-written backward, spikes out, membranes recomputed
    from ``T/chunk`` checkpoints in the backward (eager torch ops).
``"compile"``
    the same function with its chunk forward/backward ``torch.compile``\\ d (one fused loop per
    chunk of ``chunk`` steps); pays off for long runs, costs a compile per new shape.
``"triton"``
    :mod:`.triton` kernels, one launch for all T steps forward and one backward, membrane in
    registers (CUDA, or the CPU interpreter under ``TRITON_INTERPRET=1``).

``"auto"``: Triton on CUDA when the surrogate has a kernel form, else ``"compile"`` on CPU when
``NEURO_CPU_COMPILE=1``, else ``"fused"``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from neuro_core.dispatch import cpu_compile_enabled, resolve_backend, triton_available
from neuro_core.validation import check_tensor
from neuro_spiking._common import check_binary_surrogate, check_reset
from neuro_spiking.ops.lif_scan.reference import LIFConstants, Reset, lif_scan_reference
from neuro_spiking.surrogates import ATan, Surrogate

#: Surrogate kinds the Triton kernels evaluate in registers.
TRITON_SURROGATES = frozenset({"atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular"})
#: Steps between membrane checkpoints of the fused CPU backend (√64 for the benchmark T=64).
DEFAULT_CHUNK = 8

_SUPPORTED = ("auto", "reference", "fused", "compile", "triton")


class LIFScanOutput(NamedTuple):
    """``spikes [T, B, ...]``; ``membrane [T, B, ...]`` (post-reset, None unless requested);
    ``v [B, ...]`` the membrane after the last step."""

    spikes: torch.Tensor
    membrane: torch.Tensor | None
    v: torch.Tensor


def check_lif_inputs(
    x: torch.Tensor, v0: torch.Tensor | None, threshold: float, v_reset: float
) -> torch.Tensor:
    """Validate a ``[T, B, ...]`` input and its initial membrane; return ``v0`` (zeros if None)."""
    check_tensor("x", x, floating=True)
    if x.ndim < 2:
        raise ValueError(f"x must be shaped [T, B, ...] (≥ 2 dims), got shape {tuple(x.shape)}")
    if not threshold > v_reset:
        raise ValueError(
            f"threshold must be > v_reset, got threshold={threshold}, v_reset={v_reset}"
        )
    if v0 is None:
        return x.new_zeros(x.shape[1:])
    check_tensor("v0", v0, shape=tuple(x.shape[1:]), device=x.device, floating=True)
    return v0


def _as_beta(beta: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(beta, torch.Tensor):
        b = float(beta)
        if not 0.0 < b <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {beta!r}")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return torch.tensor(b, dtype=dtype, device=x.device)
    check_tensor("beta", beta, floating=True, device=x.device)
    try:
        torch.broadcast_shapes(beta.shape, x.shape[2:])
    except RuntimeError:
        raise ValueError(
            f"beta must broadcast to the neuron shape {tuple(x.shape[2:])}, got {tuple(beta.shape)}"
        ) from None
    if beta.ndim > x.ndim - 2:
        raise ValueError(f"beta may not have a batch dim; got shape {tuple(beta.shape)}")
    return beta


def fused_lif_scan(
    x: torch.Tensor,
    v0: torch.Tensor | None = None,
    *,
    beta: float | torch.Tensor,
    v_rest: float = 0.0,
    threshold: float = 1.0,
    v_reset: float = 0.0,
    reset: Reset = "subtract",
    detach_reset: bool = False,
    surrogate: Surrogate | None = None,
    store_membrane: bool = False,
    chunk: int = DEFAULT_CHUNK,
    backend: str = "auto",
) -> LIFScanOutput:
    """Multi-step LIF over ``x [T, B, ...]``; see :mod:`.reference` for the equations.

    Args:
        x: ``[T, B, ...]`` floating input (voltage increment per step).
        v0: ``[B, ...]`` initial membrane; zeros when None.
        beta: decay ``β = 1 − dt/τ`` (Euler) or ``exp(−dt/τ)``, in (0, 1]; a float or a tensor
            broadcastable to ``x.shape[2:]`` (learnable, per neuron).
        v_rest, threshold, v_reset: potentials; ``threshold > v_reset``. Defaults 0, 1, 0 (the
            normalized units of snnTorch and SpikingJelly).
        reset: ``"subtract"`` (default) or ``"hard"``.
        detach_reset: no gradient through the reset (default False).
        surrogate: default :class:`~neuro_spiking.surrogates.ATan` ``(slope=2)``.
        store_membrane: return the post-reset membrane trace too.
        chunk: checkpoint interval of the fused backends (memory ∝ T/chunk + chunk).
        backend: see the module docstring.

    Returns:
        :class:`LIFScanOutput`.
    """
    v0 = check_lif_inputs(x, v0, threshold, v_reset)
    b = _as_beta(beta, x)
    surrogate = ATan() if surrogate is None else surrogate
    check_binary_surrogate(surrogate)
    check_reset(reset)
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be an integer ≥ 1, got {chunk!r}")
    chosen = _resolve(backend, x, surrogate)
    c = LIFConstants(
        float(v_rest), float(threshold), float(v_reset), reset, bool(detach_reset), surrogate
    )
    store = bool(store_membrane)
    if chosen == "reference":
        return LIFScanOutput(*lif_scan_reference(x, v0, b, c, store))
    if chosen == "triton":
        from neuro_spiking.ops.lif_scan.triton import lif_scan_triton

        return LIFScanOutput(*lif_scan_triton(x, v0, b, c, store))
    from neuro_spiking.ops.lif_scan.fused import LIFScanFunction

    s, m, v = LIFScanFunction.apply(x, v0, b, c, store, int(chunk), chosen == "compile")
    return LIFScanOutput(s, m if store else None, v)


def _resolve(backend: str, x: torch.Tensor, surrogate: Surrogate) -> str:
    if backend == "auto":
        if x.device.type == "cuda" and triton_available() and surrogate.kind in TRITON_SURROGATES:
            return "triton"
        if x.device.type == "cuda":
            return "reference"
        return "compile" if cpu_compile_enabled() else "fused"
    chosen = resolve_backend(backend, x, supported=_SUPPORTED, op="fused_lif_scan")
    if chosen == "triton" and surrogate.kind not in TRITON_SURROGATES:
        raise ValueError(
            f"surrogate {type(surrogate).__name__} has no Triton form; use backend='fused'"
        )
    return chosen


__all__ = [
    "DEFAULT_CHUNK",
    "TRITON_SURROGATES",
    "LIFConstants",
    "LIFScanOutput",
    "check_lif_inputs",
    "fused_lif_scan",
]
