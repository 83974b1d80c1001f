"""Aura's centroid index: the rebuild, online inserts and search against a one-memory-at-a-time
port of ``HippocampalFormation`` written here, and its published mapping bug."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuro_memory import (
    CentroidParams,
    EpisodicParams,
    centroid_insert,
    centroid_read,
    centroid_rebuild,
    init_centroid_index,
    init_state,
    read,
    write,
)


class _AuraBank:
    """The centroid parts of Aura's HippocampalFormation, one insert at a time (the spec)."""

    def __init__(self, dim: int, k: int, every: int, gen: torch.Generator) -> None:
        self.k, self.every, self.gen = k, every, gen
        self.features: list[torch.Tensor] = []
        self.cid: list[int] = []
        self.centroids = torch.zeros(k, dim)
        self.counts = torch.zeros(k)
        self.ready = False

    def insert(self, x: torch.Tensor) -> None:
        self.features.append(x)
        if self.ready:
            d = torch.norm(self.centroids - x, dim=1)
            c = int(torch.argmin(d))
            self.counts[c] += 1
            eta = 1.0 / self.counts[c].clamp(min=1.0)
            self.centroids[c] = (1 - eta) * self.centroids[c] + eta * x
            self.cid.append(c)
        else:
            self.cid.append(-1)
        n = len(self.features)
        if n % self.every == 0 and n > self.k:
            self.rebuild()

    def rebuild(self) -> None:
        active = torch.stack(self.features)
        k = min(self.k, active.shape[0])
        perm = torch.randperm(active.shape[0], generator=self.gen)[:k]
        cent = active[perm].clone()
        assign = torch.argmin(torch.cdist(active, cent), dim=1)
        for c in range(k):
            m = assign == c
            if m.any():
                cent[c] = active[m].mean(dim=0)
        self.centroids[:k] = cent
        assign = torch.argmin(torch.cdist(active, self.centroids[:k]), dim=1)
        self.counts = torch.tensor([float((assign == c).sum()) for c in range(self.k)])
        self.cid = assign.tolist()
        self.ready = True

    def search(self, q: torch.Tensor, k: int, n_probe: int, published: bool) -> list[int]:
        n = len(self.features)
        feats = torch.stack(self.features)
        cand = None
        if self.ready and n > self.k:
            top_c = torch.topk(-torch.norm(self.centroids - q, dim=1), k=n_probe).indices
            ids = torch.tensor(self.cid)
            mask = torch.zeros(n, dtype=torch.bool)
            for c in top_c:
                mask |= ids == c
            idx = torch.nonzero(mask).squeeze(-1)
            cand = idx if idx.numel() > 0 else None
        pool = feats if cand is None else feats[cand]
        sim = (
            torch.nn.functional.normalize(q[None], dim=1)
            @ torch.nn.functional.normalize(pool, dim=1).T
        )
        top = torch.topk(sim[0], min(k, pool.shape[0])).indices
        if cand is None or published:
            return top.tolist()
        return cand[top].tolist()


def _clustered(n: int, dim: int, seed: int, n_blobs: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(n_blobs, dim, generator=g)
    return centres[torch.randint(n_blobs, (n,), generator=g)] + torch.randn(n, dim, generator=g)


def _store(keys: torch.Tensor, capacity: int | None = None):
    params = EpisodicParams(capacity=capacity or keys.shape[0])
    state = init_state(params, keys.shape[1], 1)
    vals = torch.arange(keys.shape[0], dtype=torch.float32)[:, None]
    return write(state, keys, vals, params), params


@pytest.mark.parametrize("batches", [[40], [8, 8, 8, 8, 8], [3, 7, 9, 6, 8, 7], [1] * 40])
def test_inserts_equal_one_at_a_time_aura(batches):
    # Rebuilds at 8, 16, 24, 32, 40: every call but [40] spans at most one of them. [40] keeps
    # only the last rebuild (the port draws random numbers at every rebuild, ours at kept ones),
    # so it is compared with the port rebuilt once over all 40 memories.
    dim, kc, every = 5, 4, 8
    keys = _clustered(40, dim, seed=3)
    cp = CentroidParams(n_centroids=kc, rebuild_every=every, n_probe=2)
    params = EpisodicParams(capacity=40)
    state = init_state(params, dim, 1)
    index = init_centroid_index(cp, state)
    gen = torch.Generator().manual_seed(11)
    lo = 0
    for b in batches:
        state = write(state, keys[lo : lo + b], torch.zeros(b, 1), params)
        index = centroid_insert(index, state, cp, generator=gen)
        lo += b
    ref = _AuraBank(dim, kc, every, torch.Generator().manual_seed(11))
    if batches == [40]:
        # A single call keeps only the rebuild at 40: the port rebuilds once at 40 as well.
        ref.features = list(keys)
        ref.cid = [-1] * 40
        ref.rebuild()
    else:
        for x in keys:
            ref.insert(x)
    assert index.ready
    assert index.count == 40
    torch.testing.assert_close(index.centroids, ref.centroids)
    torch.testing.assert_close(index.counts, ref.counts)
    assert index.assign.tolist() == ref.cid
    # The inverted lists hold each centroid's members in ascending slot order.
    for j in range(kc):
        lo, hi = index.bounds[j], index.bounds[j + 1]
        assert index.members[lo:hi].tolist() == [i for i, c in enumerate(ref.cid) if c == j]


def test_online_inserts_after_the_last_rebuild_match_the_port():
    dim, kc, every, n = 4, 3, 10, 27  # rebuilds at 10 and 20, then 7 online inserts
    keys = _clustered(n, dim, seed=5)
    cp = CentroidParams(n_centroids=kc, rebuild_every=every, n_probe=1)
    params = EpisodicParams(capacity=n)
    state, index = init_state(params, dim, 1), None
    index = init_centroid_index(cp, state)
    gen = torch.Generator().manual_seed(2)
    ref = _AuraBank(dim, kc, every, torch.Generator().manual_seed(2))
    for i in range(n):
        state = write(state, keys[i : i + 1], torch.zeros(1, 1), params)
        index = centroid_insert(index, state, cp, generator=gen)
        ref.insert(keys[i])
    torch.testing.assert_close(index.centroids, ref.centroids)
    torch.testing.assert_close(index.counts, ref.counts)
    assert index.assign.tolist() == ref.cid
    # The online updates moved the centroids away from the rebuild's means.
    last = centroid_rebuild(keys[:20], cp, generator=torch.Generator().manual_seed(0))[0]
    assert not torch.allclose(index.centroids, last)


def test_rebuild_is_one_lloyd_step_from_a_random_sample():
    keys = _clustered(50, 3, seed=1)
    cp = CentroidParams(n_centroids=6, n_probe=2)
    cent, counts, assign = centroid_rebuild(keys, cp, generator=torch.Generator().manual_seed(4))
    init = keys[torch.randperm(50, generator=torch.Generator().manual_seed(4))[:6]].numpy()
    x = keys.numpy().astype(np.float64)
    a0 = ((x[:, None] - init[None]) ** 2).sum(-1).argmin(1)
    want = np.stack([x[a0 == j].mean(0) if (a0 == j).any() else init[j] for j in range(6)])
    np.testing.assert_allclose(cent.numpy(), want, rtol=1e-5, atol=1e-5)
    a1 = ((x[:, None] - want[None]) ** 2).sum(-1).argmin(1)
    assert assign.tolist() == a1.tolist()
    assert counts.tolist() == np.bincount(a1, minlength=6).tolist()


@pytest.mark.parametrize("mapping", ["fixed", "published"])
def test_search_equals_the_port(mapping):
    dim, kc, every, n = 6, 8, 16, 75
    keys = _clustered(n, dim, seed=7)
    cp = CentroidParams(n_centroids=kc, rebuild_every=every, n_probe=3, mapping=mapping)
    state, params = _store(keys)
    index = centroid_insert(
        init_centroid_index(cp, state), state, cp, generator=torch.Generator().manual_seed(9)
    )
    ref = _AuraBank(dim, kc, every, torch.Generator())
    ref.features, ref.ready = list(keys), True
    ref.centroids, ref.counts, ref.cid = index.centroids, index.counts, index.assign.tolist()
    queries = keys[::5] + 0.3 * torch.randn(15, dim, generator=torch.Generator().manual_seed(1))
    got = centroid_read(state, index, queries, 3, params, cp)
    for row, q in enumerate(queries):
        want = ref.search(q, 3, 3, published=mapping == "published")
        assert got.indices[row, : len(want)].tolist() == want


def test_published_mapping_returns_the_wrong_memories():
    # Each query is a stored key plus small noise; the fixed index finds it almost always, the
    # published one returns the memory numbered like its position in the candidate list.
    n, dim = 2000, 16
    keys = _clustered(n, dim, seed=0, n_blobs=40)
    state, params = _store(keys)
    targets = torch.arange(0, n, 20)
    queries = keys[targets] + 0.05 * torch.randn(len(targets), dim)
    hits = {}
    for mapping in ("fixed", "published"):
        cp = CentroidParams(mapping=mapping)  # Aura's 256 centroids, 512, 8 probes
        index = centroid_insert(
            init_centroid_index(cp, state), state, cp, generator=torch.Generator().manual_seed(0)
        )
        got = centroid_read(state, index, queries, 5, params, cp)
        hits[mapping] = (got.indices == targets[:, None]).any(1).float().mean().item()
    exact = read(state, queries, 5, params).indices
    assert (exact == targets[:, None]).any(1).all()
    assert hits["fixed"] >= 0.8
    assert hits["published"] <= 0.1


def test_published_indices_are_positions_of_the_fixed_winners():
    n, dim = 600, 8
    keys = _clustered(n, dim, seed=4)
    state, params = _store(keys)
    q = torch.randn(30, dim, generator=torch.Generator().manual_seed(3))
    out = {}
    for mapping in ("fixed", "published"):
        cp = CentroidParams(n_centroids=32, rebuild_every=100, n_probe=4, mapping=mapping)
        index = centroid_insert(
            init_centroid_index(cp, state), state, cp, generator=torch.Generator().manual_seed(5)
        )
        out[mapping] = centroid_read(state, index, q, 4, params, cp)
    assign = index.assign
    probe = torch.cdist(q, index.centroids).topk(4, largest=False).indices
    for row in range(30):
        cand = torch.nonzero(torch.isin(assign, probe[row])).squeeze(-1).tolist()
        fixed = out["fixed"].indices[row].tolist()
        assert out["published"].indices[row].tolist() == [cand.index(s) for s in fixed]
    torch.testing.assert_close(out["fixed"].scores, out["published"].scores)


def test_small_or_unbuilt_store_is_searched_exactly():
    keys = _clustered(200, 4, seed=2)
    state, params = _store(keys)
    cp = CentroidParams(mapping="published")  # 256 centroids: never built for 200 memories
    index = centroid_insert(init_centroid_index(cp, state), state, cp)
    assert not index.ready
    assert (index.assign == -1).all()
    q = torch.randn(7, 4)
    torch.testing.assert_close(
        centroid_read(state, index, q, 5, params, cp).indices, read(state, q, 5, params).indices
    )


def test_rows_with_too_few_candidates_are_padded():
    # Two far-apart groups; with one probe a query near the 3-member group has 3 candidates.
    keys = torch.cat([torch.zeros(3, 2) + torch.tensor([100.0, 1.0]), torch.randn(37, 2)])
    keys[3:, 0] -= 100
    state, params = _store(keys)
    cp = CentroidParams(n_centroids=2, rebuild_every=40, n_probe=1)
    index = centroid_insert(
        init_centroid_index(cp, state), state, cp, generator=torch.Generator().manual_seed(0)
    )
    got = centroid_read(state, index, torch.tensor([[100.0, 1.0]]), 5, params, cp)
    assert sorted(got.indices[0, :3].tolist()) == [0, 1, 2]
    assert got.indices[0, 3:].tolist() == [-1, -1]
    assert torch.isinf(got.scores[0, 3:]).all()


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="n_probe"):
        CentroidParams(n_centroids=4, n_probe=5)
    with pytest.raises(ValueError, match="mapping"):
        CentroidParams(mapping="buggy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rebuild_every"):
        CentroidParams(rebuild_every=0)
    keys = _clustered(30, 3, seed=0)
    state, params = _store(keys, capacity=20)  # wrapped around
    cp = CentroidParams(n_centroids=4, n_probe=1)
    with pytest.raises(ValueError, match="overwritten"):
        centroid_insert(init_centroid_index(cp, state), state, cp)
    state, params = _store(keys)
    index = init_centroid_index(cp, state)
    with pytest.raises(ValueError, match="centroid_insert"):
        centroid_read(state, index, keys[:2], 2, params, cp)
    index = centroid_insert(index, state, cp)
    with pytest.raises(ValueError, match="queries"):
        centroid_read(state, index, keys[:2, :2], 2, params, cp)
    with pytest.raises(ValueError, match="keys"):
        centroid_rebuild(torch.zeros(0, 3), cp)
