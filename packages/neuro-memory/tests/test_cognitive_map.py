"""Cognitive map: incremental inserts equal a brute-force kNN graph rebuilt in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import (
    CognitiveMapParams,
    init_map,
    map_insert,
    map_query,
    spread_activation,
)
from neuro_memory import cognitive_map as cm


def _brute_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild from scratch in float64: every pair, argsort per row, −1 / −inf padding."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    n = len(x)
    nbr = np.full((n, k), -1)
    sim = np.full((n, k), -np.inf)
    for i in range(n):
        order = np.argsort(-s[i], kind="stable")[: min(k, n - 1)]
        nbr[i, : len(order)] = order
        sim[i, : len(order)] = s[i, order]
    return nbr, sim


def _check_equal(graph, x: np.ndarray, k: int, tol: float) -> None:
    nbr, sim = _brute_graph(x, k)
    np.testing.assert_array_equal(graph.neighbors.numpy(), nbr)
    np.testing.assert_allclose(graph.similarity.numpy(), sim, atol=tol, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 9), min_size=1, max_size=6),
    k=st.integers(1, 6),
    d=st.integers(2, 5),
    seed=st.integers(0, 2**16),
)
def test_incremental_equals_rebuild(sizes, k, d, seed):
    """Any sequence of batch inserts gives exactly the graph rebuilt over all keys."""
    gen = torch.Generator().manual_seed(seed)
    params = CognitiveMapParams(n_neighbors=k)
    graph = init_map(d, params, dtype=torch.float64)
    seen = []
    for m in sizes:
        x = torch.randn(m, d, generator=gen, dtype=torch.float64)
        graph = map_insert(graph, x, params)
        seen.append(x)
        _check_equal(graph, torch.cat(seen).numpy(), k, 1e-12)


def test_small_blocks_equal_one_block(monkeypatch):
    """Splitting a large insert into sub-batches (MAX_BLOCK) changes nothing."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 8, generator=gen, dtype=torch.float64)
    params = CognitiveMapParams(n_neighbors=5)
    one = map_insert(init_map(8, params, dtype=torch.float64), x, params)
    monkeypatch.setattr(cm, "MAX_BLOCK", 64)
    split = map_insert(
        map_insert(init_map(8, params, dtype=torch.float64), x[:1], params), x[1:], params
    )
    torch.testing.assert_close(split.neighbors, one.neighbors)
    torch.testing.assert_close(split.similarity, one.similarity)
    _check_equal(one, x.numpy(), 5, 1e-12)


def test_insert_is_pure():
    params = CognitiveMapParams(n_neighbors=3)
    g0 = map_insert(init_map(4, params), torch.randn(10, 4), params)
    before = [t.clone() for t in g0]
    map_insert(g0, torch.randn(5, 4), params)
    for a, b in zip(before, g0):
        torch.testing.assert_close(a, b)


def test_query_matches_brute_force():
    gen = torch.Generator().manual_seed(4)
    params = CognitiveMapParams(n_neighbors=4)
    x = torch.randn(200, 6, generator=gen)
    graph = map_insert(init_map(6, params), x, params)
    q = torch.randn(9, 6, generator=gen)
    got = map_query(graph, q, 5, params)
    xn = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    qn = q.numpy() / np.linalg.norm(q.numpy(), axis=1, keepdims=True)
    s = qn.astype(np.float64) @ xn.T.astype(np.float64)
    order = np.argsort(-s, axis=1)[:, :5]
    np.testing.assert_array_equal(got.indices.numpy(), order)
    np.testing.assert_allclose(got.scores.numpy(), np.take_along_axis(s, order, 1), atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_spread_activation_matches_dense(batched):
    gen = torch.Generator().manual_seed(5)
    params = CognitiveMapParams(n_neighbors=3)
    graph = map_insert(
        init_map(3, params, dtype=torch.float64),
        torch.randn(4, 3, generator=gen, dtype=torch.float64),
        params,
    )  # n = 4 > k: every list full
    graph = map_insert(graph, torch.randn(20, 3, generator=gen, dtype=torch.float64), params)
    n = graph.size
    # Dense adjacency W[i, j] = relu(sim_ij) if j ∈ N(i); a^{h+1} = γ Wᵀ a^h.
    w = np.zeros((n, n))
    for i in range(n):
        for j, s in zip(graph.neighbors[i].tolist(), graph.similarity[i].tolist()):
            w[i, j] = max(s, 0.0)
    a0 = (
        torch.rand(2, n, generator=gen, dtype=torch.float64)
        if batched
        else torch.zeros(n, dtype=torch.float64).index_fill(0, torch.tensor([0, 7]), 1.0)
    )
    ref, cur = a0.numpy().copy(), a0.numpy().copy()
    for _ in range(3):
        cur = 0.7 * cur @ w
        ref = ref + cur
    got = spread_activation(graph, a0, hops=3, gamma=0.7)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(spread_activation(graph, a0, hops=0), a0)


def test_padding_with_few_nodes():
    params = CognitiveMapParams(n_neighbors=4)
    graph = map_insert(init_map(2, params), torch.randn(3, 2), params)
    assert (graph.neighbors[:, 2:] == -1).all()
    assert torch.isinf(graph.similarity[:, 2:]).all()
    # Padding carries no activation.
    out = spread_activation(graph, torch.ones(3), hops=2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g, p: map_insert(g, torch.randn(2, 3), p), "keys"),
        (lambda g, p: map_insert(g, torch.randn(2, 4, dtype=torch.float64), p), "keys"),
        (lambda g, p: map_insert(g, torch.full((1, 4), float("nan")), p), "keys"),
        (
            lambda g, p: map_insert(g, torch.randn(2, 4), CognitiveMapParams(n_neighbors=2)),
            "n_neighbors",
        ),
        (lambda g, p: map_query(g, torch.randn(2, 4), 1, p), "empty"),
        (lambda g, p: spread_activation(g, torch.ones(3), hops=1), "activation"),
        (lambda g, p: spread_activation(g, torch.ones(0), hops=-1), "hops"),
        (lambda g, p: spread_activation(g, torch.ones(0), hops=1, gamma=2.0), "gamma"),
    ],
)
def test_validation(call, match):
    params = CognitiveMapParams(n_neighbors=3)
    with pytest.raises(ValueError, match=match):
        call(init_map(4, params), params)


def test_params_validation():
    with pytest.raises(ValueError, match="n_neighbors"):
        CognitiveMapParams(n_neighbors=0)
    with pytest.raises(ValueError, match="backend"):
        CognitiveMapParams(backend="hnsw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        init_map(0, CognitiveMapParams())


def test_spread_activation_gradcheck():
    params = CognitiveMapParams(n_neighbors=3)
    graph = map_insert(
        init_map(3, params, dtype=torch.float64), torch.randn(12, 3, dtype=torch.float64), params
    )
    a0 = torch.rand(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: spread_activation(graph, a, hops=2, gamma=0.6), (a0,))


def test_query_faiss_backend_matches_exact():
    pytest.importorskip("faiss")
    gen = torch.Generator().manual_seed(6)
    exact_p, faiss_p = (
        CognitiveMapParams(n_neighbors=4),
        CognitiveMapParams(n_neighbors=4, backend="faiss"),
    )
    graph = map_insert(init_map(8, exact_p), torch.randn(500, 8, generator=gen), exact_p)
    q = torch.randn(7, 8, generator=gen)
    a, b = map_query(graph, q, 6, exact_p), map_query(graph, q, 6, faiss_p)
    torch.testing.assert_close(b.indices, a.indices)
    torch.testing.assert_close(b.scores, a.scores, rtol=1e-5, atol=1e-5)
