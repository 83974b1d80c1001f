"""Unlikelihood training against repetition (Welleck et al. 2019, "Neural text generation with
unlikelihood training").

Token level, with negative candidates ``C_t = {y_s : s < t} ∖ {y_t}`` (the earlier target tokens
of the same sequence, as a set)::

    L_UL-token = mean_t [ −log p(y_t | y_<t) − α Σ_{c ∈ C_t} log(1 − p(c | y_<t)) ]

Sequence level, on the model's own continuation ``x`` (decoded from the same model), with
``C_t = {x_t}`` when position ``t`` lies in an n-gram that already occurred earlier in ``x``::

    L_UL-seq = Σ_t −1[t repeats] · log(1 − p(x_t | x_<t))   (averaged over the valid positions)

``α = 1`` and ``n = 4`` in the paper; the sequence-level term is fine-tuned on continuations
sampled from the model (greedy decoding in the paper), mixed with ordinary MLE updates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuro_core.validation import check_positive, check_tensor, finite_checks_enabled

#: ``1 − p`` is clamped to this before the log (``p → 1`` would give an infinite loss).
MIN_COMPLEMENT = 1e-6


def _log1m_exp(logp: torch.Tensor) -> torch.Tensor:
    # log(1 − p) from log p, accurate for p near 1 (−expm1) and clamped away from 0
    return torch.log((-torch.expm1(logp)).clamp_min(MIN_COMPLEMENT))


def _check_lm(logits: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    check_tensor("logits", logits, ndim=3, floating=True, finite=True)
    check_tensor(name, targets, shape=tuple(logits.shape[:2]), dtype=(torch.int64,))
    if targets.device != logits.device:
        raise ValueError(f"{name} is on {targets.device} but logits are on {logits.device}")


def token_unlikelihood_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 1.0,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Token-level unlikelihood plus MLE (see the module docstring).

    Args:
        logits: ``[B, T, V]``, position t predicting ``targets[:, t]``.
        targets: ``[B, T]`` int64; ``ignore_index`` positions neither count nor act as
            candidates.
        alpha: ``α`` ≥ 0.

    Returns:
        ``(loss, report)``: ``ul/nll``, ``ul/token`` (the unlikelihood term, per position) and
        ``ul/candidates`` (mean candidates per position), detached.

    Memory is ``O(B · T²)`` (one gather of each position's log-probabilities at every earlier
    target), not ``O(B · T · V)``.
    """
    _check_lm(logits, targets, "targets")
    a = check_positive("alpha", alpha, allow_zero=True)
    b, t, v = logits.shape
    valid = targets != ignore_index
    if not bool(valid.any()):
        raise ValueError("targets must hold at least one position that is not ignore_index")
    y = targets.clamp(0, v - 1)
    if finite_checks_enabled() and bool(((targets[valid] < 0) | (targets[valid] >= v)).any()):
        raise ValueError(f"targets must lie in [0, V = {v}) or equal ignore_index")
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, y[..., None]).squeeze(-1)  # [B, T]
    # lp_prev[b, t, s] = log p(y_s | position t)
    lp_prev = logp.gather(-1, y[:, None, :].expand(b, t, t))
    earlier = torch.ones(t, t, dtype=torch.bool, device=logits.device).tril(-1)  # s < t
    same = y[:, :, None] == y[:, None, :]  # [B, s, s']
    # s is a candidate once per distinct token: the first valid occurrence of y_s
    dup_before = (same & earlier[None] & valid[:, None, :]).any(-1)  # some s' < s holds y_s
    first = valid & ~dup_before  # [B, S]
    cand = earlier[None] & first[:, None, :] & ~(y[:, :, None] == y[:, None, :])
    cand = cand & valid[:, :, None]
    ul = -(_log1m_exp(lp_prev) * cand).sum(-1)  # [B, T]
    w = valid.to(logp.dtype)
    n = w.sum()
    nll_mean = (nll * w).sum() / n
    ul_mean = (ul * w).sum() / n
    loss = nll_mean + a * ul_mean
    report = {
        "ul/nll": nll_mean.detach(),
        "ul/token": ul_mean.detach(),
        "ul/candidates": (cand.sum(-1).to(w.dtype) * w).sum() / n,
    }
    return loss, report


def repeated_ngram_mask(tokens: torch.Tensor, n: int = 4, *, mask: torch.Tensor | None = None):
    """Positions of ``tokens`` ``[B, T]`` covered by an n-gram that already occurred earlier.

    The n-gram starting at ``s`` is a repeat if the same n-gram starts at some ``s' < s``; its
    positions ``s … s + n − 1`` are marked. N-grams touching a masked position are skipped.
    Returns a bool ``[B, T]``.
    """
    check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
    if int(n) < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    n = int(n)
    b, t = tokens.shape
    out = torch.zeros(b, t, dtype=torch.bool)
    rows = tokens.tolist()
    valid = None if mask is None else mask.bool().tolist()
    for i, row in enumerate(rows):
        seen: set[tuple[int, ...]] = set()
        for s in range(t - n + 1):
            if valid is not None and not all(valid[i][s : s + n]):
                continue
            g = tuple(row[s : s + n])
            if g in seen:
                out[i, s : s + n] = True
            seen.add(g)
    return out.to(tokens.device)


def sequence_unlikelihood_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    *,
    n: int = 4,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sequence-level unlikelihood on a model continuation (see the module docstring).

    Args:
        logits: ``[B, T, V]``, position t predicting ``tokens[:, t]``.
        tokens: ``[B, T]`` int64, the continuation decoded from the model.
        n: n-gram order (4 in the paper).
        mask: optional ``[B, T]`` valid positions.

    Returns:
        ``(loss, report)`` with ``ul/sequence`` and ``ul/repeated_fraction`` (of valid positions).
    """
    _check_lm(logits, tokens, "tokens")
    if mask is not None:
        check_tensor("mask", mask, shape=tuple(tokens.shape), device=logits.device)
    v = logits.shape[-1]
    if bool(((tokens < 0) | (tokens >= v)).any()):
        raise ValueError(f"tokens must lie in [0, V = {v})")
    rep = repeated_ngram_mask(tokens, n, mask=mask)
    valid = torch.ones_like(rep) if mask is None else mask.bool()
    logp = F.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    per = -_log1m_exp(logp) * rep.to(logp.dtype)
    w = valid.to(logp.dtype)
    denom = w.sum().clamp_min(1.0)
    loss = (per * w).sum() / denom
    report = {
        "ul/sequence": loss.detach(),
        "ul/repeated_fraction": (rep & valid).sum().to(logp.dtype) / denom,
    }
    return loss, report
