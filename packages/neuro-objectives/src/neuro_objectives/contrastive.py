"""Contrastive predictive coding: InfoNCE with a bilinear score (van den Oord et al. 2018, CPC).

For a context ``c_{b,t}`` (built from positions ≤ t only) and targets ``z_{b,s}``, the score is
bilinear, ``f(c, z) = cᵀ W z``, and the loss at horizon ``k`` is ::

    L = mean_{b, t < T−k} −log [ exp f(c_{b,t}, z_{b,t+k}) / Σ_{z ∈ {z_{b,t+k}} ∪ N_{b,t}} exp f(c_{b,t}, z) ]

Negatives ``N_{b,t}`` come from the other sequences of the batch, never from sequence ``b`` itself,
so a position never scores against its own future (``t+1 … T−1``): with ``negatives="same_step"``
(default, CPC's choice) they are ``z_{b',t+k}`` for ``b' ≠ b``; with ``"all_steps"`` every
``z_{b',s}``, ``b' ≠ b``. ``num_negatives`` draws that many of them at random per anchor (16 in
NeuroLlama's ``PredictiveCodingConfig``); ``None`` uses them all. ``L ≥ 0``, it equals
``ln(1 + |N|)`` when every score is equal, and ``ln(1 + |N|) − L`` is a lower bound on the mutual
information ``I(c_t; z_{t+k})``.

Note (reference-systems §1.6): with ``k = 1`` and token embeddings as targets this is a
sampled-softmax version of the LM loss itself, so expect little extra signal.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_tensor
from neuro_objectives._util import check_mask

NegativeSource = Literal["same_step", "all_steps"]

#: Defaults of NeuroLlama's ``PredictiveCodingConfig``.
PUBLISHED_NUM_NEGATIVES = 16
PUBLISHED_HORIZON = 1
PUBLISHED_CONTRASTIVE_WEIGHT = 0.05


def info_nce_terms(
    context: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    *,
    horizon: int = PUBLISHED_HORIZON,
    negatives: NegativeSource = "same_step",
    num_negatives: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-anchor InfoNCE losses ``[B, T − k]`` (see the module docstring for the equation).

    Args:
        context: ``c``, ``[B, T, Dc]``, causal (position t summarizes inputs ≤ t).
        targets: ``z``, ``[B, T, Dz]``.
        weight: ``W``, ``[Dc, Dz]``.
        horizon: ``k ≥ 1``.
        negatives: ``"same_step"`` or ``"all_steps"``.
        num_negatives: negatives drawn per anchor without replacement, or ``None`` for all of
            them (``B − 1`` or ``(B − 1)·(T − k)`` candidates).
        generator: RNG for the draw.

    Raises:
        ValueError: bad shapes, ``B < 2`` (no negatives), ``T ≤ k``, or more negatives requested
            than candidates exist.
    """
    check_tensor("context", context, ndim=3, floating=True, finite=True)
    check_tensor("targets", targets, ndim=3, floating=True, finite=True, device=context.device)
    check_tensor("weight", weight, ndim=2, floating=True, device=context.device)
    b, t, dc = context.shape
    if tuple(targets.shape[:2]) != (b, t):
        raise ValueError(
            f"targets must have shape [B, T, *] = [{b}, {t}, *], got {tuple(targets.shape)}"
        )
    if tuple(weight.shape) != (dc, targets.shape[2]):
        raise ValueError(
            f"weight must have shape [Dc, Dz] = [{dc}, {targets.shape[2]}], got {tuple(weight.shape)}"
        )
    k = int(horizon)
    if k < 1 or k >= t:
        raise ValueError(f"horizon must be in [1, T) = [1, {t}), got {horizon}")
    if b < 2:
        raise ValueError(
            f"context must hold ≥ 2 sequences (negatives come from the batch), got B={b}"
        )
    tp = t - k
    proj = torch.einsum("btc,cd->btd", context[:, :tp], weight)  # [B, T', Dz]
    future = targets[:, k:]  # [B, T', Dz], z_{b, t+k}
    if negatives == "same_step":
        # s[t, b, b'] = f(c_{b,t}, z_{b',t+k}); the positive is b' = b
        scores = torch.einsum("btd,ctd->tbc", proj, future)
        positive = torch.diagonal(scores, dim1=1, dim2=2)  # [T', B]
        cand = ~torch.eye(b, dtype=torch.bool, device=context.device).expand(tp, b, b)
    elif negatives == "all_steps":
        # s[b, t, b', s] = f(c_{b,t}, z_{b',s+k}), negatives only from b' ≠ b
        scores_full = torch.einsum("btd,csd->btcs", proj, future)
        positive = torch.diagonal(torch.diagonal(scores_full, dim1=0, dim2=2), dim1=0, dim2=1).T
        scores = scores_full.permute(1, 0, 2, 3).reshape(tp, b, b * tp)  # [T', B, B·T']
        other = ~torch.eye(b, dtype=torch.bool, device=context.device)
        cand = other.repeat_interleave(tp, dim=1).expand(tp, b, b * tp)
    else:
        raise ValueError(f"negatives must be 'same_step' or 'all_steps', got {negatives!r}")
    n_cand = cand.shape[-1] - (1 if negatives == "same_step" else tp)
    if num_negatives is not None:
        if not 1 <= int(num_negatives) <= n_cand:
            raise ValueError(f"num_negatives must be in [1, {n_cand}], got {num_negatives}")
        if int(num_negatives) < n_cand:
            noise = torch.rand(cand.shape, generator=generator, device=context.device)
            noise = noise.masked_fill(~cand, -1.0)
            keep = noise.topk(int(num_negatives), dim=-1).indices
            cand = torch.zeros_like(cand).scatter_(-1, keep, True)
    neg = scores.masked_fill(~cand, float("-inf"))
    denom = torch.logsumexp(torch.cat([positive.unsqueeze(-1), neg], dim=-1), dim=-1)
    return (denom - positive).T  # [B, T']


class ContrastivePredictiveCoding(nn.Module):
    """InfoNCE at horizon ``k`` with a learned bilinear score ``cᵀ W z``.

    Args:
        d_context: ``Dc``.
        d_target: ``Dz`` (default ``Dc``).
        horizon: ``k`` (1 published).
        negatives: ``"same_step"`` (default) or ``"all_steps"``.
        num_negatives: negatives per anchor, ``None`` (default) for every candidate in the batch;
            NeuroLlama draws 16.

    ``forward(context, targets, mask=None, generator=None)`` with an optional ``[B, T]`` mask
    (an anchor counts when both ``t`` and ``t + k`` are valid) returns ``(loss, report)`` with
    ``report = {"contrastive": loss, "contrastive/mi_lower_bound": ln(1 + |N|) − loss}``
    (detached).
    """

    def __init__(
        self,
        d_context: int,
        d_target: int | None = None,
        *,
        horizon: int = PUBLISHED_HORIZON,
        negatives: NegativeSource = "same_step",
        num_negatives: int | None = None,
    ) -> None:
        super().__init__()
        dz = int(d_context if d_target is None else d_target)
        if int(d_context) < 1 or dz < 1:
            raise ValueError(f"d_context and d_target must be ≥ 1, got {d_context}, {d_target}")
        if int(horizon) < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        if negatives not in ("same_step", "all_steps"):
            raise ValueError(f"negatives must be 'same_step' or 'all_steps', got {negatives!r}")
        self.weight = nn.Parameter(torch.randn(int(d_context), dz) / int(d_context) ** 0.5)
        self.horizon = int(horizon)
        self.negatives: NegativeSource = negatives
        self.num_negatives = num_negatives

    def forward(
        self,
        context: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = info_nce_terms(
            context,
            targets,
            self.weight,
            horizon=self.horizon,
            negatives=self.negatives,
            num_negatives=self.num_negatives,
            generator=generator,
        )
        b, t = context.shape[:2]
        m = check_mask("mask", mask, (b, t), context.device)
        k = self.horizon
        valid = torch.ones_like(terms, dtype=torch.bool) if m is None else m[:, :-k] & m[:, k:]
        w = valid.to(terms.dtype)
        loss = (terms * w).sum() / w.sum().clamp_min(1.0)
        if self.num_negatives is not None:
            n_neg = int(self.num_negatives)
        else:
            n_neg = (b - 1) * (1 if self.negatives == "same_step" else t - k)
        report = {
            "contrastive": loss.detach(),
            "contrastive/mi_lower_bound": math.log(1 + n_neg) - loss.detach(),
        }
        return loss, report

    def extra_repr(self) -> str:
        return (
            f"horizon={self.horizon}, negatives={self.negatives!r}, "
            f"num_negatives={self.num_negatives}"
        )
