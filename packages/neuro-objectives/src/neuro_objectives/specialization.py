"""Column specialization: push cortical columns (KV groups) to attend differently.

NeuroLlama's ``CorticalColumnAttention`` / ``SpecializationLoss`` (reference-systems §1.5, §1.9):
with ``Ā_c`` column ``c``'s attention distribution over keys, ::

    JS(P ‖ Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M),   M = (P + Q) / 2   (natural log, 0 ≤ JS ≤ ln 2)
    L_spec = −mean_{c < c'} JS(Ā_c ‖ Ā_c')

The loss is minimized (−ln 2) by columns attending to disjoint keys, so it works against the LM
loss wherever two columns should look at the same token; keep its weight small (0.001–0.1 in the
published schedule).

Input contracts (no function here needs every head's ``T × T`` matrix):

* :func:`specialization_loss` takes column-averaged attention ``[B, C, T, S]`` (each head's
  probabilities averaged over the heads of its column, rows summing to 1) and either averages
  them over batch and queries into one key distribution per column (``"key_marginal"``, the
  published definition) or compares the columns query by query (``"per_query"``).
* :func:`specialization_loss_from_mass` takes any ``[..., C, S]`` non-negative mass (normalized
  over ``S`` here), e.g. the key marginal ``[C, S]`` or per-query column rows ``[B, T, C, S]``.
* :func:`column_attention_mass` computes the key marginal ``[B, C, S]`` of causal GQA from ``q``
  and ``k`` in query blocks (recomputed in the backward pass), so memory is
  ``O(B · H · block · S)`` instead of ``O(B · H · T · S)``; an attention op that already reduces
  its probabilities per column can hand its ``[B, C, S]`` output over directly.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.utils.checkpoint import checkpoint

from neuro_core.validation import check_tensor, finite_checks_enabled
from neuro_objectives._util import check_mask, pair_indices

#: The largest Jensen-Shannon divergence (natural log).
LN2 = math.log(2.0)
#: Probabilities are clamped to this before logs (the divergence itself is unchanged: 0·log 0 = 0).
EPS = 1e-12


def _kl_to_mixture(p: torch.Tensor, m: torch.Tensor, dim: int) -> torch.Tensor:
    # p · (log p − log m), with 0 · log 0 = 0 and a finite gradient at p = 0
    return (p * (p.clamp_min(EPS).log() - m.clamp_min(EPS).log())).sum(dim)


def js_divergence(p: torch.Tensor, q: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
    """``JS(P ‖ Q)`` in nats over ``dim`` (both must be distributions there); in ``[0, ln 2]``."""
    check_tensor("p", p, floating=True, finite=True)
    check_tensor("q", q, floating=True, finite=True, device=p.device)
    if tuple(p.shape) != tuple(q.shape):
        raise ValueError(f"q must have the shape of p {tuple(p.shape)}, got {tuple(q.shape)}")
    m = 0.5 * (p + q)
    return 0.5 * _kl_to_mixture(p, m, dim) + 0.5 * _kl_to_mixture(q, m, dim)


def mean_pairwise_js(dists: torch.Tensor) -> torch.Tensor:
    """``mean_{c < c'} JS(P_c ‖ P_c')`` for distributions ``[..., C, S]`` → ``[...]``; needs C ≥ 2."""
    check_tensor("dists", dists, floating=True, finite=True)
    if dists.ndim < 2 or dists.shape[-2] < 2:
        raise ValueError(f"dists must be [..., C, S] with C ≥ 2, got {tuple(dists.shape)}")
    i, j = pair_indices(dists.shape[-2], dists.device)
    return js_divergence(dists[..., i, :], dists[..., j, :]).mean(-1)


def _check_distributions(name: str, x: torch.Tensor, dim: int = -1) -> None:
    # reads the data: skipped with the NaN checks (NEURO_FINITE_CHECKS=0, torch.compile)
    if not finite_checks_enabled():
        return
    if bool((x < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    s = x.sum(dim)
    if not torch.allclose(s, torch.ones_like(s), atol=1e-3):
        raise ValueError(f"{name} must sum to 1 over its last dim (attention probabilities)")


def specialization_loss(
    column_probs: torch.Tensor,
    *,
    reduction: Literal["key_marginal", "per_query"] = "key_marginal",
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``−mean_{c<c'} JS`` between columns' attention, in ``[−ln 2, 0]``.

    Args:
        column_probs: ``[B, C, T, S]`` column-averaged attention probabilities (rows sum to 1).
        reduction: ``"key_marginal"`` (published): ``Ā_c = mean_{b, t} A_{b,c,t,:}``, then one JS
            per pair; ``"per_query"``: JS between the columns' rows of every ``(b, t)``, averaged.
        query_mask: optional ``[B, T]``; queries where it is false are left out of both means.

    Returns:
        scalar (differentiable).
    """
    check_tensor("column_probs", column_probs, ndim=4, floating=True, finite=True)
    _check_distributions("column_probs", column_probs)
    b, _, t, _ = column_probs.shape
    m = check_mask("query_mask", query_mask, (b, t), column_probs.device)
    w = (
        torch.ones(b, t, dtype=column_probs.dtype, device=column_probs.device)
        if m is None
        else m.to(column_probs.dtype)
    )
    if reduction == "key_marginal":
        wq = w[:, None, :, None]
        marginal = (column_probs * wq).sum((0, 2)) / w.sum().clamp_min(1.0)  # [C, S]
        return -mean_pairwise_js(marginal)
    if reduction == "per_query":
        per = mean_pairwise_js(column_probs.transpose(1, 2))  # [B, T]
        return -(per * w).sum() / w.sum().clamp_min(1.0)
    raise ValueError(f"reduction must be 'key_marginal' or 'per_query', got {reduction!r}")


def specialization_loss_from_mass(mass: torch.Tensor) -> torch.Tensor:
    """``−mean JS`` from non-negative column mass ``[..., C, S]`` (normalized over ``S`` here).

    The mean runs over pairs of columns and every leading index. For the published key-marginal
    loss from :func:`column_attention_mass` (``[B, C, S]``), pass ``mass.mean(0)``.
    """
    check_tensor("mass", mass, floating=True, finite=True)
    if mass.ndim < 2:
        raise ValueError(f"mass must be [..., C, S], got {tuple(mass.shape)}")
    if finite_checks_enabled() and bool((mass < 0).any()):
        raise ValueError("mass must be non-negative")
    total = mass.sum(-1, keepdim=True)
    if finite_checks_enabled() and bool((total <= 0).any()):
        raise ValueError("mass must have a positive sum over S for every column")
    return -mean_pairwise_js(mass / total).mean()


def _block_mass(
    q_blk: torch.Tensor, k: torch.Tensor, w: torch.Tensor, offset: int, causal: bool, group: int
) -> torch.Tensor:
    # q_blk [B, n, H, D], k [B, S, C, D], query weights w [B, n] → weighted sums [B, C, S]
    b, n, _, d = q_blk.shape
    s_len, c = k.shape[1], k.shape[2]
    qg = q_blk.reshape(b, n, c, group, d)
    logits = torch.einsum("bncgd,bscd->bcgns", qg, k) / math.sqrt(d)
    if causal:
        qi = torch.arange(offset, offset + n, device=k.device)[:, None]
        kj = torch.arange(s_len, device=k.device)[None, :]
        logits = logits.masked_fill(kj > qi, float("-inf"))
    probs = logits.softmax(-1) * w[:, None, None, :, None]
    return probs.sum((2, 3)) / group


def column_attention_mass(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    causal: bool = True,
    block_size: int = 64,
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Key marginal of each column (KV group): ``Ā_{b,c,s} = mean_{h ∈ c, t} softmax_s(q_t·k_s/√D)``.

    Computed ``block_size`` queries at a time and recomputed in the backward pass
    (``torch.utils.checkpoint``), never holding ``[B, H, T, S]``.

    Args:
        q: ``[B, T, H, D]``.
        k: ``[B, S, C, D]`` with ``H`` a multiple of ``C`` (head ``h`` belongs to column
            ``h // (H / C)``, the GQA layout of neuro-attention).
        causal: mask keys ``s > t`` (requires ``S = T``).
        block_size: queries per block.
        query_mask: optional ``[B, T]``; masked queries are left out of the mean.

    Returns:
        ``[B, C, S]``, each row a distribution over keys (differentiable).
    """
    check_tensor("q", q, ndim=4, floating=True, finite=True)
    check_tensor("k", k, ndim=4, floating=True, finite=True, device=q.device)
    b, t, h, d = q.shape
    if k.shape[0] != b or k.shape[3] != d:
        raise ValueError(f"k must have shape [B, S, C, D] = [{b}, *, *, {d}], got {tuple(k.shape)}")
    c = k.shape[2]
    if h % c != 0:
        raise ValueError(f"the number of heads {h} of q must be a multiple of k's columns {c}")
    if causal and k.shape[1] != t:
        raise ValueError(f"causal masking needs k with S = T = {t}, got {tuple(k.shape)}")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    m = check_mask("query_mask", query_mask, (b, t), q.device)
    w = torch.ones(b, t, dtype=q.dtype, device=q.device) if m is None else m.to(q.dtype)
    total = q.new_zeros(b, c, k.shape[1])
    for start in range(0, t, int(block_size)):
        stop = min(t, start + int(block_size))
        part = checkpoint(
            _block_mass,
            q[:, start:stop],
            k,
            w[:, start:stop],
            start,
            causal,
            h // c,
            use_reentrant=False,
        )
        total = total + part
    return total / w.sum(1).clamp_min(1.0)[:, None, None]
