"""Goal coherence (NeuroLlama ``CoherenceLoss``, "PFC goal alignment").

Published form, for a final hidden state ``h`` (e.g. the last position of the last layer,
``h_T^L``) and a goal embedding ``g``::

    L_coh = −mean_i cos(h_i, g_i)                                   (mode="cosine")

In plain LM pretraining there is no goal, so where ``g`` comes from must be explicit. If ``g``
is learned together with the model, the loss has a trivial minimum: every hidden state turns to
one direction and ``g`` follows it, whatever the input (``tests/test_coherence.py`` shows the
pairwise similarity of hidden states for different inputs going to ≈ 1). Guards here:

* :func:`coherence_loss` refuses a goal that requires grad in ``"cosine"`` mode unless
  ``allow_learned_goal=True`` is passed (the published, collapse-prone set-up);
* ``mode="contrastive"``: per-sample goals, and each hidden state must be closer to its own goal
  than to the other samples' goals (InfoNCE over the batch, temperature ``τ``):
  ``L = −mean_i log softmax_j(cos(h_i, g_j) / τ)_i``; a collapsed batch scores ``ln N``, not the
  minimum;
* :class:`CoherenceLoss` reports the mean pairwise cosine similarity of the hidden states
  (``coherence/hidden_similarity``) so a collapse is visible in the logs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_positive, check_tensor
from neuro_objectives._util import pair_indices

CoherenceMode = Literal["cosine", "contrastive"]
#: NeuroLlama's coherence weight (config default and phase 3).
PUBLISHED_COHERENCE_WEIGHT = 0.05


def coherence_loss(
    hidden: torch.Tensor,
    goal: torch.Tensor,
    *,
    mode: CoherenceMode = "cosine",
    temperature: float = 0.1,
    allow_learned_goal: bool = False,
) -> torch.Tensor:
    """Coherence of hidden states with goals (see the module docstring).

    Args:
        hidden: ``[N, D]`` (or ``[..., D]`` for ``"cosine"``).
        goal: ``"cosine"``: broadcastable to ``hidden`` (``[D]`` for one shared goal);
            ``"contrastive"``: ``[N, D]``, one goal per sample.
        mode: ``"cosine"`` (published, in [−1, 1]) or ``"contrastive"`` (≥ 0).
        temperature: ``τ`` of ``"contrastive"``.
        allow_learned_goal: accept a goal that requires grad in ``"cosine"`` mode.

    Raises:
        ValueError: bad shapes, NaNs, or a learned goal in ``"cosine"`` mode without
            ``allow_learned_goal``.
    """
    check_tensor("hidden", hidden, floating=True, finite=True)
    check_tensor("goal", goal, floating=True, finite=True, device=hidden.device)
    if hidden.ndim < 1 or goal.shape[-1:] != hidden.shape[-1:]:
        raise ValueError(
            f"goal must have the last dim of hidden {tuple(hidden.shape)}, got {tuple(goal.shape)}"
        )
    if mode == "cosine":
        if goal.requires_grad and not allow_learned_goal:
            raise ValueError(
                "goal requires grad: a goal learned with the model makes −cos collapse (all "
                "hidden states align with one direction); detach it, use mode='contrastive' "
                "with per-sample goals, or pass allow_learned_goal=True"
            )
        try:
            torch.broadcast_shapes(hidden.shape, goal.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"goal {tuple(goal.shape)} must broadcast to hidden {tuple(hidden.shape)}"
            ) from exc
        return -F.cosine_similarity(hidden, goal.expand_as(hidden), dim=-1, eps=1e-8).mean()
    if mode == "contrastive":
        if hidden.ndim != 2 or tuple(goal.shape) != tuple(hidden.shape):
            raise ValueError(
                "mode='contrastive' needs hidden and goal both [N, D] (one goal per sample), "
                f"got hidden {tuple(hidden.shape)} and goal {tuple(goal.shape)}"
            )
        tau = check_positive("temperature", temperature)
        sim = F.normalize(hidden, dim=-1, eps=1e-8) @ F.normalize(goal, dim=-1, eps=1e-8).T
        target = torch.arange(hidden.shape[0], device=hidden.device)
        return F.cross_entropy(sim / tau, target)
    raise ValueError(f"mode must be 'cosine' or 'contrastive', got {mode!r}")


def mean_pairwise_cosine(hidden: torch.Tensor) -> torch.Tensor:
    """``mean_{i<j} cos(h_i, h_j)`` over the rows of ``[N, D]`` (1 when all point one way)."""
    check_tensor("hidden", hidden, ndim=2, floating=True)
    if hidden.shape[0] < 2:
        return hidden.new_ones(())
    h = F.normalize(hidden, dim=-1, eps=1e-8)
    i, j = pair_indices(hidden.shape[0], hidden.device)
    return (h[i] * h[j]).sum(-1).mean()


class CoherenceLoss(nn.Module):
    """Coherence with an explicit goal source.

    Args:
        goal_source: ``"external"`` (default): ``forward(hidden, goal)`` takes the goal, e.g. an
            embedding of the instruction or of the reference continuation, and it is detached;
            ``"learned"`` (the published set-up): the module owns a goal parameter ``[D]`` and
            the known collapse is allowed (watch ``coherence/hidden_similarity``).
        d_model: ``D``, needed for ``"learned"``.
        mode: ``"cosine"`` (published) or ``"contrastive"`` (``"external"`` only).
        temperature: ``τ`` of ``"contrastive"``.

    ``forward(hidden, goal=None)`` with ``hidden`` ``[N, D]`` returns ``(loss, report)`` with
    ``coherence`` (the loss), ``coherence/cos`` (mean cosine to the goal) and
    ``coherence/hidden_similarity`` (mean pairwise cosine of the hidden states), detached.
    """

    def __init__(
        self,
        goal_source: Literal["external", "learned"] = "external",
        d_model: int | None = None,
        *,
        mode: CoherenceMode = "cosine",
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        if goal_source not in ("external", "learned"):
            raise ValueError(f"goal_source must be 'external' or 'learned', got {goal_source!r}")
        if mode not in ("cosine", "contrastive"):
            raise ValueError(f"mode must be 'cosine' or 'contrastive', got {mode!r}")
        if goal_source == "learned":
            if d_model is None or int(d_model) < 1:
                raise ValueError(f"d_model must be ≥ 1 for a learned goal, got {d_model}")
            if mode == "contrastive":
                raise ValueError("mode='contrastive' needs per-sample (external) goals")
            self.goal: nn.Parameter | None = nn.Parameter(torch.randn(int(d_model)))
        else:
            self.goal = None
        self.goal_source = goal_source
        self.mode: CoherenceMode = mode
        self.temperature = check_positive("temperature", temperature)

    def forward(
        self, hidden: torch.Tensor, goal: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_tensor("hidden", hidden, ndim=2, floating=True)
        g: torch.Tensor
        if self.goal is not None:
            if goal is not None:
                raise ValueError("goal must not be passed when goal_source='learned'")
            g = self.goal
        else:
            if goal is None:
                raise ValueError("goal is required when goal_source='external'")
            g = goal.detach()
        loss = coherence_loss(
            hidden,
            g,
            mode=self.mode,
            temperature=self.temperature,
            allow_learned_goal=self.goal is not None,
        )
        with torch.no_grad():
            cos = F.cosine_similarity(hidden, g.expand_as(hidden), dim=-1, eps=1e-8).mean()
            report = {
                "coherence": loss.detach(),
                "coherence/cos": cos,
                "coherence/hidden_similarity": mean_pairwise_cosine(hidden.detach()),
            }
        return loss, report

    def extra_repr(self) -> str:
        return f"goal_source={self.goal_source!r}, mode={self.mode!r}"
