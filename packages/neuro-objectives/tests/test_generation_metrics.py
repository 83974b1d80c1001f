import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    as_token_lists,
    distinct_n,
    ngram_repeat_rates,
    rep_n,
    rep_window,
    repeated_ngram_fraction,
    seq_rep_n,
)

# Independent pure-Python counts: n-grams as space-joined strings, counted with a dict.


def _grams(seq: list[int], n: int) -> list[str]:
    out = []
    i = 0
    while i + n <= len(seq):
        out.append(" ".join(str(x) for x in seq[i : i + n]))
        i += 1
    return out


def _counts(seq: list[int], n: int) -> dict[str, int]:
    d: dict[str, int] = {}
    for g in _grams(seq, n):
        d[g] = d.get(g, 0) + 1
    return d


def _ref_seq_rep(seqs: list[list[int]], n: int) -> float:
    vals = []
    for s in seqs:
        c = _counts(s, n)
        total = sum(c.values())
        vals.append(1 - len(c) / total if total else 0.0)
    return sum(vals) / len(vals) if vals else 0.0


def _ref_rep(seqs: list[list[int]], n: int) -> float:
    uniq = sum(len(_counts(s, n)) for s in seqs)
    total = sum(sum(_counts(s, n).values()) for s in seqs)
    return 1 - uniq / total if total else 0.0


def _ref_distinct(seqs: list[list[int]], n: int) -> float:
    allg: dict[str, int] = {}
    total = 0
    for s in seqs:
        for g in _grams(s, n):
            allg[g] = 1
            total += 1
    return len(allg) / total if total else 0.0


def _ref_repeated(seqs: list[list[int]], n: int) -> float:
    rep = total = 0
    for s in seqs:
        c = _counts(s, n)
        for g in _grams(s, n):
            total += 1
            rep += c[g] >= 2
    return rep / total if total else 0.0


def _ref_rep_window(seqs: list[list[int]], w: int) -> float:
    hits = total = 0
    for s in seqs:
        for t in range(1, len(s)):
            prev = s[max(0, t - w) : t]
            total += 1
            hits += 1 if s[t] in prev else 0
    return hits / total if total else 0.0


seqs_strategy = st.lists(
    st.lists(st.integers(0, 4), min_size=0, max_size=15), min_size=1, max_size=5
)


@settings(max_examples=80, deadline=None)
@given(seqs=seqs_strategy, n=st.integers(1, 4))
def test_metrics_match_independent_counts_and_are_bounded(seqs: list[list[int]], n: int) -> None:
    values = {
        "seq_rep": (seq_rep_n(seqs, n), _ref_seq_rep(seqs, n)),
        "rep": (rep_n(seqs, n), _ref_rep(seqs, n)),
        "distinct": (distinct_n(seqs, n), _ref_distinct(seqs, n)),
        "repeated": (repeated_ngram_fraction(seqs, n), _ref_repeated(seqs, n)),
        "rep_window": (rep_window(seqs, n + 2), _ref_rep_window(seqs, n + 2)),
    }
    for name, (got, want) in values.items():
        assert got == pytest.approx(want, abs=1e-12), name
        assert 0.0 <= got <= 1.0, name
    # a repeated n-gram's first occurrence counts as repeated too: never below seq-rep's pooling
    assert repeated_ngram_fraction(seqs, n) >= rep_n(seqs, n) - 1e-12


def test_known_values() -> None:
    s = [[1, 2, 1, 2, 1, 2]]  # bigrams 12 21 12 21 12: 5 total, 2 unique
    assert seq_rep_n(s, 2) == pytest.approx(3 / 5)
    assert rep_n(s, 2) == pytest.approx(3 / 5)
    assert distinct_n(s, 2) == pytest.approx(2 / 5)
    assert repeated_ngram_fraction(s, 2) == pytest.approx(1.0)
    assert rep_window(s, 1) == pytest.approx(0.0)
    assert rep_window(s, 2) == pytest.approx(4 / 5)
    two = [[1, 2, 3], [1, 2, 3]]  # within-sequence no repeats, across sequences all repeated
    assert seq_rep_n(two, 1) == 0.0
    assert distinct_n(two, 1) == pytest.approx(0.5)


def test_tensor_input_strips_trailing_padding() -> None:
    t = torch.tensor([[5, 6, 5, 6, 0, 0], [7, 7, 7, 0, 0, 0]])
    assert as_token_lists(t, pad_id=0) == [[5, 6, 5, 6], [7, 7, 7]]
    rates = ngram_repeat_rates(t, 2, pad_id=0)
    torch.testing.assert_close(rates, torch.tensor([1 - 2 / 3, 1 - 1 / 2], dtype=torch.float64))
    assert seq_rep_n(t, 2, pad_id=0) == pytest.approx(float(rates.mean()))


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="n must"):
        seq_rep_n([[1, 2]], 0)
    with pytest.raises(ValueError, match="sequences"):
        rep_n(torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        distinct_n([[1, 2], [1.5, 2]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="window"):
        rep_window([[1, 2]], 0)
