"""knn_search: every backend against a brute-force numpy kNN written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import knn as knn_module
from neuro_memory import knn_search
from neuro_memory.knn import knn_blocked, knn_mixed


def _numpy_knn(keys: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force in float64: every score, full argsort."""
    s = queries.astype(np.float64) @ keys.astype(np.float64).T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), order


@pytest.mark.parametrize("backend", ["reference", "blocked", "mixed", "auto"])
def test_matches_brute_force(backend):
    gen = torch.Generator().manual_seed(0)
    keys, queries = torch.randn(1000, 16, generator=gen), torch.randn(37, 16, generator=gen)
    got = knn_search(keys, queries, 9, backend=backend)
    v, i = _numpy_knn(keys.numpy(), queries.numpy(), 9)
    np.testing.assert_array_equal(got.indices.numpy(), i)
    np.testing.assert_allclose(got.scores.numpy(), v, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 70),
    m=st.integers(0, 9),
    d=st.integers(1, 5),
    k_frac=st.floats(0.0, 1.0),
    qb=st.integers(1, 8),
    kb=st.integers(1, 80),
    seed=st.integers(0, 2**16),
)
def test_blocked_any_tiling(n, m, d, k_frac, qb, kb, seed):
    """Every tiling (including tiles smaller than k and ragged last tiles) is exact."""
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(n, d, generator=gen, dtype=torch.float64)
    queries = torch.randn(m, d, generator=gen, dtype=torch.float64)
    k = max(1, round(k_frac * n))
    got = knn_blocked(keys, queries, k, query_block=qb, key_block=kb)
    v, i = _numpy_knn(keys.numpy(), queries.numpy(), k)
    assert got.scores.shape == (m, k)
    assert got.indices.shape == (m, k)
    np.testing.assert_allclose(got.scores.numpy(), v, rtol=1e-12, atol=1e-12)
    # Scores are continuous random: ties have probability zero, so the indices are unique.
    np.testing.assert_array_equal(got.indices.numpy(), i)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    m=st.integers(0, 6),
    d=st.integers(1, 8),
    k=st.integers(1, 12),
    first=st.integers(1, 64),
    kb=st.integers(1, 100),
    qb=st.integers(1, 4),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_mixed_any_tiling(n, m, d, k, first, kb, qb, scale, seed):
    """The certified bf16 filter never drops a true top-k key, whatever the tiles and scale."""
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(n, d, generator=gen) * scale
    queries = torch.randn(m, d, generator=gen)
    k = min(k, n)
    got = knn_mixed(keys, queries, k, first_tile=first, key_block=kb, query_block=qb)
    v, i = _numpy_knn(keys.numpy(), queries.numpy(), k)
    assert got.indices.shape == (m, k)
    np.testing.assert_allclose(got.scores.numpy(), v, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_array_equal(got.indices.numpy(), i)


def test_mixed_near_duplicates():
    """Keys closer than bf16 can resolve: the exact re-score must still order them."""
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(40, 16, generator=gen)
    keys = (base.repeat(50, 1) + 1e-3 * torch.randn(2000, 16, generator=gen)).contiguous()
    queries = base[:5] + 1e-3 * torch.randn(5, 16, generator=gen)
    got = knn_mixed(keys, queries, 20, first_tile=100, key_block=256)
    v, i = _numpy_knn(keys.numpy(), queries.numpy(), 20)
    np.testing.assert_allclose(got.scores.numpy(), v, rtol=1e-6, atol=1e-5)
    # Index order may differ only inside float32-level ties: compare as sets per row.
    for a, b, s in zip(got.indices.numpy(), i, v):
        assert set(a) == set(b) or np.ptp(s) < 1e-5


def test_auto_dispatch(monkeypatch):
    keys, queries = torch.randn(40_000, 4), torch.randn(200, 4)
    calls = []
    for name in ("knn_reference", "knn_blocked", "knn_mixed"):
        real = getattr(knn_module, name)
        monkeypatch.setattr(
            knn_module, name, lambda *a, _n=name, _r=real, **kw: calls.append(_n) or _r(*a, **kw)
        )
    monkeypatch.setattr(knn_module, "_NATIVE_BF16", True)
    knn_search(keys[:100], queries, 3)
    knn_search(keys, queries, 3)
    knn_search(keys.double(), queries.double(), 3)
    knn_search(keys, queries.requires_grad_(), 3)
    monkeypatch.setattr(knn_module, "_NATIVE_BF16", False)
    knn_search(keys, queries.detach(), 3)
    assert calls == ["knn_reference", "knn_mixed", "knn_blocked", "knn_blocked", "knn_blocked"]


def test_blocked_gradients_match_reference():
    gen = torch.Generator().manual_seed(1)
    keys = torch.randn(50, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    up = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    grads = []
    for backend in ("reference", "blocked"):
        out = knn_search(keys, queries, 5, backend=backend)
        grads.append(torch.autograd.grad((out.scores * up).sum(), (keys, queries)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_faiss_backend():
    pytest.importorskip("faiss")
    gen = torch.Generator().manual_seed(2)
    keys, queries = torch.randn(3000, 32, generator=gen), torch.randn(20, 32, generator=gen)
    got = knn_search(keys, queries, 7, backend="faiss")
    v, i = _numpy_knn(keys.numpy(), queries.numpy(), 7)
    np.testing.assert_array_equal(got.indices.numpy(), i)
    np.testing.assert_allclose(got.scores.numpy(), v, rtol=1e-4, atol=1e-4)


def test_faiss_missing_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "faiss":
            raise ImportError("no faiss")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"neuro-memory\[faiss\]"):
        knn_search(torch.randn(4, 2), torch.randn(1, 2), 1, backend="faiss")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keys": torch.randn(4)}, "keys"),
        ({"keys": torch.tensor([[float("nan"), 0.0]])}, "keys"),
        ({"queries": torch.randn(2, 3)}, "queries"),
        ({"queries": torch.randn(2, 2, dtype=torch.float64)}, "queries"),
        ({"queries": torch.tensor([[float("inf"), 0.0]])}, "queries"),
        ({"k": 0}, "k"),
        ({"k": 5}, "k"),
        ({"backend": "gpu"}, "backend"),
    ],
)
def test_validation(kwargs, match):
    args = {"keys": torch.randn(4, 2), "queries": torch.randn(3, 2), "k": 2, "backend": "auto"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        knn_search(args["keys"], args["queries"], args["k"], backend=args["backend"])
