"""Importance scoring and short-term → long-term consolidation against plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import (
    ConsolidationParams,
    EpisodicParams,
    ImportanceParams,
    consolidate,
    importance_score,
    init_state,
    novelty,
    surprise_from_logits,
    write,
)

# ---------------------------------------------------------------- importance


def test_surprise_matches_softmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 7, (2, 5), generator=gen)
    got = surprise_from_logits(logits, targets)
    z = logits.numpy()
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ref = -np.log(np.take_along_axis(p, targets.numpy()[..., None], -1)[..., 0])
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_novelty_closed_form():
    stored = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    keys = torch.tensor([[3.0, 0.0], [-1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    # max cos: 1, 0 (vs [0, 2]), 1/√2, 0.
    ref = [(1 - 1) / 2, (1 - 0) / 2, (1 - 1 / math.sqrt(2)) / 2, (1 - 0) / 2]
    torch.testing.assert_close(novelty(keys, stored), torch.tensor(ref))
    torch.testing.assert_close(novelty(keys, stored[:0]), torch.ones(4))


@settings(max_examples=50, deadline=None)
@given(
    s=st.lists(st.floats(0, 50), min_size=1, max_size=8),
    ws=st.floats(0, 3),
    wn=st.floats(0, 3),
    we=st.floats(0.01, 3),
    s0=st.floats(0.1, 5),
    seed=st.integers(0, 1000),
)
def test_importance_weighted_mean(s, ws, wn, we, s0, seed):
    rng = np.random.default_rng(seed)
    n, e = rng.uniform(0, 1, len(s)), rng.uniform(0, 1, len(s))
    p = ImportanceParams(
        surprise_weight=ws, novelty_weight=wn, salience_weight=we, surprise_scale=s0
    )
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    got = importance_score(surprise=t(s), novelty=t(n), salience=t(e), params=p).numpy()
    ref = (ws * (1 - np.exp(-np.array(s) / s0)) + wn * n + we * e) / (ws + wn + we)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    assert ((got >= 0) & (got <= 1)).all()
    # Dropping a term removes it from both sums.
    only = importance_score(novelty=t(n), salience=t(e), params=p).numpy()
    np.testing.assert_allclose(only, (wn * n + we * e) / (wn + we), rtol=1e-12, atol=1e-15)


def test_importance_monotone_in_surprise():
    s = torch.linspace(0, 10, 50)
    i = importance_score(surprise=s, novelty=torch.full((50,), 0.3))
    assert (i[1:] > i[:-1]).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "at least one"),
        ({"surprise": torch.tensor([-1.0])}, "surprise"),
        ({"novelty": torch.tensor([1.5])}, "novelty"),
        ({"salience": torch.tensor([float("nan")])}, "salience"),
        ({"novelty": torch.ones(2), "salience": torch.ones(3)}, "salience"),
        (
            {"novelty": torch.ones(2), "params": ImportanceParams(novelty_weight=0.0)},
            "weights",
        ),
    ],
)
def test_importance_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        importance_score(**kwargs)


def test_surprise_validation():
    with pytest.raises(ValueError, match="targets"):
        surprise_from_logits(torch.randn(3, 4), torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="targets"):
        surprise_from_logits(torch.randn(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="surprise_scale"):
        ImportanceParams(surprise_scale=0.0)


# ------------------------------------------------------------- consolidation


class _Store:
    """A plain-Python episodic store: dicts of id -> [strength, stamp], weakest-first eviction."""

    def __init__(self, capacity: int, rate: float) -> None:
        self.capacity, self.rate, self.items, self.count = capacity, rate, {}, 0

    def write(self, entries: list[tuple[int, float]]) -> None:
        # One batched write: victims are the weakest (then oldest) of the memories stored before.
        free = self.capacity - len(self.items)
        need = max(0, len(entries) - free)
        old = sorted(self.items, key=lambda i: (self.items[i][0], self.items[i][1]))
        for victim in old[:need]:
            del self.items[victim]
        for ident, strength in entries:
            self.items[ident] = [strength, self.count]
            self.count += 1

    def decay(self, steps: int) -> None:
        for v in self.items.values():
            v[0] *= (1 - self.rate) ** steps


def _ids(state) -> dict[int, float]:
    size = state.size
    return {
        int(v): float(s)
        for v, s in zip(state.values[:size, 0].tolist(), state.strength[:size].tolist())
    }


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.floats(0.01, 1.0)),
            st.tuples(st.just("consolidate"), st.integers(0, 3)),
        ),
        min_size=1,
        max_size=25,
    ),
    theta=st.floats(0.2, 0.9),
)
def test_consolidation_matches_reference(ops, theta):
    params = ConsolidationParams(
        short=EpisodicParams(capacity=4, decay_rate=0.2, replacement="weakest"),
        long=EpisodicParams(capacity=5, decay_rate=0.05, replacement="weakest"),
        threshold=theta,
    )
    short = init_state(params.short, 3, 1, dtype=torch.float64)
    long = init_state(params.long, 3, 1, dtype=torch.float64)
    ref_s, ref_l = _Store(4, 0.2), _Store(5, 0.05)
    consumed: set[int] = set()
    gen = torch.Generator().manual_seed(0)
    next_id = 0
    for op, arg in ops:
        if op == "write":
            key = torch.randn(1, 3, generator=gen, dtype=torch.float64)
            value = torch.tensor([[float(next_id)]], dtype=torch.float64)
            short = write(
                short, key, value, params.short, strength=torch.tensor([arg], dtype=torch.float64)
            )
            ref_s.write([(next_id, arg)])
            next_id += 1
            continue
        short, long, moved = consolidate(short, long, params, steps=arg)
        movers = sorted(
            (i for i, (s, _) in ref_s.items.items() if s >= theta and i not in consumed),
            key=lambda i: ref_s.items[i][1],
        )
        ref_l.write([(i, ref_s.items[i][0]) for i in movers])
        for i in movers:
            ref_s.items[i][0] = 0.0
            consumed.add(i)
        ref_s.decay(arg)
        ref_l.decay(arg)
        assert [int(short.values[j, 0]) for j in moved.tolist()] == movers
    for got, ref in ((_ids(short), ref_s.items), (_ids(long), ref_l.items)):
        assert set(got) == set(ref)
        for i, s in got.items():
            assert s == pytest.approx(ref[i][0], rel=1e-12, abs=1e-300)


def test_consolidation_closed_form_strength():
    """Importance I written a steps before consolidation moves iff I (1 − r_S)^a ≥ θ."""
    params = ConsolidationParams(
        short=EpisodicParams(capacity=8, decay_rate=0.5, replacement="weakest"),
        long=EpisodicParams(capacity=8, decay_rate=0.1, replacement="weakest"),
        threshold=0.3,
    )
    short = init_state(params.short, 2, 2)
    long = init_state(params.long, 2, 2)
    short = write(
        short, torch.randn(2, 2), torch.randn(2, 2), params.short, strength=torch.tensor([0.9, 0.5])
    )
    # Decay the buffer once: 0.45 and 0.25 remain.
    short, long, moved = consolidate(short, long, params, steps=1)
    assert moved.numel() == 2  # both ≥ 0.3 before this call's decay
    short2 = write(
        init_state(params.short, 2, 2),
        torch.randn(2, 2),
        torch.randn(2, 2),
        params.short,
        strength=torch.tensor([0.9, 0.5]),
    )
    short2, long2, _ = consolidate(short2, init_state(params.long, 2, 2), params, steps=1)
    short2, long2, moved2 = consolidate(short2, long2, params, steps=1)
    assert moved2.numel() == 0  # already consumed: never moved twice
    torch.testing.assert_close(long2.strength[:2], torch.tensor([0.9, 0.5]) * 0.9**2)
    # Written, aged one step without consolidation, then tested: 0.9·0.5 ≥ 0.3 > 0.5·0.5.
    from neuro_memory import decay

    s3 = write(
        init_state(params.short, 2, 2),
        torch.randn(2, 2),
        torch.randn(2, 2),
        params.short,
        strength=torch.tensor([0.9, 0.5]),
    )
    s3 = decay(s3, params.short)
    _, l3, moved3 = consolidate(s3, init_state(params.long, 2, 2), params, steps=0)
    assert moved3.tolist() == [0]
    torch.testing.assert_close(l3.strength[:1], torch.tensor([0.45]))


def test_consolidation_validation():
    params = ConsolidationParams(
        short=EpisodicParams(capacity=4), long=EpisodicParams(capacity=8), threshold=0.5
    )
    with pytest.raises(ValueError, match="same sizes"):
        consolidate(init_state(params.short, 2, 2), init_state(params.long, 3, 2), params)
    with pytest.raises(ValueError, match="capacity"):
        consolidate(init_state(params.long, 2, 2), init_state(params.long, 2, 2), params)
    with pytest.raises(ValueError, match="threshold"):
        ConsolidationParams(threshold=0.0)


def test_importance_gradcheck():
    gen = torch.Generator().manual_seed(0)
    s = (torch.rand(6, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    n = torch.rand(6, generator=gen, dtype=torch.float64).requires_grad_()
    e = torch.rand(6, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b, c: importance_score(surprise=a, novelty=b, salience=c), (s, n, e)
    )
    logits = torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 4, 2])
    assert torch.autograd.gradcheck(lambda z: surprise_from_logits(z, targets), (logits,))
