"""A cognitive map: the exact k-nearest-neighbour graph of the stored memories, updated per insert.

Nodes are memory keys, L2-normalised, so similarity is the cosine. Each node ``i`` keeps its
``k`` most similar other nodes::

    N(i) = top-k_{j ≠ i} cos(x_i, x_j),      sim_i = the k cosines, descending

Inserting ``m`` new nodes into a map of ``n`` keeps this *exact* (equal to rebuilding the graph
from scratch) at cost ``O(m · n · D)`` instead of a rebuild's ``O(n² · D)``:

1. each new node's list is the top-k of its cosines to the ``n`` old and ``m − 1`` other new
   nodes (one blocked product);
2. an old node ``j`` can only gain a new node as neighbour, and only if ``max_i cos(x_new_i, x_j)``
   beats its current k-th similarity; just those rows are merged (``top-k`` of the old list and
   the ``m`` new cosines). With random data about ``m · k`` rows change.

Correct by induction: after step 1 and 2 every node's list is the top-k over all other nodes.
:func:`map_query` finds the nodes nearest to arbitrary queries (exact, via
:func:`neuro_memory.knn_search`); :func:`spread_activation` walks the graph for associative,
multi-hop recall::

    a⁰ = seed activation [n],    a^{h+1}_j = γ Σ_{i : j ∈ N(i)} w_ij a^h_i,    w_ij = relu(sim_ij)

returning ``Σ_{h=0..H} a^h``.

Source: Aura's design document lists "cognitive map construction is O(n²) in number of memories"
as an open issue (shared/seeds, Aura mission, §3 Memory Systems); its ``HippocampalFormation``
keeps no graph we could reuse, so the map above is ours. The cost claim is measured by
``benchmarks/scripts/memory_targets.py --map``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor
from neuro_memory.knn import _BACKENDS, Backend, KnnResult, knn_search

#: Largest ``[m, n]`` block of new-vs-old cosines one insert step builds (2**24 fp32 = 64 MiB);
#: larger inserts are split into consecutive sub-batches (same graph).
MAX_BLOCK = 2**24


@dataclass(frozen=True, kw_only=True)
class CognitiveMapParams:
    """Options of a cognitive map.

    Attributes:
        n_neighbors: ``k``, the out-degree. Default 16 (ours; a common kNN-graph degree).
        eps: lower bound on key norms when normalising (1e-8, as ``F.normalize`` elsewhere).
        backend: :func:`neuro_memory.knn_search` backend of :func:`map_query`.
    """

    n_neighbors: int = 16
    eps: float = 1e-8
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        k = self.n_neighbors
        check_int("n_neighbors", k)
        check_positive("eps", self.eps)
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")


class CognitiveMap(NamedTuple):
    """The graph over ``n`` nodes.

    Attributes:
        keys: ``[n, D]`` unit-norm node keys, in insertion order (node id = row).
        neighbors: ``[n, k]`` long node ids, most similar first; ``−1`` pads nodes with fewer than
            ``k`` others.
        similarity: ``[n, k]`` their cosines, descending; ``−inf`` at padding.
    """

    keys: torch.Tensor
    neighbors: torch.Tensor
    similarity: torch.Tensor

    @property
    def size(self) -> int:
        """Number of nodes ``n``."""
        return int(self.keys.shape[0])


def init_map(
    dim: int,
    params: CognitiveMapParams,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> CognitiveMap:
    """An empty map of ``dim``-dimensional keys."""
    check_int("dim", dim)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    k = params.n_neighbors
    return CognitiveMap(
        keys=torch.zeros(0, dim, device=device, dtype=dtype),
        neighbors=torch.zeros(0, k, device=device, dtype=torch.long),
        similarity=torch.zeros(0, k, device=device, dtype=dtype),
    )


def _check_map(graph: CognitiveMap, params: CognitiveMapParams) -> None:
    if not isinstance(graph, CognitiveMap):
        raise ValueError(f"graph must be a CognitiveMap, got {type(graph).__name__}")
    if graph.neighbors.shape[1] != params.n_neighbors:
        raise ValueError(
            f"params.n_neighbors is {params.n_neighbors} but graph has "
            f"{graph.neighbors.shape[1]} neighbours per node"
        )


def _insert_block(graph: CognitiveMap, x: torch.Tensor, k: int) -> CognitiveMap:
    n, m = graph.size, x.shape[0]
    keys, nbr, sim = graph.keys, graph.neighbors, graph.similarity
    neg = torch.tensor(-math.inf, dtype=x.dtype, device=x.device)
    s_old = x @ keys.T  # [m, n]
    s_new = (x @ x.T).fill_diagonal_(-math.inf)  # [m, m], no self-loops
    # 1. New nodes: top-k over old and other new nodes (ids ≥ n are the new ones), each part
    # reduced to its own top-k before the merge (no [m, n + m] copy).
    parts_v, parts_i = [], []
    if n:
        t_old = torch.topk(s_old, min(k, n), dim=1)
        parts_v.append(t_old.values)
        parts_i.append(t_old.indices)
    t_new = torch.topk(s_new, min(k, m), dim=1)
    parts_v.append(t_new.values)
    parts_i.append(t_new.indices + n)
    top = torch.topk(torch.cat(parts_v, dim=1), min(k, n + m), dim=1)
    top = type(top)((top.values, torch.cat(parts_i, dim=1).gather(1, top.indices)))
    new_sim = torch.full((m, k), -math.inf, dtype=x.dtype, device=x.device)
    new_nbr = torch.full((m, k), -1, dtype=torch.long, device=x.device)
    new_sim[:, : top.values.shape[1]] = top.values
    new_nbr[:, : top.indices.shape[1]] = top.indices
    new_nbr = torch.where(new_sim == neg, torch.full_like(new_nbr, -1), new_nbr)
    # 2. Old nodes: merge only rows whose k-th similarity some new node beats. The transposed
    # product is recomputed rather than gathered from s_old: row access stays contiguous.
    if n:
        s_t = keys @ x.T  # [n, m]
        rows = torch.nonzero(s_t.max(dim=1).values > sim[:, -1]).squeeze(1)
        if rows.numel():
            t_rows = torch.topk(s_t[rows], min(k, m), dim=1)
            merged = torch.topk(torch.cat([sim[rows], t_rows.values], dim=1), k, dim=1)
            merged_ids = torch.cat([nbr[rows], t_rows.indices + n], dim=1).gather(1, merged.indices)
            merged_ids = torch.where(merged.values == neg, -1, merged_ids)
            sim = sim.index_copy(0, rows, merged.values)
            nbr = nbr.index_copy(0, rows, merged_ids)
    return CognitiveMap(
        keys=torch.cat([keys, x]),
        neighbors=torch.cat([nbr, new_nbr]),
        similarity=torch.cat([sim, new_sim]),
    )


def map_insert(graph: CognitiveMap, keys: torch.Tensor, params: CognitiveMapParams) -> CognitiveMap:
    """Add ``M`` nodes and return the updated graph (``graph`` is not modified).

    The result equals the kNN graph rebuilt from scratch over all ``n + M`` keys (up to the order
    of exactly tied similarities). Cost ``O(M · n · D)`` time, plus ``O(n · (D + k))`` to copy
    the graph (the functions are pure): linear in the size of the map per inserted node.

    Args:
        graph: the map.
        keys: ``[M, D]`` finite, same dtype and device as the map; normalised here.
        params: options; ``n_neighbors`` must match the graph's.
    """
    _check_map(graph, params)
    d = graph.keys.shape[1]
    check_tensor(
        "keys",
        keys,
        shape=(None, d),
        dtype=graph.keys.dtype,
        device=graph.keys.device,
        finite=True,
    )
    x = F.normalize(keys.detach(), dim=-1, eps=params.eps)
    lo = 0
    while lo < x.shape[0]:
        step = max(1, MAX_BLOCK // max(graph.size, 1))
        graph = _insert_block(graph, x[lo : lo + step], params.n_neighbors)
        lo += step
    return graph


def map_query(
    graph: CognitiveMap, queries: torch.Tensor, k: int, params: CognitiveMapParams
) -> KnnResult:
    """The ``k`` nodes most similar (cosine) to each query: ``(scores [Q, k], indices [Q, k])``.

    Exact, ``O(Q · n · D)``, through :func:`neuro_memory.knn_search` with ``params.backend``.
    """
    _check_map(graph, params)
    check_tensor(
        "queries",
        queries,
        shape=(None, graph.keys.shape[1]),
        dtype=graph.keys.dtype,
        device=graph.keys.device,
        finite=True,
    )
    if graph.size == 0:
        raise ValueError("graph is empty: insert nodes before querying")
    q = F.normalize(queries, dim=-1, eps=params.eps)
    return knn_search(graph.keys, q, k, backend=params.backend)


def spread_activation(
    graph: CognitiveMap, activation: torch.Tensor, *, hops: int, gamma: float = 0.5
) -> torch.Tensor:
    """Associative recall: ``Σ_{h=0..H} a^h`` with ``a^{h+1}_j = γ Σ_{i: j ∈ N(i)} relu(sim_ij) a^h_i``.

    Args:
        graph: the map.
        activation: ``a⁰ [n]`` or ``[B, n]`` (e.g. one-hot seeds, or query similarities).
        hops: ``H ≥ 0``.
        gamma: ``γ`` in ``[0, 1]``, the attenuation per hop.

    Returns:
        Total activation, same shape as ``activation``. ``O(H · n · k)``: sparse, never ``n²``.
    """
    n = graph.size
    a = check_tensor("activation", activation, ndim=(1, 2), floating=True, finite=True)
    if a.shape[-1] != n:
        raise ValueError(f"activation must have last dim {n} (the graph size), got {a.shape}")
    check_int("hops", hops, low=0)
    check_in_range("gamma", gamma, 0.0, 1.0)
    valid = graph.neighbors >= 0
    w = torch.where(valid, graph.similarity.clamp_min(0), 0).to(a.dtype)  # [n, k]
    dst = graph.neighbors.clamp_min(0).reshape(-1)
    total, cur = a, a
    for _ in range(hops):
        # Edge i → j carries w_ij · a_i; scatter-add onto j.
        flow = (cur.unsqueeze(-1) * w).reshape(*cur.shape[:-1], -1)
        cur = gamma * torch.zeros_like(cur).index_add(-1, dst, flow)
        total = total + cur
    return total
