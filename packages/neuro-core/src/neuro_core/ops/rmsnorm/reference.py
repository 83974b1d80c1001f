"""RMSNorm, the readable spec (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization").

    y = x / sqrt(mean(x², dim=-1) + eps) · weight

The statistic is computed in (at least) fp32 whatever the input dtype, then the result is cast back to the
input dtype (the convention of Llama and of ``torch.nn.RMSNorm`` under autocast).
"""

from __future__ import annotations

import torch


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension.

    Args:
        x: ``[..., N]``.
        weight: ``[N]`` scale, or None for no scale.
        eps: added to the mean square before the square root.

    Returns:
        ``[..., N]`` in ``x.dtype``.
    """
    compute = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(compute)
    y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.to(compute)
    return y.to(x.dtype)
