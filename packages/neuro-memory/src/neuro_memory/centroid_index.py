"""Aura's centroid index over an episodic store, with its published mapping bug behind a flag.

Source: ``HippocampalFormation`` of auralmn/aura-snn-rag (``src/core/hippocampal.py``:
``rebuild_centroids`` and the centroid branches of ``create_episodic_memory`` and
``retrieve_similar_memories``); reference-systems spec §3.2. The index keeps ``K`` centroids
``c_j`` in the raw (unnormalised) key space and one cluster id ``a_i`` per stored memory.

**Rebuild** over the keys ``x_1 .. x_n`` stored so far, after every ``rebuild_every``-th insert
once ``n > K`` (published: K = 256, every 512 inserts)::

    c_j ← x_{π(j)},  π = randperm(n)[:K]            (K distinct stored keys at random)
    repeat refine_steps (published 1) times:
        a_i = argmin_j ‖x_i − c_j‖₂;   c_j ← mean{x_i : a_i = j}   (empty clusters keep c_j)
    a_i = argmin_j ‖x_i − c_j‖₂,   n_j = #{i : a_i = j}

**Insert** of a key ``x`` once a rebuild has happened (before that insert's rebuild check)::

    j = argmin_j ‖x − c_j‖₂,   n_j ← n_j + 1,   c_j ← (1 − 1/n_j)·c_j + x/n_j,   a_x = j

**Search** for a query ``q`` (only once built and ``n > K``; exact search otherwise): the
``n_probe`` (published 8) centroids nearest to ``q`` in Euclidean distance; the candidates are
the memories assigned to them, in ascending slot order (``torch.nonzero`` of a mask, as
published); each candidate scores ``cos(q, key)·strength`` (as :func:`~neuro_memory.episodic.read`)
and the best ``k`` are returned. When no memory is assigned to the probed centroids the search is
exact, as published.

``mapping="published"`` keeps Aura's bug: the top-k *positions within the candidate list* are
returned as if they were slot indices, so the memory at bank slot ``p`` is returned for the
``p``-th candidate. ``mapping="fixed"`` (default) maps positions back to slots.

What differs from the published code, and why:

* Score. Aura scores ``(0.5·cos + 0.3/(1 + spatial distance) + 0.2·exp(−age/3600 s))·strength``
  with the spatial term zero when no location is given (with a location it fails on the candidate
  subset: shapes ``[C]`` and ``[n]`` mismatch) and the temporal term read from the wall clock
  (≈ constant for memories stored within seconds). We rank by ``cos·strength`` as
  :func:`~neuro_memory.episodic.read` does.
* A row with fewer than ``k`` candidates: Aura's ``torch.topk`` raises; we return the candidates
  there are and fill the remaining ranks with index ``−1`` and score ``−inf``.
* Batched inserts: :func:`centroid_insert` skips a rebuild whose result a later rebuild of the
  same call overwrites (a rebuild reads only the stored keys, not the previous centroids), so
  only the last rebuild draws random numbers. With at most one rebuild per call it equals Aura's
  one-at-a-time process for the same generator (a test pins this).
* Randomness comes from an explicit ``generator`` (Aura: the global RNG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from neuro_core.validation import check_int, check_tensor
from neuro_memory.episodic import EpisodicParams, EpisodicState, Retrieved, _check_k, read

Mapping = Literal["fixed", "published"]
_MAPPINGS: tuple[str, ...] = ("fixed", "published")

#: Largest ``[queries, candidates, D]`` gather :func:`centroid_read` builds at once (2**22 fp32
#: = 16 MiB); larger batches are answered in chunks with identical results.
MAX_GATHER = 2**22


@dataclass(frozen=True, kw_only=True)
class CentroidParams:
    """Hyper-parameters of the centroid index (defaults: Aura's ``HippocampalFormation``).

    Attributes:
        n_centroids: ``K``, default 256 (``centroids_k``).
        rebuild_every: rebuild after every this many inserts once more than ``K`` memories are
            stored, default 512 (``centroids_update_interval``).
        n_probe: centroids searched per query, default 8 (``topk(-c_dists, k=min(8, K))``).
        refine_steps: Lloyd steps after the random initialisation, default 1 ("one small
            refinement iteration").
        mapping: ``"fixed"`` (slot indices) or ``"published"`` (positions in the candidate list
            returned as slot indices: Aura's bug).
    """

    n_centroids: int = 256
    rebuild_every: int = 512
    n_probe: int = 8
    refine_steps: int = 1
    mapping: Mapping = "fixed"

    def __post_init__(self) -> None:
        check_int("n_centroids", self.n_centroids, low=1)
        check_int("rebuild_every", self.rebuild_every, low=1)
        check_int("n_probe", self.n_probe, low=1)
        check_int("refine_steps", self.refine_steps, low=0)
        if self.n_probe > self.n_centroids:
            raise ValueError(f"n_probe ({self.n_probe}) must be ≤ n_centroids ({self.n_centroids})")
        if self.mapping not in _MAPPINGS:
            raise ValueError(f"mapping must be one of {_MAPPINGS}, got {self.mapping!r}")


class CentroidIndex(NamedTuple):
    """State of a centroid index that follows an :class:`~neuro_memory.episodic.EpisodicState`.

    Attributes:
        centroids: ``[K, Dk]`` in the raw key space (zeros before the first rebuild).
        counts: ``[K]`` members per centroid (as a float, as published).
        assign: ``[N]`` long, the centroid of each slot; ``−1`` for slots stored before the
            first rebuild or empty.
        count: number of memories indexed (the store's ``count`` it has seen).
        ready: whether a rebuild has happened.
        members: ``[count]`` long, the indexed slots grouped by centroid, ascending within one
            (empty before the first rebuild): the inverted lists, so that a query touches only
            its candidates.
        bounds: ``[K + 1]`` long, centroid ``j``'s members are ``members[bounds[j]:bounds[j+1]]``.
    """

    centroids: torch.Tensor
    counts: torch.Tensor
    assign: torch.Tensor
    # Shadows tuple.count (unused here), like EpisodicState.count.
    count: int  # type: ignore[assignment]
    ready: bool
    members: torch.Tensor
    bounds: torch.Tensor


def init_centroid_index(params: CentroidParams, state: EpisodicState) -> CentroidIndex:
    """An empty index for ``state``'s capacity and key size (nothing indexed yet)."""
    if not isinstance(params, CentroidParams):
        raise ValueError(f"params must be a CentroidParams, got {type(params).__name__}")
    if not isinstance(state, EpisodicState):
        raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
    keys = state.keys
    return CentroidIndex(
        centroids=torch.zeros(
            params.n_centroids, keys.shape[1], dtype=keys.dtype, device=keys.device
        ),
        counts=torch.zeros(params.n_centroids, dtype=keys.dtype, device=keys.device),
        assign=torch.full((state.capacity,), -1, dtype=torch.long, device=keys.device),
        count=0,
        ready=False,
        members=torch.zeros(0, dtype=torch.long, device=keys.device),
        bounds=torch.zeros(params.n_centroids + 1, dtype=torch.long, device=keys.device),
    )


def centroid_rebuild(
    keys: torch.Tensor, params: CentroidParams, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Aura's ``rebuild_centroids`` over ``keys [n, Dk]`` (the equations in the module docstring).

    The initial centroids are ``keys[torch.randperm(n, generator=generator)[:K]]`` with
    ``K = min(n_centroids, n)``; rows ``K .. n_centroids − 1`` stay zero (as published).

    Returns:
        ``(centroids [n_centroids, Dk], counts [n_centroids], assign [n] long)``.
    """
    check_tensor("keys", keys, ndim=2, floating=True, finite=True)
    n = int(keys.shape[0])
    if n < 1:
        raise ValueError("keys must hold at least one row to build centroids")
    k = min(params.n_centroids, n)
    perm = torch.randperm(n, generator=generator, device="cpu")[:k].to(keys.device)
    cent = keys[perm].clone()
    for _ in range(params.refine_steps):
        assign = torch.cdist(keys, cent).argmin(dim=1)
        sums = torch.zeros_like(cent).index_add_(0, assign, keys)
        sizes = torch.bincount(assign, minlength=k).to(keys.dtype)
        filled = sizes > 0
        cent[filled] = sums[filled] / sizes[filled, None]
    centroids = torch.zeros(params.n_centroids, keys.shape[1], dtype=keys.dtype, device=keys.device)
    centroids[:k] = cent
    assign = torch.cdist(keys, cent).argmin(dim=1)
    counts = torch.zeros(params.n_centroids, dtype=keys.dtype, device=keys.device)
    counts[:k] = torch.bincount(assign, minlength=k).to(keys.dtype)
    return centroids, counts, assign


def centroid_insert(
    index: CentroidIndex,
    state: EpisodicState,
    params: CentroidParams,
    *,
    generator: torch.Generator | None = None,
) -> CentroidIndex:
    """Index the memories written to ``state`` since ``index.count``, as Aura's inserts would.

    For each new memory in write order: the online update (if the index is built), then a
    rebuild over all stored keys when the running count is a multiple of ``rebuild_every`` and
    exceeds ``n_centroids``. A rebuild that a later rebuild of this call overwrites is skipped.

    Args:
        index: the index (not modified).
        state: the store after the writes; it must not have overwritten a slot
            (``state.count ≤ capacity``: Aura rebuilds over ``memory_features[:memory_count]``).
        params: index hyper-parameters.
        generator: random source of the rebuild's initial centroids.

    Raises:
        ValueError: a store that wrapped around, or one with fewer memories than indexed.
    """
    if not isinstance(index, CentroidIndex):
        raise ValueError(f"index must be a CentroidIndex, got {type(index).__name__}")
    if not isinstance(state, EpisodicState):
        raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
    if state.count > state.capacity:
        raise ValueError(
            f"state has overwritten slots (count {state.count} > capacity {state.capacity}); "
            "the centroid index follows a store that has not wrapped around"
        )
    if state.count < index.count or index.assign.shape[0] != state.capacity:
        raise ValueError(
            f"index (count {index.count}, {index.assign.shape[0]} slots) does not follow state "
            f"(count {state.count}, {state.capacity} slots)"
        )
    c0, c1 = index.count, state.count
    every, k = params.rebuild_every, params.n_centroids
    last = (c1 // every) * every
    centroids, counts, assign = index.centroids, index.counts, index.assign.clone()
    ready = index.ready
    start = c0
    if last > c0 and last > k:
        centroids, counts, head = centroid_rebuild(state.keys[:last], params, generator=generator)
        assign[:last] = head
        ready, start = True, last
    if ready and start < c1:
        centroids, counts = centroids.clone(), counts.clone()
        for slot in range(start, c1):
            x = state.keys[slot]
            j = int(torch.linalg.vector_norm(centroids - x, dim=1).argmin())
            counts[j] += 1
            eta = 1.0 / counts[j].clamp(min=1.0)
            centroids[j] = (1 - eta) * centroids[j] + eta * x
            assign[slot] = j
    members = index.members
    bounds = index.bounds
    if ready:
        members = torch.sort(assign[:c1], stable=True).indices
        sizes = torch.bincount(assign[:c1], minlength=k)
        bounds = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])
    return CentroidIndex(centroids, counts, assign, c1, ready, members, bounds)


def centroid_read(
    state: EpisodicState,
    index: CentroidIndex,
    queries: torch.Tensor,
    k: int,
    params: EpisodicParams,
    cparams: CentroidParams,
) -> Retrieved:
    """Top-``k`` memories per query through the centroid index (module docstring).

    Args:
        state: the store ``index`` follows (same ``count``).
        index: from :func:`centroid_insert`.
        queries: ``[Q, Dk]`` finite.
        k: memories per query, ``1 ≤ k ≤ state.size``.
        params: the store's hyper-parameters (``eps``).
        cparams: the index's; ``cparams.mapping`` selects the fixed or the published mapping.

    Returns:
        :class:`~neuro_memory.episodic.Retrieved` ``(values [Q, k, Dv], scores [Q, k],
        indices [Q, k])``, best first. Ranks beyond a row's candidates have index ``−1``, score
        ``−inf`` and zero values. With ``mapping="published"`` the indices (and values) are those
        of the slots numbered like the winners' positions in the candidate list.

    Raises:
        ValueError: an index that does not follow ``state``, bad queries or ``k``.
    """
    if not isinstance(index, CentroidIndex):
        raise ValueError(f"index must be a CentroidIndex, got {type(index).__name__}")
    if not isinstance(state, EpisodicState):
        raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
    if index.count != state.count or index.assign.shape[0] != state.capacity:
        raise ValueError(
            f"index has seen {index.count} memories but state holds {state.count}; "
            "call centroid_insert first"
        )
    size = state.size
    dk = state.keys.shape[1]
    check_tensor("queries", queries, shape=(None, dk), floating=True, finite=True)
    _check_k(k, size)
    if not index.ready or size <= cparams.n_centroids:
        return read(state, queries, k, params)
    q = queries.to(state.keys.dtype)
    n_c = min(cparams.n_centroids, size)
    probe = (
        torch.cdist(q, index.centroids[:n_c]).topk(min(cparams.n_probe, n_c), largest=False).indices
    )
    starts = index.bounds[:-1]
    lens = (index.bounds[1:] - starts)[probe]  # [Q, P]
    totals = lens.sum(1)
    qn = F.normalize(q, dim=-1, eps=params.eps)
    n_q = q.shape[0]
    scores = torch.full((n_q, k), -math.inf, dtype=q.dtype, device=q.device)
    indices = torch.full((n_q, k), -1, dtype=torch.long, device=q.device)
    width = max(int(totals.max()), 1)
    step = max(1, MAX_GATHER // (width * dk))
    for lo in range(0, n_q, step):
        hi = min(lo + step, n_q)
        cand = _candidates(probe[lo:hi], lens[lo:hi], totals[lo:hi], starts, index.members, size)
        safe = cand.clamp_min(0)
        # Only the candidates' keys are read and normalised (as published).
        kn = F.normalize(state.keys[safe], dim=-1, eps=params.eps)
        s = torch.einsum("qd,qcd->qc", qn[lo:hi], kn) * state.strength[safe]
        s = s.masked_fill(cand < 0, -math.inf)
        kk = min(k, s.shape[1])
        top = torch.topk(s, kk, dim=1)
        found = top.values > -math.inf
        if cparams.mapping == "published":
            # Aura's bug: positions within the candidate list taken as bank indices.
            idx = top.indices
        else:
            idx = cand.gather(1, top.indices)
        scores[lo:hi, :kk] = top.values
        indices[lo:hi, :kk] = torch.where(found, idx, -1)
    empty = totals == 0
    if bool(empty.any()):
        exact = read(state, queries[empty], k, params)
        scores[empty], indices[empty] = exact.scores, exact.indices
    values = state.values[indices.clamp_min(0)] * (indices >= 0).unsqueeze(-1)
    return Retrieved(values, scores, indices)


def _candidates(
    probe: torch.Tensor,
    lens: torch.Tensor,
    totals: torch.Tensor,
    starts: torch.Tensor,
    order: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """``[Q, C]`` candidate slots per query in ascending slot order, ``−1`` padding at the end."""
    width = max(int(totals.max()), 1)
    cum = torch.cumsum(lens, 1)  # [Q, P]
    j = torch.arange(width, device=probe.device).repeat(probe.shape[0], 1)
    block = torch.searchsorted(cum, j, right=True).clamp_max(probe.shape[1] - 1)
    offset = j - (cum - lens).gather(1, block)
    pos = starts[probe.gather(1, block)] + offset
    valid = j < totals[:, None]
    slots = torch.where(valid, order[pos.clamp(0, size - 1)], size)
    slots = torch.sort(slots, dim=1).values
    return torch.where(slots < size, slots, -1)
