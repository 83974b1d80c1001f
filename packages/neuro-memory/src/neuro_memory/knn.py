"""Exact k-nearest-neighbour search by inner product, with one dispatcher over three backends.

For keys ``K [N, D]`` and queries ``Q [M, D]`` the result is, for every query ``q_i``,

    S_ij = q_i · k_j,        I_i = top-k_j S_ij   (descending),   V_i = S_i[I_i]

(cosine search = inner product of L2-normalised rows; pass normalised tensors).

Backends (``backend=``):

* ``"reference"``: ``torch.topk(Q @ K.T, k)``, the spec. It materialises the whole ``[M, N]``
  score matrix (512 × 262 144 fp32 = 512 MiB).
* ``"blocked"``: the same scores tile by tile (``query_block × key_block``); each tile keeps its
  own top-k, and the candidates of all key tiles are merged by a second top-k. Exact: every
  global top-k entry is in the top-k of its own tile. Never holds more than one tile, which keeps
  the top-k pass in cache; measured faster than the reference on CPU at N = 262 144
  (``benchmarks/scripts/memory_targets.py``).
* ``"faiss"``: ``faiss.IndexFlatIP`` (extra ``neuro-memory[faiss]``), exact, CPU only. For stores
  beyond what one exact pass affords, build an approximate IVF index of an episodic store once
  with :class:`neuro_memory.FaissIndex` and query it many times.

``"auto"`` takes ``"blocked"`` when the score matrix would exceed :data:`BLOCK_THRESHOLD`
elements, else ``"reference"`` (one small matmul is cheapest). FAISS is never picked implicitly:
it is an optional dependency and computes in float32 on the CPU.

Ties: the reference and the blocked path may order exactly equal scores differently; the set of
scores returned is identical.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch

from neuro_core.validation import check_tensor

Backend = Literal["auto", "reference", "blocked", "faiss"]
_BACKENDS: tuple[str, ...] = ("auto", "reference", "blocked", "faiss")

#: ``"auto"`` switches to ``"blocked"`` above this many score elements (``M · N``), 2**22 = 16 MiB
#: of fp32: around the size of a CPU's last-level cache share, below which one matmul wins.
BLOCK_THRESHOLD = 2**22
#: Default tile of the blocked path: 64 queries × 65 536 keys (16 MiB fp32); the fastest of the
#: tiles tried at N = 262 144, D = 64, k = 32 on the project's CPU (one thread).
QUERY_BLOCK = 64
KEY_BLOCK = 65_536


class KnnResult(NamedTuple):
    """``scores [M, k]`` (descending) and ``indices [M, k]`` (long, rows of the keys)."""

    scores: torch.Tensor
    indices: torch.Tensor


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "backend='faiss' needs FAISS: pip install 'neuro-memory[faiss]' "
            "(or use backend='blocked', exact and dependency-free)"
        ) from err
    return faiss


def knn_reference(keys: torch.Tensor, queries: torch.Tensor, k: int) -> KnnResult:
    """The spec: ``torch.topk(queries @ keys.T, k)``."""
    top = torch.topk(queries @ keys.T, k, dim=-1)
    return KnnResult(top.values, top.indices)


def knn_blocked(
    keys: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    *,
    query_block: int = QUERY_BLOCK,
    key_block: int = KEY_BLOCK,
) -> KnnResult:
    """Exact top-k by tiles of ``query_block × key_block`` scores, merged by a second top-k."""
    n = keys.shape[0]
    key_block = max(key_block, k)
    out_v, out_i = [], []
    for lo in range(0, queries.shape[0], query_block):
        q = queries[lo : lo + query_block]
        vals, idx = [], []
        for start in range(0, n, key_block):
            s = q @ keys[start : start + key_block].T
            top = torch.topk(s, min(k, s.shape[1]), dim=-1)
            vals.append(top.values)
            idx.append(top.indices + start)
        if len(vals) == 1:
            out_v.append(vals[0])
            out_i.append(idx[0])
            continue
        v, i = torch.cat(vals, dim=1), torch.cat(idx, dim=1)
        top = torch.topk(v, k, dim=-1)
        out_v.append(top.values)
        out_i.append(i.gather(1, top.indices))
    if not out_v:
        empty = queries.new_empty((0, k))
        return KnnResult(empty, empty.long())
    return KnnResult(torch.cat(out_v), torch.cat(out_i))


def knn_faiss(keys: torch.Tensor, queries: torch.Tensor, k: int) -> KnnResult:
    """Exact top-k with ``faiss.IndexFlatIP`` (float32, CPU); results on the queries' device."""
    faiss = _faiss()
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys.detach().float().cpu().contiguous().numpy())
    v, i = index.search(queries.detach().float().cpu().contiguous().numpy(), k)
    dev = queries.device
    return KnnResult(
        torch.from_numpy(v).to(device=dev, dtype=queries.dtype),
        torch.from_numpy(i).to(device=dev, dtype=torch.long),
    )


def knn_search(
    keys: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    *,
    backend: Backend = "auto",
) -> KnnResult:
    """Exact top-``k`` keys by inner product for every query (see the module docstring).

    Args:
        keys: ``[N, D]`` floating point, finite.
        queries: ``[M, D]``, same dtype and device as ``keys``.
        k: ``1 ≤ k ≤ N``.
        backend: ``"auto"``, ``"reference"``, ``"blocked"`` or ``"faiss"``.

    Returns:
        :class:`KnnResult` ``(scores [M, k], indices [M, k])``, best first. The reference and
        blocked paths are differentiable w.r.t. both inputs (the choice of the top k is not).

    Raises:
        ValueError: naming the argument (shape, dtype, device, non-finite, ``k``, ``backend``).
        ImportError: ``backend="faiss"`` without FAISS installed.
    """
    check_tensor("keys", keys, ndim=2, floating=True, finite=True)
    check_tensor(
        "queries",
        queries,
        shape=(None, keys.shape[1]),
        dtype=keys.dtype,
        device=keys.device,
        finite=True,
    )
    n = keys.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}] (the number of keys), got {k!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "blocked" if queries.shape[0] * n > BLOCK_THRESHOLD else "reference"
    if backend == "reference":
        return knn_reference(keys, queries, k)
    if backend == "blocked":
        return knn_blocked(keys, queries, k)
    return knn_faiss(keys, queries, k)
