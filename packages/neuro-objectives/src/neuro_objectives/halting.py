"""Efficiency (metabolic cost) through halting: PonderNet-style soft depth (Banino et al. 2021).

At halting points ``n = 1 … N`` (every layer, or the exit layers of an early-exit model, at depths
``d_1 < … < d_N`` layers), a head emits the conditional probability ``λ_n`` of stopping there
given that no earlier point stopped; the last point always stops (``λ_N := 1``). Then ::

    p_n = λ_n Π_{j<n} (1 − λ_j)                     (Σ_n p_n = 1)
    E[depth] = Σ_n p_n d_n
    p_G(n) = λ_p (1 − λ_p)^{n−1} / (1 − (1 − λ_p)^N)   (geometric prior, truncated to N points)
    L_KL = KL(p ‖ p_G) = Σ_n p_n ln(p_n / p_G(n))
    L_ponder = Σ_n p_n L_n + β · L_KL                 (L_n: the task loss when stopping at n)

``efficiency_loss(mode="expected_depth")`` is ``E[depth] / d_N`` ∈ (0, 1], differentiable in the
``λ``. Published (NeuroLlama ``EfficiencyLoss``): "sum of the layer-usage mask", with layers used
up to the first exit whose max-softmax confidence exceeds 0.9; comparisons against a threshold
have no gradient, so that term cannot train anything. It is kept as ``mode="hard_mask"`` (and
:func:`hard_layer_usage`) for reporting, and a test shows its gradient is absent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import (
    check_in_range,
    check_positive,
    check_tensor,
    finite_checks_enabled,
)
from neuro_objectives._util import check_mask, masked_mean

#: NeuroLlama's ``exit_confidence_threshold``.
PUBLISHED_EXIT_THRESHOLD = 0.9
#: NeuroLlama's efficiency weight (config default and phase 3).
PUBLISHED_EFFICIENCY_WEIGHT = 0.05
EPS = 1e-12


def _check_halt(name: str, x: torch.Tensor) -> None:
    # the range check reads the data; it follows NEURO_FINITE_CHECKS like the NaN checks
    check_tensor(name, x, floating=True, finite=True)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must be [..., N] with N ≥ 1 halting points, got {tuple(x.shape)}")
    if finite_checks_enabled() and bool(((x < 0) | (x > 1)).any()):
        raise ValueError(f"{name} must lie in [0, 1]")


def _depths(depths: Sequence[int] | None, n: int, like: torch.Tensor) -> torch.Tensor:
    if depths is None:
        return torch.arange(1, n + 1, dtype=like.dtype, device=like.device)
    if len(depths) != n:
        raise ValueError(f"depths must have one entry per halting point ({n}), got {len(depths)}")
    d = [int(x) for x in depths]
    if d[0] < 1 or any(b <= a for a, b in itertools.pairwise(d)):
        raise ValueError(f"depths must be increasing positive layer counts, got {list(depths)}")
    return torch.tensor(d, dtype=like.dtype, device=like.device)


def halting_distribution(halt_probs: torch.Tensor) -> torch.Tensor:
    """``p_n = λ_n Π_{j<n}(1 − λ_j)`` with ``λ_N := 1``: ``[..., N] → [..., N]``, summing to 1.

    ``halt_probs[..., -1]`` is ignored (the last point always halts).
    """
    _check_halt("halt_probs", halt_probs)
    lam = torch.cat([halt_probs[..., :-1], torch.ones_like(halt_probs[..., -1:])], dim=-1)
    survive = torch.cumprod(1 - lam, dim=-1)
    before = torch.cat([torch.ones_like(survive[..., :1]), survive[..., :-1]], dim=-1)
    return lam * before


def expected_depth(p: torch.Tensor, depths: Sequence[int] | None = None) -> torch.Tensor:
    """``E[depth] = Σ_n p_n d_n`` (``d_n = n`` by default): ``[..., N] → [...]``."""
    _check_halt("p", p)
    return (p * _depths(depths, p.shape[-1], p)).sum(-1)


def geometric_prior(
    num_points: int,
    prior_lambda: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Truncated geometric ``p_G(n) ∝ λ_p (1 − λ_p)^{n−1}``, ``n = 1 … N``, normalized, ``[N]``."""
    if int(num_points) < 1:
        raise ValueError(f"num_points must be ≥ 1, got {num_points}")
    lp = check_in_range("prior_lambda", prior_lambda, 0.0, 1.0, low_open=True)
    n = torch.arange(int(num_points), dtype=torch.float64)
    w = lp * (1 - lp) ** n
    return (w / w.sum()).to(dtype=dtype, device=device)


def halting_kl(
    p: torch.Tensor, prior_lambda: float, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean_tokens KL(p ‖ p_G)`` (≥ 0) for halting distributions ``p`` ``[..., N]``."""
    _check_halt("p", p)
    prior = geometric_prior(p.shape[-1], prior_lambda, dtype=p.dtype, device=p.device)
    kl = (p * (p.clamp_min(EPS).log() - prior.log())).sum(-1)
    return masked_mean(kl, check_mask("mask", mask, tuple(kl.shape), p.device))


def ponder_loss(
    per_point_loss: torch.Tensor,
    halt_probs: torch.Tensor,
    *,
    prior_lambda: float,
    kl_weight: float = 0.01,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PonderNet: ``mean_tokens Σ_n p_n L_n + β · KL(p ‖ p_G)``.

    Args:
        per_point_loss: ``L_n`` per token, ``[..., N]`` (e.g. each exit's cross-entropy).
        halt_probs: ``λ_n``, ``[..., N]``.
        prior_lambda: ``λ_p`` (PonderNet uses 0.1–0.5; the prior's mean depth is ~``1/λ_p``).
        kl_weight: ``β`` (0.01 in PonderNet).
        mask: optional ``[...]`` over tokens.

    Returns:
        ``(loss, report)``, report (detached): ``ponder/task``, ``ponder/kl``,
        ``ponder/expected_depth``.
    """
    check_tensor("per_point_loss", per_point_loss, floating=True, finite=True)
    if tuple(per_point_loss.shape) != tuple(halt_probs.shape):
        raise ValueError(
            f"per_point_loss must have the shape of halt_probs {tuple(halt_probs.shape)}, "
            f"got {tuple(per_point_loss.shape)}"
        )
    beta = check_positive("kl_weight", kl_weight, allow_zero=True)
    p = halting_distribution(halt_probs)
    m = check_mask("mask", mask, tuple(p.shape[:-1]), p.device)
    task = masked_mean((p * per_point_loss).sum(-1), m)
    kl = halting_kl(p, prior_lambda, mask=m)
    loss = task + beta * kl
    report = {
        "ponder/task": task.detach(),
        "ponder/kl": kl.detach(),
        "ponder/expected_depth": masked_mean(expected_depth(p.detach()), m),
    }
    return loss, report


def hard_layer_usage(
    exit_confidence: torch.Tensor,
    *,
    threshold: float = PUBLISHED_EXIT_THRESHOLD,
    depths: Sequence[int] | None = None,
) -> torch.Tensor:
    """Published: layers used until the first point whose confidence exceeds ``threshold``.

    ``[..., N] → [...]`` (float, no gradient): ``d_n`` of the first ``n`` with
    ``confidence_n > threshold``, else ``d_N``.
    """
    _check_halt("exit_confidence", exit_confidence)
    thr = check_in_range("threshold", threshold, 0.0, 1.0)
    n = exit_confidence.shape[-1]
    d = _depths(depths, n, exit_confidence.detach())
    fire = exit_confidence.detach() > thr
    fire[..., -1] = True
    first = torch.argmax(fire.to(torch.int8), dim=-1)
    return d[first]


def efficiency_loss(
    halt_probs: torch.Tensor,
    *,
    mode: Literal["expected_depth", "hard_mask"] = "expected_depth",
    threshold: float = PUBLISHED_EXIT_THRESHOLD,
    depths: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean fraction of the depth used, ``E[depth] / d_N`` (default) or the published hard count.

    Args:
        halt_probs: ``[..., N]`` halting probabilities ``λ_n`` (``"expected_depth"``) or exit
            confidences (``"hard_mask"``).
        mode: ``"expected_depth"`` (differentiable) or ``"hard_mask"`` (published, no gradient).
        threshold: exit threshold of ``"hard_mask"`` (0.9 published).
        depths: layers used at each point (``1 … N`` by default).
        mask: optional ``[...]`` over tokens.

    Returns:
        scalar in ``(0, 1]``.
    """
    _check_halt("halt_probs", halt_probs)
    n = halt_probs.shape[-1]
    if mode == "expected_depth":
        p = halting_distribution(halt_probs)
        used = expected_depth(p, depths)
    elif mode == "hard_mask":
        used = hard_layer_usage(halt_probs, threshold=threshold, depths=depths)
    else:
        raise ValueError(f"mode must be 'expected_depth' or 'hard_mask', got {mode!r}")
    total = _depths(depths, n, used)[-1]
    m = check_mask("mask", mask, tuple(used.shape), used.device)
    return masked_mean(used / total, m)


class HaltingHead(nn.Module):
    """Per-token halting probabilities ``λ_n = σ(w_nᵀ h_n + b_n)`` at each halting point.

    Args:
        d_model: ``D``.
        num_points: ``N``; one linear read-out per point (the last point's ``λ`` is ignored by
            :func:`halting_distribution`, which always halts there).
        init_halt_prob: initial ``λ`` at every point (bias ``b_n = logit(init_halt_prob)``,
            weights 0), e.g. the prior's ``λ_p``; the resulting ``p`` then differs from the
            truncated prior only in the mass the last point collects.

    ``forward(hidden)`` takes ``N`` tensors ``[B, T, D]`` (the states at the halting points) and
    returns ``λ`` ``[B, T, N]``.
    """

    def __init__(self, d_model: int, num_points: int, *, init_halt_prob: float = 0.1) -> None:
        super().__init__()
        if int(d_model) < 1 or int(num_points) < 1:
            raise ValueError(f"d_model and num_points must be ≥ 1, got {d_model}, {num_points}")
        p0 = check_in_range(
            "init_halt_prob", init_halt_prob, 0.0, 1.0, low_open=True, high_open=True
        )
        self.weight = nn.Parameter(torch.zeros(int(num_points), int(d_model)))
        self.bias = nn.Parameter(torch.full((int(num_points),), math.log(p0 / (1 - p0))))

    def forward(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        n = self.weight.shape[0]
        if len(hidden) != n:
            raise ValueError(f"hidden must hold num_points = {n} tensors, got {len(hidden)}")
        for i, h in enumerate(hidden):
            check_tensor(f"hidden[{i}]", h, ndim=3, floating=True)
            if h.shape[-1] != self.weight.shape[1]:
                raise ValueError(
                    f"hidden[{i}] must have last dim {self.weight.shape[1]}, got {tuple(h.shape)}"
                )
        logits = torch.stack(
            [h @ self.weight[i] + self.bias[i] for i, h in enumerate(hidden)], dim=-1
        )
        return torch.sigmoid(logits)


def deep_supervision_loss(
    exit_losses: torch.Tensor,
    final_loss: torch.Tensor,
    *,
    exit_depths: Sequence[int],
    num_layers: int,
    gamma: float = 0.9,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Deep supervision of early exits: ``L = L_final + Σ_e γ^{L − l_e} L_exit,e``.

    The per-token training objective of an early-exit model (reference-systems §1.8): every exit
    head at layer ``l_e`` gets its own loss, discounted by its distance to the top.

    Args:
        exit_losses: ``[E]`` scalar losses of the exits (e.g. their mean cross-entropy).
        final_loss: scalar loss of the last layer.
        exit_depths: ``l_e``, the layer after which each exit reads (1-based, increasing,
            ``< num_layers``); NeuroLlama's 8B preset exits at 8, 16 and 24 of 32.
        num_layers: ``L``.
        gamma: ``γ`` in (0, 1].

    Returns:
        ``(loss, report)`` with ``deep_supervision/exit{l_e}`` (unweighted) and
        ``deep_supervision/final``, detached.
    """
    check_tensor("exit_losses", exit_losses, ndim=1, floating=True, finite=True)
    check_tensor("final_loss", final_loss, ndim=0, floating=True, finite=True)
    g = check_in_range("gamma", gamma, 0.0, 1.0, low_open=True)
    if len(exit_depths) != exit_losses.shape[0]:
        raise ValueError(
            f"exit_depths must have one entry per exit ({exit_losses.shape[0]}), "
            f"got {len(exit_depths)}"
        )
    depths = _depths(exit_depths, exit_losses.shape[0], exit_losses)
    if exit_losses.shape[0] and int(exit_depths[-1]) >= int(num_layers):
        raise ValueError(f"exit_depths must lie below num_layers = {num_layers}, got {exit_depths}")
    weights = g ** (int(num_layers) - depths)
    loss = final_loss + (weights * exit_losses).sum()
    report = {
        f"deep_supervision/exit{int(d)}": v.detach() for d, v in zip(exit_depths, exit_losses)
    }
    report["deep_supervision/final"] = final_loss.detach()
    return loss, report
