"""Aura's training loss (``HippocampalLoss`` of auralmn/aura-snn-rag, reference-systems §3.2).

The loss is ::

    L = CE_ε(z, y) − λ_H · mean_t H(softmax z_t) + λ_a · (mean(a) − ρ)²

with label-smoothed cross-entropy ``CE_ε = (1 − ε)(−log p_y) + ε · mean_v(−log p_v)``
(``ε = 0.1``), an entropy bonus ``λ_H = 0.05`` that rewards flatter predictions, and a penalty
``λ_a = 0.02`` pulling the mean place-cell activity ``a`` towards the target sparsity
``ρ = 0.03`` (the encoder's top-k keeps 3 % of the cells). The Colab notebook trains with plain
CE and ``ε = 0.2`` instead.

What to watch (§3.3): the published "perplexity" was ``exp`` of this loss (label smoothing and
entropy bonus included, on training batches), which is not a perplexity: the smoothing alone
puts a floor of ≈ 3.9 (ε = 0.1, V = 32k) under it. The report therefore carries the plain
``aura/nll`` (no smoothing, no bonus) next to every term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import (
    check_in_range,
    check_positive,
    check_tensor,
    finite_checks_enabled,
)

#: Defaults of ``HippocampalLoss`` in ``colab_l4_training.py``.
PUBLISHED_LABEL_SMOOTHING = 0.1
PUBLISHED_ENTROPY_WEIGHT = 0.05
PUBLISHED_ACTIVITY_WEIGHT = 0.02
PUBLISHED_TARGET_ACTIVITY = 0.03


def aura_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    place_activity: torch.Tensor | None = None,
    *,
    label_smoothing: float = PUBLISHED_LABEL_SMOOTHING,
    entropy_weight: float = PUBLISHED_ENTROPY_WEIGHT,
    activity_weight: float = PUBLISHED_ACTIVITY_WEIGHT,
    target_activity: float = PUBLISHED_TARGET_ACTIVITY,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Aura's loss (see the module docstring), computed in float32 or wider.

    Args:
        logits: ``[..., V]``.
        targets: ``[...]`` int64; positions equal to ``ignore_index`` are left out of every mean.
        place_activity: place-cell activations ``a`` (any shape), or ``None`` to drop the term.
        label_smoothing: ``ε`` in [0, 1).
        entropy_weight: ``λ_H`` ≥ 0; activity_weight: ``λ_a`` ≥ 0; target_activity: ``ρ``.
        ignore_index: padding target id.

    Returns:
        ``(loss, report)`` with ``aura/ce_smoothed``, ``aura/nll``, ``aura/entropy``,
        ``aura/activity`` (if given) and ``aura/loss``, detached.
    """
    check_tensor("logits", logits, floating=True, finite=True)
    if logits.ndim < 1:
        raise ValueError(f"logits must be [..., V], got {tuple(logits.shape)}")
    check_tensor("targets", targets, dtype=(torch.int64,), device=logits.device)
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets must have shape {tuple(logits.shape[:-1])} (logits without V), "
            f"got {tuple(targets.shape)}"
        )
    eps = check_in_range("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    lam_h = check_positive("entropy_weight", entropy_weight, allow_zero=True)
    lam_a = check_positive("activity_weight", activity_weight, allow_zero=True)
    v = logits.shape[-1]
    z = logits.reshape(-1, v)
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    y = targets.reshape(-1)
    valid = y != ignore_index
    if not bool(valid.any()):
        raise ValueError("targets must hold at least one position that is not ignore_index")
    if finite_checks_enabled() and bool(((y[valid] < 0) | (y[valid] >= v)).any()):
        raise ValueError(f"targets must lie in [0, V = {v}) or equal ignore_index")
    zv, yv = z[valid], y[valid]
    ce_smoothed = F.cross_entropy(zv, yv, label_smoothing=eps)
    logp = zv.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    loss = ce_smoothed - lam_h * entropy
    report = {
        "aura/ce_smoothed": ce_smoothed.detach(),
        "aura/nll": F.nll_loss(logp.detach(), yv),
        "aura/entropy": entropy.detach(),
    }
    if place_activity is not None:
        check_tensor("place_activity", place_activity, floating=True, finite=True)
        act = place_activity.mean()
        loss = loss + lam_a * (act - float(target_activity)) ** 2
        report["aura/activity"] = act.detach()
    report["aura/loss"] = loss.detach()
    return loss, report


class HippocampalLoss(nn.Module):
    """:func:`aura_loss` as a module with the published weights as defaults.

    ``forward(logits, targets, place_activity=None)`` returns ``(loss, report)``.
    """

    def __init__(
        self,
        *,
        label_smoothing: float = PUBLISHED_LABEL_SMOOTHING,
        entropy_weight: float = PUBLISHED_ENTROPY_WEIGHT,
        activity_weight: float = PUBLISHED_ACTIVITY_WEIGHT,
        target_activity: float = PUBLISHED_TARGET_ACTIVITY,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.label_smoothing = check_in_range(
            "label_smoothing", label_smoothing, 0.0, 1.0, high_open=True
        )
        self.entropy_weight = check_positive("entropy_weight", entropy_weight, allow_zero=True)
        self.activity_weight = check_positive("activity_weight", activity_weight, allow_zero=True)
        self.target_activity = float(target_activity)
        self.ignore_index = int(ignore_index)

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        place_activity: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return aura_loss(
            logits,
            targets,
            place_activity,
            label_smoothing=self.label_smoothing,
            entropy_weight=self.entropy_weight,
            activity_weight=self.activity_weight,
            target_activity=self.target_activity,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (
            f"label_smoothing={self.label_smoothing}, entropy_weight={self.entropy_weight}, "
            f"activity_weight={self.activity_weight}, target_activity={self.target_activity}"
        )
