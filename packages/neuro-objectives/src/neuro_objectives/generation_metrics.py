"""Repetition and diversity of generated token sequences (metrics, no gradient).

For sequences ``x^(1) … x^(K)``, ``G_n(x)`` the list of n-grams of ``x`` (with multiplicity) and
``U_n(x)`` its set:

* ``seq-rep-n`` (Welleck et al. 2019): ``mean_k (1 − |U_n(x^(k))| / |G_n(x^(k))|)`` — per
  sequence, then averaged (macro).
* ``rep-n`` (Su et al. 2022, SimCTG): ``1 − Σ_k |U_n(x^(k))| / Σ_k |G_n(x^(k))|`` — pooled
  counts (micro); long sequences weigh more.
* ``distinct-n`` (Li et al. 2016): ``|∪_k U_n(x^(k))| / Σ_k |G_n(x^(k))|`` — distinct n-grams
  across the whole set of generations.
* ``repeated-n-gram fraction``: the fraction of n-gram occurrences whose n-gram occurs more than
  once in its own sequence (first occurrences included), pooled; the "fraction of repeated
  3/4-grams" of the NeuroLlama habituation protocol (reference-systems §1.12).
* ``rep/ℓ`` (Welleck et al. 2019, ``rep_window``): the fraction of tokens equal to one of the
  ``ℓ`` tokens before them.

Sequences shorter than ``n`` contribute no n-gram; a metric with no n-gram at all is 0.
Sequences are lists of ints or an int tensor ``[K, T]`` (trailing ``pad_id`` tokens are cut).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from neuro_core.validation import check_tensor

TokenSequences = Sequence[Sequence[int]] | torch.Tensor


def as_token_lists(sequences: TokenSequences, *, pad_id: int | None = None) -> list[list[int]]:
    """Token lists from an int tensor ``[K, T]`` or a sequence of int sequences.

    Trailing ``pad_id`` tokens of each sequence are removed (also for lists).
    """
    if isinstance(sequences, torch.Tensor):
        check_tensor("sequences", sequences, ndim=2)
        if sequences.is_floating_point() or sequences.dtype == torch.bool:
            raise ValueError(f"sequences must hold integer token ids, got {sequences.dtype}")
        lists = [list(map(int, row)) for row in sequences.tolist()]
    else:
        if isinstance(sequences, (str, bytes)):
            raise ValueError("sequences must be token-id sequences, not a string")
        lists = []
        for i, s in enumerate(sequences):
            row = list(s)
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in row):
                raise ValueError(f"sequences[{i}] must hold int token ids")
            lists.append(row)
    if pad_id is not None:
        for row in lists:
            while row and row[-1] == pad_id:
                row.pop()
    return lists


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    return int(n)


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """Every n-gram of ``tokens`` in order, with multiplicity (``len − n + 1`` of them)."""
    n = _check_n(n)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_repeat_rates(
    sequences: TokenSequences, n: int = 3, *, pad_id: int | None = None
) -> torch.Tensor:
    """Per sequence ``1 − |U_n| / |G_n|`` (0 when it has no n-gram), float64 ``[K]``."""
    out = []
    for row in as_token_lists(sequences, pad_id=pad_id):
        g = ngrams(row, n)
        out.append(1.0 - len(set(g)) / len(g) if g else 0.0)
    return torch.tensor(out, dtype=torch.float64)


def seq_rep_n(sequences: TokenSequences, n: int = 4, *, pad_id: int | None = None) -> float:
    """Welleck et al.'s seq-rep-n: mean over sequences of ``1 − unique / total`` n-grams."""
    rates = ngram_repeat_rates(sequences, n, pad_id=pad_id)
    return float(rates.mean()) if rates.numel() else 0.0


def rep_n(sequences: TokenSequences, n: int = 2, *, pad_id: int | None = None) -> float:
    """SimCTG's rep-n: ``1 − Σ unique / Σ total`` n-grams, counted per sequence and pooled."""
    uniq = total = 0
    for row in as_token_lists(sequences, pad_id=pad_id):
        g = ngrams(row, n)
        uniq += len(set(g))
        total += len(g)
    return 1.0 - uniq / total if total else 0.0


def distinct_n(sequences: TokenSequences, n: int = 1, *, pad_id: int | None = None) -> float:
    """Li et al.'s distinct-n: distinct n-grams of all sequences over all n-gram occurrences."""
    types: set[tuple[int, ...]] = set()
    total = 0
    for row in as_token_lists(sequences, pad_id=pad_id):
        g = ngrams(row, n)
        types.update(g)
        total += len(g)
    return len(types) / total if total else 0.0


def repeated_ngram_fraction(
    sequences: TokenSequences, n: int = 3, *, pad_id: int | None = None
) -> float:
    """Fraction of n-gram occurrences whose n-gram occurs more than once in its sequence."""
    repeated = total = 0
    for row in as_token_lists(sequences, pad_id=pad_id):
        counts = Counter(ngrams(row, n))
        repeated += sum(c for c in counts.values() if c > 1)
        total += sum(counts.values())
    return repeated / total if total else 0.0


def rep_window(sequences: TokenSequences, window: int = 16, *, pad_id: int | None = None) -> float:
    """Welleck et al.'s rep/ℓ: fraction of tokens (after the first) found among the ℓ before."""
    if int(window) < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    hits = total = 0
    for row in as_token_lists(sequences, pad_id=pad_id):
        for t in range(1, len(row)):
            hits += row[t] in row[max(0, t - int(window)) : t]
            total += 1
    return hits / total if total else 0.0
