"""Count-model floors: the NLL a unigram and a smoothed bigram reach on exactly the evaluated tokens.

A trained language model that does not clearly beat these floors has not learned enough for an
architecture comparison to mean anything, so every reproduction report prints them beside its
arms. Both models are fit on the training tokens; their one smoothing constant is chosen on the
dev tokens (carved from train), never on the evaluated tokens.

Unigram with additive smoothing α (Lidstone)::

    p(w) = (c(w) + α) / (N + α·V)

Bigram with interpolated absolute discounting (Ney, Essen & Kneser 1994), backing off to the
unigram above::

    p(w | v) = max(c(v, w) − D, 0) / c(v)  +  D · n₊(v) / c(v) · p(w)      if c(v) > 0
    p(w | v) = p(w)                                                        otherwise

with ``n₊(v)`` the number of distinct successors of ``v`` and ``0 < D < 1``. The context of the
token at position ``i`` is the token at ``i − 1`` of the same stream, which is exactly the
context any model evaluated by :func:`neuro_models.evaluate.evaluate` sees last (its windows share
one token).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BigramModel", "Floors", "UnigramModel", "fit_floors"]

#: Grids searched on the dev tokens. α spans add-tiny to add-one; D the usual (0, 1) range.
ALPHA_GRID: tuple[float, ...] = (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
DISCOUNT_GRID: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def _as_tokens(name: str, tokens: object, vocab_size: int) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{name} must hold at least 2 tokens, got {arr.size}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integer token ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{name} has ids in [{lo}, {hi}], outside the vocabulary [0, {vocab_size})"
        )
    return arr


@dataclass(frozen=True)
class UnigramModel:
    """Additively smoothed unigram; ``counts[w]`` over the training tokens."""

    counts: np.ndarray
    alpha: float

    @property
    def probs(self) -> np.ndarray:
        v = len(self.counts)
        return (self.counts + self.alpha) / (self.counts.sum() + self.alpha * v)

    def nll(self, tokens: np.ndarray) -> float:
        """Mean NLL (nats) of ``tokens[1:]`` (the same targets a model is scored on)."""
        return float(-np.log(self.probs[tokens[1:]]).mean())


@dataclass(frozen=True)
class BigramModel:
    """Interpolated absolute-discounting bigram over a :class:`UnigramModel`.

    Pair counts are stored sparsely (sorted keys ``v·V + w``), so the vocabulary size costs
    nothing beyond the unigram vectors.
    """

    unigram: UnigramModel
    keys: np.ndarray
    pair_counts: np.ndarray
    context_counts: np.ndarray
    distinct_successors: np.ndarray
    discount: float

    @classmethod
    def fit(cls, tokens: np.ndarray, unigram: UnigramModel, discount: float) -> BigramModel:
        v = len(unigram.counts)
        keys, counts = np.unique(tokens[:-1] * v + tokens[1:], return_counts=True)
        ctx = np.bincount(keys // v, weights=counts, minlength=v)
        succ = np.bincount(keys // v, minlength=v)
        return cls(unigram, keys, counts.astype(np.float64), ctx, succ.astype(np.float64), discount)

    def with_discount(self, discount: float) -> BigramModel:
        return BigramModel(self.unigram, self.keys, self.pair_counts, self.context_counts,
                           self.distinct_successors, discount)  # fmt: skip

    def token_nll(self, tokens: np.ndarray) -> np.ndarray:
        """NLL (nats) of every target ``tokens[1:]`` given its previous token, shape ``[N − 1]``."""
        v = len(self.unigram.counts)
        prev, nxt = tokens[:-1], tokens[1:]
        q = prev * v + nxt
        pos = np.searchsorted(self.keys, q)
        pos_c = np.minimum(pos, len(self.keys) - 1)
        c_pair = np.where(self.keys[pos_c] == q, self.pair_counts[pos_c], 0.0)
        c_ctx = self.context_counts[prev]
        p_uni = self.unigram.probs[nxt]
        seen = c_ctx > 0
        safe = np.where(seen, c_ctx, 1.0)
        d = self.discount
        p = np.maximum(c_pair - d, 0.0) / safe + d * self.distinct_successors[prev] / safe * p_uni
        return -np.log(np.where(seen, p, p_uni))

    def nll(self, tokens: np.ndarray) -> float:
        """Mean NLL (nats) of ``tokens[1:]``."""
        return float(self.token_nll(tokens).mean())


@dataclass(frozen=True)
class Floors:
    """Floors on the evaluated tokens and the smoothing chosen on dev."""

    unigram_nll: float
    bigram_nll: float
    alpha: float
    discount: float
    dev_unigram_nll: float
    dev_bigram_nll: float
    n_eval_tokens: int

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)

    def bpb(self, nll: float, n_bytes: int) -> float:
        """Bits per byte of a mean NLL over :attr:`n_eval_tokens` targets spanning ``n_bytes``."""
        return nll * self.n_eval_tokens / (math.log(2) * n_bytes)


def fit_floors(
    train: Sequence[int] | np.ndarray,
    dev: Sequence[int] | np.ndarray,
    evaluated: Sequence[int] | np.ndarray,
    vocab_size: int,
) -> Floors:
    """Fit unigram and bigram floors on ``train``, smooth on ``dev``, score ``evaluated``.

    Args:
        train: training token stream ``[N]`` (the dev tokens must not be part of it).
        dev: dev token stream ``[M]`` carved from train; picks α and D (lowest dev NLL).
        evaluated: the exact stream the models are scored on; its targets are ``evaluated[1:]``.
        vocab_size: ``V``; every id must lie in ``[0, V)``.

    Returns:
        :class:`Floors`.
    """
    if int(vocab_size) < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    tr = _as_tokens("train", train, vocab_size)
    dv = _as_tokens("dev", dev, vocab_size)
    ev = _as_tokens("evaluated", evaluated, vocab_size)
    counts = np.bincount(tr, minlength=vocab_size).astype(np.float64)
    uni = min((UnigramModel(counts, a) for a in ALPHA_GRID), key=lambda m: m.nll(dv))
    big0 = BigramModel.fit(tr, uni, DISCOUNT_GRID[0])
    big = min((big0.with_discount(d) for d in DISCOUNT_GRID), key=lambda m: m.nll(dv))
    return Floors(
        unigram_nll=uni.nll(ev), bigram_nll=big.nll(ev), alpha=uni.alpha,
        discount=big.discount, dev_unigram_nll=uni.nll(dv), dev_bigram_nll=big.nll(dv),
        n_eval_tokens=len(ev) - 1,
    )  # fmt: skip
