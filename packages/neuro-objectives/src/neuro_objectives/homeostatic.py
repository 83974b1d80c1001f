"""Homeostatic regularization of modulatory signals (NCN paper §4.1, "L_reg").

A control network that emits per-layer signals (gain, precision, gate, ...) can drive them to
extremes where a layer is switched off or saturated ("control manifold collapse"). The homeostatic
term pulls every signal towards a set point, 1 by default (the identity modulation)::

    L_reg = λ · Σ_s mean_{b,t,l}((s − s*)²)

with λ = 0.01 and s* = 1 in the Neuromodulatory Control Networks code (Morgan 2025,
``Mmorgan-ML/Neuromodulatory-Control-Networks``, training loop), where the mean runs over batch,
sequence and layer and the sum over the three signals.

What we changed: the published code adds the term to the cross-entropy and logs only the sum; here
:class:`HomeostaticRegularizer` returns the penalty *and* each signal's term, so a trainer can log
them separately from the LM loss, and it accepts an optional ``[B, T]`` mask so padded positions do
not count.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from neuro_core.validation import check_positive, check_tensor

#: λ of the published NCN run (``--reg_lambda`` default).
PUBLISHED_WEIGHT = 0.01


def homeostatic_terms(
    signals: Mapping[str, torch.Tensor],
    *,
    target: float = 1.0,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-signal squared deviation from the set point, ``mean((s − target)²)``.

    Args:
        signals: name → tensor ``[B, T, ...]`` (e.g. ``[B, T, L]`` for L layers). All must share
            ``B`` and ``T`` when ``mask`` is given.
        target: the set point ``s*`` (1.0: identity modulation).
        mask: optional ``[B, T]`` bool/0-1 tensor; only positions where it is true are averaged.

    Returns:
        name → scalar fp32 tensor (differentiable).

    Raises:
        ValueError: empty ``signals``, a non-float signal, or a mask of the wrong shape.
    """
    if not signals:
        raise ValueError("signals must contain at least one tensor")
    out: dict[str, torch.Tensor] = {}
    for name, s in signals.items():
        check_tensor(f"signals[{name!r}]", s, floating=True)
        sq = (s.float() - target).pow(2)
        if mask is None:
            out[name] = sq.mean()
            continue
        check_tensor("mask", mask, ndim=2, device=s.device)
        if s.ndim < 2 or tuple(s.shape[:2]) != tuple(mask.shape):
            raise ValueError(
                f"mask must have shape [B, T] = {tuple(s.shape[:2])} of signals[{name!r}], "
                f"got {tuple(mask.shape)}"
            )
        m = mask.to(sq.dtype).reshape(*mask.shape, *([1] * (sq.ndim - 2))).expand_as(sq)
        out[name] = (sq * m).sum() / m.sum().clamp_min(1.0)
    return out


def homeostatic_penalty(
    signals: Mapping[str, torch.Tensor],
    *,
    weight: float = PUBLISHED_WEIGHT,
    target: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``λ · Σ_s mean((s − target)²)``; see :func:`homeostatic_terms` for the arguments."""
    check_positive("weight", weight, allow_zero=True)
    terms = homeostatic_terms(signals, target=target, mask=mask)
    return weight * torch.stack(list(terms.values())).sum()


class HomeostaticRegularizer(nn.Module):
    """The homeostatic term as a loss module that reports each signal separately.

    Args:
        weight: λ, ≥ 0 (default 0.01, the published value).
        target: set point of every signal (default 1.0).

    ``forward(signals, mask=None)`` returns ``(penalty, terms)``: the weighted scalar to add to the
    loss, and ``{"homeostatic/<name>": unweighted term, "homeostatic": penalty}`` detached, for
    logging.
    """

    def __init__(self, weight: float = PUBLISHED_WEIGHT, target: float = 1.0) -> None:
        super().__init__()
        self.weight = check_positive("weight", weight, allow_zero=True)
        self.target = float(target)

    def forward(
        self, signals: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = homeostatic_terms(signals, target=self.target, mask=mask)
        penalty = self.weight * torch.stack(list(terms.values())).sum()
        report = {f"homeostatic/{k}": v.detach() for k, v in terms.items()}
        report["homeostatic"] = penalty.detach()
        return penalty, report

    def extra_repr(self) -> str:
        return f"weight={self.weight}, target={self.target}"
