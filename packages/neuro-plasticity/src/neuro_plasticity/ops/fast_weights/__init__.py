"""Fast weights: ``fast_weights(q, k, v, ...)`` over a sequence and ``fast_weights_step`` per token.

Backends: ``"reference"`` (the recurrent loop, the spec), ``"chunked"`` (chunk-parallel PyTorch,
the CPU default), ``"triton"`` (fused chunked kernel, forward and backward; Hebbian rule only; the
CUDA default for it). All speed heuristics live here.
"""

from __future__ import annotations

from typing import Literal

import torch

from neuro_core.dispatch import resolve_backend, triton_available
from neuro_core.validation import check_in_range, check_positive, check_same_device, check_tensor
from neuro_plasticity.ops.fast_weights.chunked import fast_weights_chunked
from neuro_plasticity.ops.fast_weights.reference import (
    FastWeightRule,
    FastWeightState,
    fast_weights_reference,
    fast_weights_step_reference,
)

FastWeightBackend = Literal["auto", "reference", "chunked", "triton"]
Normalize = Literal["none", "l2"]
_RULES = ("hebbian", "delta", "oja")


def _normalize(x: torch.Tensor, normalize: str) -> torch.Tensor:
    if normalize == "l2":
        return x / x.float().norm(dim=-1, keepdim=True).clamp_min(1e-6).to(x.dtype)
    return x


def _check(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    strength: torch.Tensor | None,
    state: torch.Tensor | None,
    rule: str,
    lr: float,
    decay: float,
    normalize: str,
    *,
    step: bool,
) -> None:
    nd = 3 if step else 4
    check_tensor("q", q, ndim=nd, floating=True)
    check_tensor("k", k, shape=q.shape, dtype=q.dtype, device=q.device)
    check_tensor("v", v, ndim=nd, shape=(*q.shape[:-1], None), dtype=q.dtype, device=q.device)
    lead = q.shape[:-1]
    if strength is not None:
        check_tensor("strength", strength, shape=lead, floating=True, device=q.device)
    if state is not None:
        b, h = (q.shape[0], q.shape[1]) if step else (q.shape[0], q.shape[2])
        name = "state" if step else "initial_state"
        check_tensor(
            name, state, shape=(b, h, q.shape[-1], v.shape[-1]), floating=True, device=q.device
        )
    check_same_device(q=q, k=k, v=v, strength=strength)
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
    check_positive("lr", lr, allow_zero=True)
    check_in_range("decay", decay, 0.0, 1.0, low_open=True)
    if rule == "delta" and decay != 1.0:
        raise ValueError(
            "decay must be 1.0 for rule='delta' (the delta rule here has no forgetting)"
        )
    if normalize not in ("none", "l2"):
        raise ValueError(f"normalize must be 'none' or 'l2', got {normalize!r}")


def _check_oja_retention(
    v: torch.Tensor, strength: torch.Tensor | None, lr: float, decay: float
) -> None:
    with torch.no_grad():
        eta = lr if strength is None else lr * strength.float()[..., None]
        if bool(((decay - eta * v.float().pow(2)) <= 0).any()):
            raise ValueError(
                "v: rule='oja' needs decay − lr·strength·v² > 0 for every channel; scale v down or lower lr"
            )


def fast_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    rule: FastWeightRule = "hebbian",
    lr: float = 1.0,
    decay: float = 1.0,
    strength: torch.Tensor | None = None,
    normalize: Normalize = "none",
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    backend: FastWeightBackend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal fast-weight mixer over a sequence (equations in :mod:`.reference`).

    Args:
        q, k: ``[B, T, H, Dk]``.
        v: ``[B, T, H, Dv]``.
        rule: ``"hebbian"``, ``"delta"`` or ``"oja"``.
        lr: η ≥ 0.
        decay: retention λ ∈ (0, 1] (must be 1 for ``"delta"``).
        strength: optional per-token write strength β ``[B, T, H]`` (gate or reward).
        normalize: ``"l2"`` divides q and k by their L2 norm first (Schlag et al. 2021 normalise
            keys so the delta rule stays stable); ``"none"`` leaves them.
        initial_state: ``[B, H, Dk, Dv]`` or None (zeros).
        chunk_size: C for the chunked and Triton backends (≥ 1).
        backend: ``"auto"``: Triton for the Hebbian rule on CUDA, otherwise chunked.

    Returns:
        ``(o [B, T, H, Dv] in v.dtype, final state [B, H, Dk, Dv] fp32)``.
    """
    _check(q, k, v, strength, initial_state, rule, lr, decay, normalize, step=False)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    q, k = _normalize(q, normalize), _normalize(k, normalize)
    if rule == "oja":
        _check_oja_retention(v, strength, lr, decay)
    supported = ("auto", "reference", "chunked", "triton")
    if backend == "auto":
        use_triton = q.device.type == "cuda" and rule == "hebbian" and triton_available()
        chosen = "triton" if use_triton else "chunked"
    else:
        chosen = resolve_backend(backend, q, supported=supported, op="fast_weights")
    if chosen == "triton":
        if rule != "hebbian":
            raise ValueError(f"backend='triton' supports rule='hebbian' only, got rule={rule!r}")
        from neuro_plasticity.ops.fast_weights.triton import hebbian_fast_weights_triton

        if strength is not None:
            v = v * strength[..., None].to(v.dtype)
        return hebbian_fast_weights_triton(
            q, k, v, initial_state, lr=lr, decay=decay, chunk_size=chunk_size
        )
    if chosen == "chunked":
        return fast_weights_chunked(
            q,
            k,
            v,
            strength,
            initial_state,
            rule=rule,
            lr=lr,
            decay=decay,
            chunk_size=int(chunk_size),
        )
    return fast_weights_reference(q, k, v, strength, initial_state, rule=rule, lr=lr, decay=decay)


def fast_weights_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: FastWeightState | None = None,
    *,
    rule: FastWeightRule = "hebbian",
    lr: float = 1.0,
    decay: float = 1.0,
    strength: torch.Tensor | None = None,
    normalize: Normalize = "none",
) -> tuple[torch.Tensor, FastWeightState]:
    """One token of :func:`fast_weights` for generation, with explicit state.

    Args:
        q, k: ``[B, H, Dk]``; v: ``[B, H, Dv]``; strength: ``[B, H]`` or None.
        state: previous :class:`FastWeightState` or None (zeros).

    Returns:
        ``(o [B, H, Dv] in v.dtype, new state)``.
    """
    s = None if state is None else state.S
    _check(q, k, v, strength, s, rule, lr, decay, normalize, step=True)
    q, k = _normalize(q, normalize), _normalize(k, normalize)
    if rule == "oja":
        _check_oja_retention(v, strength, lr, decay)
    compute = torch.promote_types(q.dtype, torch.float32)
    if s is None:
        s = q.new_zeros(q.shape[0], q.shape[1], q.shape[2], v.shape[2], dtype=compute)
    o, s = fast_weights_step_reference(
        q.to(compute),
        k.to(compute),
        v.to(compute),
        s.to(compute),
        None if strength is None else strength.to(compute),
        rule=rule,
        lr=lr,
        decay=decay,
    )
    return o.to(v.dtype), FastWeightState(s)


__all__ = [
    "FastWeightBackend",
    "FastWeightRule",
    "FastWeightState",
    "Normalize",
    "fast_weights",
    "fast_weights_chunked",
    "fast_weights_reference",
    "fast_weights_step",
]
