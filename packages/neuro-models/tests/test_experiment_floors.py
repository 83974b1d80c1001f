"""Count-model floors against a pure-Python transcription of the formulas in ``floors.py``.

The reference below counts with dicts and loops over the docstring equations one token at a
time; nothing of it is shared with the vectorized implementation (sparse keys, ``searchsorted``,
``bincount``).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_models.experiment.floors import (
    ALPHA_GRID,
    DISCOUNT_GRID,
    BigramModel,
    Floors,
    UnigramModel,
    fit_floors,
)

SETTINGS = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------- reference


def ref_unigram(train: list[int], vocab: int, alpha: float) -> list[float]:
    """p(w) = (c(w) + α) / (N + α·V)."""
    c = Counter(train)
    return [(c[w] + alpha) / (len(train) + alpha * vocab) for w in range(vocab)]


def ref_bigram(train: list[int], vocab: int, alpha: float, d: float) -> list[list[float]]:
    """p(w | v) with interpolated absolute discounting, as a full ``[V][V]`` table."""
    uni = ref_unigram(train, vocab, alpha)
    pair: Counter[tuple[int, int]] = Counter()
    for i in range(1, len(train)):
        pair[(train[i - 1], train[i])] += 1
    table = []
    for v in range(vocab):
        c_v = sum(n for (a, _), n in pair.items() if a == v)
        n_plus = sum(1 for (a, _) in pair if a == v)
        row = []
        for w in range(vocab):
            if c_v == 0:
                row.append(uni[w])
            else:
                row.append(max(pair[(v, w)] - d, 0.0) / c_v + d * n_plus / c_v * uni[w])
        table.append(row)
    return table


def ref_nll_uni(probs: list[float], tokens: list[int]) -> float:
    return sum(-math.log(probs[t]) for t in tokens[1:]) / (len(tokens) - 1)


def ref_nll_bi(table: list[list[float]], tokens: list[int]) -> float:
    total = 0.0
    for i in range(1, len(tokens)):
        total -= math.log(table[tokens[i - 1]][tokens[i]])
    return total / (len(tokens) - 1)


# --------------------------------------------------------------------------- strategies


@st.composite
def streams(draw, n_streams: int = 3):
    """``vocab`` and ``n_streams`` token streams over it (lengths 5..200)."""
    vocab = draw(st.integers(2, 20))
    # A skewed sub-vocabulary leaves some ids unseen in train (unseen contexts and pairs).
    used = draw(st.integers(1, vocab))
    out = [
        draw(st.lists(st.integers(0, vocab - 1 if i else used - 1), min_size=5, max_size=200))
        for i in range(n_streams)
    ]
    return vocab, out


def bigram(train: list[int], vocab: int, alpha: float, d: float) -> BigramModel:
    tr = np.array(train, dtype=np.int64)
    uni = UnigramModel(np.bincount(tr, minlength=vocab).astype(np.float64), alpha)
    return BigramModel.fit(tr, uni, d)


def bigram_prob(model: BigramModel, v: int, w: int) -> float:
    return math.exp(-model.token_nll(np.array([v, w]))[0])


# --------------------------------------------------------------------------- unigram / bigram


@SETTINGS
@given(data=streams(2), alpha=st.sampled_from(ALPHA_GRID) | st.floats(1e-4, 2.0))
def test_unigram_matches_reference(data, alpha: float) -> None:
    vocab, (train, ev) = data
    counts = np.bincount(np.array(train), minlength=vocab).astype(np.float64)
    model = UnigramModel(counts, alpha)
    ref = ref_unigram(train, vocab, alpha)
    np.testing.assert_allclose(model.probs, ref, rtol=1e-12)
    assert model.nll(np.array(ev)) == pytest.approx(ref_nll_uni(ref, ev), rel=1e-10)


@SETTINGS
@given(data=streams(1), alpha=st.floats(1e-4, 2.0), d=st.floats(0.01, 0.99))
def test_bigram_matches_reference_for_every_pair(data, alpha: float, d: float) -> None:
    vocab, (train,) = data
    model = bigram(train, vocab, alpha, d)
    ref = ref_bigram(train, vocab, alpha, d)
    got = [[bigram_prob(model, v, w) for w in range(vocab)] for v in range(vocab)]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@SETTINGS
@given(data=streams(2), alpha=st.floats(1e-4, 2.0), d=st.floats(0.01, 0.99))
def test_bigram_stream_nll_matches_reference(data, alpha: float, d: float) -> None:
    vocab, (train, ev) = data
    model = bigram(train, vocab, alpha, d)
    ref = ref_bigram(train, vocab, alpha, d)
    expected = [-math.log(ref[ev[i - 1]][ev[i]]) for i in range(1, len(ev))]
    np.testing.assert_allclose(model.token_nll(np.array(ev)), expected, rtol=1e-10)
    assert model.nll(np.array(ev)) == pytest.approx(ref_nll_bi(ref, ev), rel=1e-10)


@SETTINGS
@given(data=streams(1), alpha=st.floats(1e-4, 2.0), d=st.floats(0.01, 0.99))
def test_bigram_is_a_distribution_for_every_context(data, alpha: float, d: float) -> None:
    vocab, (train,) = data
    model = bigram(train, vocab, alpha, d)
    for v in range(vocab):
        row = [bigram_prob(model, v, w) for w in range(vocab)]
        assert all(p > 0 for p in row)
        assert math.fsum(row) == pytest.approx(1.0, abs=1e-12), f"context {v}"


def test_unseen_context_and_unseen_pair_by_hand() -> None:
    # V = 4; train 0 1 0 1 2: c(0)=2 {1}, c(1)=2 {0, 2}, c(2)=0 (last token only), 3 never seen.
    train = [0, 1, 0, 1, 2]
    alpha, d = 0.5, 0.6
    model = bigram(train, 4, alpha, d)
    uni = [(2 + alpha) / (5 + 4 * alpha), (2 + alpha) / 7, (1 + alpha) / 7, alpha / 7]
    # Seen pair (0, 1): (2 − D)/2 + D·1/2·p(1).
    assert bigram_prob(model, 0, 1) == pytest.approx((2 - d) / 2 + d / 2 * uni[1], rel=1e-12)
    # Unseen pair (0, 3) in a seen context: only the back-off mass.
    assert bigram_prob(model, 0, 3) == pytest.approx(d / 2 * uni[3], rel=1e-12)
    # Pair (1, 2): c = 1, two distinct successors of 1.
    assert bigram_prob(model, 1, 2) == pytest.approx((1 - d) / 2 + d * 2 / 2 * uni[2], rel=1e-12)
    # Unseen contexts 2 (only ever last) and 3 (never seen) back off to the unigram entirely.
    for v in (2, 3):
        for w in range(4):
            assert bigram_prob(model, v, w) == pytest.approx(uni[w], rel=1e-12)


def test_with_discount_changes_only_the_discount() -> None:
    train = [0, 1, 1, 2, 0, 1, 2, 2, 0]
    a = bigram(train, 3, 0.1, 0.3).with_discount(0.8)
    b = bigram(train, 3, 0.1, 0.8)
    ev = np.array([2, 0, 1, 1, 0, 2])
    np.testing.assert_array_equal(a.token_nll(ev), b.token_nll(ev))


# --------------------------------------------------------------------------- fit_floors


@SETTINGS
@given(data=streams(3))
def test_fit_floors_picks_the_dev_argmin_and_scores_evaluated(data) -> None:
    vocab, (train, dev, ev) = data
    f = fit_floors(train, dev, ev, vocab)

    uni_dev = {a: ref_nll_uni(ref_unigram(train, vocab, a), dev) for a in ALPHA_GRID}
    assert f.alpha in ALPHA_GRID
    assert uni_dev[f.alpha] <= min(uni_dev.values()) + 1e-12
    big_dev = {d: ref_nll_bi(ref_bigram(train, vocab, f.alpha, d), dev) for d in DISCOUNT_GRID}
    assert f.discount in DISCOUNT_GRID
    assert big_dev[f.discount] <= min(big_dev.values()) + 1e-12

    assert f.dev_unigram_nll == pytest.approx(uni_dev[f.alpha], rel=1e-10)
    assert f.dev_bigram_nll == pytest.approx(big_dev[f.discount], rel=1e-10)
    uni_ev = ref_nll_uni(ref_unigram(train, vocab, f.alpha), ev)
    big_ev = ref_nll_bi(ref_bigram(train, vocab, f.alpha, f.discount), ev)
    assert f.unigram_nll == pytest.approx(uni_ev, rel=1e-10)
    assert f.bigram_nll == pytest.approx(big_ev, rel=1e-10)
    assert f.n_eval_tokens == len(ev) - 1


@SETTINGS
@given(data=streams(4))
def test_evaluated_tokens_never_choose_the_smoothing(data) -> None:
    vocab, (train, dev, ev1, ev2) = data
    f1 = fit_floors(train, dev, ev1, vocab)
    f2 = fit_floors(train, dev, ev2, vocab)
    assert (f1.alpha, f1.discount) == (f2.alpha, f2.discount)
    assert (f1.dev_unigram_nll, f1.dev_bigram_nll) == (f2.dev_unigram_nll, f2.dev_bigram_nll)


def test_dev_choice_differs_from_the_evaluated_optimum() -> None:
    # Dev repeats train's pattern (little smoothing wins); the evaluated stream is unlike train
    # (heavy smoothing would win). The floors must keep dev's choice.
    train = [0, 1] * 30
    dev = [0, 1] * 10
    ev = [2, 3] * 10
    f = fit_floors(train, dev, ev, 4)
    ev_best = min(ALPHA_GRID, key=lambda a: ref_nll_uni(ref_unigram(train, 4, a), ev))
    assert f.alpha == min(ALPHA_GRID)
    assert ev_best == max(ALPHA_GRID)
    assert f.unigram_nll == pytest.approx(ref_nll_uni(ref_unigram(train, 4, f.alpha), ev))


def test_accepts_lists_and_any_integer_dtype() -> None:
    train, dev, ev = [0, 1, 2, 1, 0, 2, 2], [1, 0, 2], [2, 1, 0, 0]
    a = fit_floors(train, dev, ev, 3)
    b = fit_floors(np.array(train, np.uint8), np.array(dev, np.int16), np.array(ev, np.int32), 3)
    assert a == b


def test_bpb_converts_nats_per_token_to_bits_per_byte() -> None:
    f = Floors(unigram_nll=0, bigram_nll=0, alpha=1, discount=0.5, dev_unigram_nll=0,
               dev_bigram_nll=0, n_eval_tokens=100)  # fmt: skip
    # ln 2 nats per token is one bit per token; 100 tokens over 50 bytes is 2 bits per byte.
    assert f.bpb(math.log(2), 50) == pytest.approx(2.0)
    assert f.as_dict()["n_eval_tokens"] == 100


GOOD = [0, 1, 2, 1]


@pytest.mark.parametrize("which", ["train", "dev", "evaluated"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([[0, 1], [1, 0]]), "must be 1-D"),
        (np.array([0, 1, 3]), r"outside the vocabulary \[0, 3\)"),
        (np.array([0, -1, 2]), r"ids in \[-1, 2\]"),
        (np.array([0.0, 1.0, 2.0]), "must be integer token ids"),
        (np.array([1]), "at least 2 tokens"),
        (np.array([], dtype=np.int64), "at least 2 tokens"),
    ],
)
def test_validation_names_the_argument(which: str, bad: np.ndarray, message: str) -> None:
    args = {"train": GOOD, "dev": GOOD, "evaluated": GOOD, which: bad}
    with pytest.raises(ValueError, match=rf"^{which} .*{message}"):
        fit_floors(args["train"], args["dev"], args["evaluated"], 3)


@pytest.mark.parametrize("vocab", [0, 1])
def test_vocab_size_below_two_is_refused(vocab: int) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        fit_floors([0, 0], [0, 0], [0, 0], vocab)
