"""Candidate re-ranking maps back to slot indices (Aura's index bug), with and without FAISS."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import EpisodicParams, FaissIndex, decay, init_state, read, write


def _state(n: int, capacity: int, dk: int = 6, seed: int = 0, policy: str = "fifo"):
    params = EpisodicParams(capacity=capacity, replacement=policy, decay_rate=0.1)
    gen = torch.Generator().manual_seed(seed)
    state = init_state(params, dk, 4)
    for _ in range(3):  # three chunks with decays between, so strengths differ
        m = n // 3
        state = write(
            state, torch.randn(m, dk, generator=gen), torch.randn(m, 4, generator=gen), params
        )
        state = decay(state, params)
    return state, params, gen


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_cand=st.integers(4, 12), k=st.integers(1, 3))
def test_candidates_rerank_against_numpy_and_return_slot_indices(seed, n_cand, k):
    state, params, _ = _state(30, 20, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((5, 6))
    cand = np.stack([rng.permutation(state.size)[:n_cand] for _ in range(5)])
    cand[:, -1] = -1  # padding entry
    got = read(state, torch.from_numpy(q).float(), k, params, candidates=torch.from_numpy(cand))

    keys = state.keys.double().numpy()
    kn = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    full = (qn @ kn.T) * state.strength.double().numpy()[None, :]
    for row in range(5):
        pool = [c for c in cand[row] if c >= 0]
        best = sorted(pool, key=lambda c, row=row: -full[row, c])[:k]
        np.testing.assert_allclose(got.scores[row].numpy(), full[row, best], rtol=1e-5, atol=1e-6)
        # Slot indices, not positions within the candidate list.
        assert set(got.indices[row].tolist()) <= set(pool)
        np.testing.assert_allclose(full[row, got.indices[row].numpy()], full[row, best], atol=1e-6)
    torch.testing.assert_close(got.values, state.values[got.indices])


def test_candidate_positions_are_not_mistaken_for_slots():
    # The exact bug: the best candidate sits at position 0 of the list but in slot 7 of the bank.
    params = EpisodicParams(capacity=8)
    state = init_state(params, 2, 1)
    keys = torch.tensor([[0.0, 1.0]] * 7 + [[1.0, 0.0]])
    state = write(state, keys, torch.arange(8.0).view(8, 1), params)
    got = read(state, torch.tensor([[1.0, 0.0]]), 1, params, candidates=torch.tensor([[7, 2, 3]]))
    assert got.indices.tolist() == [[7]]
    assert got.values.tolist() == [[[7.0]]]
    assert got.scores.item() == pytest.approx(1.0)


def test_candidate_validation():
    state, params, _ = _state(9, 12)
    q = torch.randn(2, 6)
    cases = [
        (torch.tensor([[0, 1, 9], [0, 1, 2]]), "candidates must be filled"),
        (torch.tensor([[0, 1, -2], [0, 1, 2]]), "candidates must be filled"),
        (torch.tensor([[0, 1, 1], [0, 1, 2]]), "repeat"),
        (torch.tensor([[0, -1, -1], [0, 1, 2]]), "at least k=2"),
        (torch.tensor([[0, 1, 2]]), "rows"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), "candidates"),
    ]
    for cand, msg in cases:
        with pytest.raises(ValueError, match=msg):
            read(state, q, 2, params, candidates=cand)


# Only these tests need the optional extra; the candidate tests above run without it.
needs_faiss = pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None, reason="needs neuro-memory[faiss]"
)


@needs_faiss
@pytest.mark.parametrize("policy", ["fifo", "weakest"])
def test_faiss_flat_with_all_candidates_equals_exact(policy):
    state, params, gen = _state(60, 40, policy=policy)  # wrapped around: slot order != write order
    q = torch.randn(7, 6, generator=gen)
    index = FaissIndex(state, params)
    got = index.read(state, q, 4, params, n_candidates=state.size)
    want = read(state, q, 4, params)
    torch.testing.assert_close(got.scores, want.scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.values, state.values[got.indices])
    torch.testing.assert_close(got.indices, want.indices)


@needs_faiss
def test_faiss_ivf_exhaustive_probe_equals_exact_and_partial_is_sane():
    state, params, gen = _state(300, 400)
    q = torch.randn(9, 6, generator=gen)
    want = read(state, q, 5, params)
    full = FaissIndex(state, params, nlist=8, nprobe=8).read(state, q, 5, params, n_candidates=300)
    torch.testing.assert_close(full.scores, want.scores, rtol=1e-5, atol=1e-6)
    part = FaissIndex(state, params, nlist=8, nprobe=2).read(state, q, 5, params, n_candidates=32)
    # Approximate: never better than exact, and every returned slot has its true score.
    assert bool((part.scores <= want.scores + 1e-6).all())
    true = read(state, q, 5, params, candidates=part.indices)
    torch.testing.assert_close(true.scores, part.scores, rtol=1e-5, atol=1e-6)


@needs_faiss
def test_faiss_rows_with_too_few_candidates_fall_back_to_exact(monkeypatch):
    state, params, gen = _state(30, 40)
    q = torch.randn(3, 6, generator=gen)
    index = FaissIndex(state, params)
    real = index.search(q, 10)
    short = real.clone()
    short[1, 1:] = -1  # row 1: a single candidate for k = 3
    monkeypatch.setattr(index, "search", lambda queries, n: short)
    got = index.read(state, q, 3, params, n_candidates=10)
    exact = read(state, q, 3, params)
    torch.testing.assert_close(got.scores[1], exact.scores[1])
    torch.testing.assert_close(got.indices[1], exact.indices[1])
    approx = read(state, q[[0, 2]], 3, params, candidates=real[[0, 2]])
    torch.testing.assert_close(got.scores[[0, 2]], approx.scores)


@needs_faiss
def test_faiss_index_rejects_stale_state_and_bad_args():
    state, params, _ = _state(30, 40)
    index = FaissIndex(state, params)
    newer = write(state, torch.randn(1, 6), torch.randn(1, 4), params)
    with pytest.raises(ValueError, match="written after the index"):
        index.read(newer, torch.randn(1, 6), 1, params)
    with pytest.raises(ValueError, match="n_candidates"):
        index.read(state, torch.randn(1, 6), 5, params, n_candidates=4)
    with pytest.raises(ValueError, match="nlist"):
        FaissIndex(state, params, nlist=31)
    with pytest.raises(ValueError, match="nprobe"):
        FaissIndex(state, params, nlist=4, nprobe=5)
    with pytest.raises(ValueError, match="at least one"):
        FaissIndex(init_state(params, 6, 4), params)
