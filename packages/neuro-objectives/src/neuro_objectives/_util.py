"""Helpers shared by the objective modules (masking, pair indices); not public API."""

from __future__ import annotations

import torch

from neuro_core.validation import check_tensor


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, name: str = "mask") -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` (same shape as ``x``) is true.

    With no mask, the plain mean. A mask with no true entry gives 0 (not NaN), so a batch that
    is entirely padding contributes nothing.
    """
    if mask is None:
        return x.mean()
    check_tensor(name, mask, device=x.device)
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"{name} must have shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def check_mask(name: str, mask: torch.Tensor | None, shape: tuple[int, ...], device: torch.device):
    """Validate an optional bool/0-1 mask of an exact shape; return it as bool or None."""
    if mask is None:
        return None
    check_tensor(name, mask, device=device)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.is_floating_point() and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold 0/1 or bool values")
    return mask.bool()


def pair_indices(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of every unordered pair ``i < j`` of ``n`` items."""
    iu = torch.triu_indices(n, n, offset=1, device=device)
    return iu[0], iu[1]
