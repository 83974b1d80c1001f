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
  (``benchmarks/scripts/memory_targets.py``), but only a little: the matmul dominates.
* ``"mixed"``: bf16 scores as a certified filter, exact fp32 scores for the survivors. The
  first ``FIRST_TILE`` keys are scored exactly; they give each query a running lower bound
  ``L`` on its k-th best score. Every later key tile is scored as ``s̃ = bf16(q) · bf16(k)``
  (fp32 accumulation, bf16 output) and a key survives iff ``s̃ ≥ L − δ`` with

      δ = (4u + D·2⁻²²) · ‖q‖ · max_j ‖k_j‖,      u = 2⁻⁹ (bf16 unit roundoff)

  which bounds ``|s̃ − q·k|`` (input rounding ``≤ (2u + u²)‖q‖‖k‖``, fp32 accumulation
  ``≤ D·2⁻²⁴(1 + …)‖q‖‖k‖``, output rounding ``≤ u|s̃|``; both extra terms doubled). A true
  top-k key has ``q·k ≥ L``, so it always survives; survivors are re-scored exactly and merged
  into the running top-k, which raises ``L``. Exact under that rounding model (fp32
  accumulation, as oneDNN/MKL do); tested against brute force. Worth it where bf16 matmuls are
  native (``avx512_bf16``/``amx_bf16`` CPUs): about 3× fewer cycles per multiply-add than fp32.
* ``"faiss"``: ``faiss.IndexFlatIP`` (extra ``neuro-memory[faiss]``), exact, CPU only. For stores
  beyond what one exact pass affords, build an approximate IVF index of an episodic store once
  with :class:`neuro_memory.FaissIndex` and query it many times.

``"auto"`` takes ``"reference"`` while the score matrix has at most :data:`BLOCK_THRESHOLD`
elements (one small matmul is cheapest); above that, ``"mixed"`` for float32 CPU tensors
without gradients on a CPU with native bf16 and at least ``2 · FIRST_TILE`` keys, else
``"blocked"``. FAISS is never picked implicitly:
it is an optional dependency and computes in float32 on the CPU.

Ties: the backends may order exactly equal scores differently; the set of scores returned is
identical (``"mixed"`` and ``"faiss"`` re-score with another summation order: last-bit
differences).
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch

from neuro_core.validation import check_int, check_tensor

Backend = Literal["auto", "reference", "blocked", "mixed", "faiss"]
_BACKENDS: tuple[str, ...] = ("auto", "reference", "blocked", "mixed", "faiss")

#: ``"auto"`` switches to ``"blocked"`` above this many score elements (``M · N``), 2**22 = 16 MiB
#: of fp32: around the size of a CPU's last-level cache share, below which one matmul wins.
BLOCK_THRESHOLD = 2**22
#: Default tile of the blocked path: 64 queries × 65 536 keys (16 MiB fp32); the fastest of the
#: tiles tried at N = 262 144, D = 64, k = 32 on the project's CPU (one thread).
QUERY_BLOCK = 64
KEY_BLOCK = 65_536


#: Keys scored exactly by ``"mixed"`` before filtering (gives the first lower bound ``L``).
FIRST_TILE = 16_384
#: Key tile of the bf16 filter of ``"mixed"`` (512 queries × 16 384 keys of bf16 = 16 MiB).
MIXED_KEY_BLOCK = 16_384
#: Queries per call of the ``"mixed"`` inner loop (its tiles: 1024 × 16 384 bf16 = 32 MiB).
MIXED_QUERY_BLOCK = 1024
_BF16_UNIT = 2.0**-9


def _native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (Linux ``/proc/cpuinfo`` flags)."""
    global _NATIVE_BF16
    if _NATIVE_BF16 is None:
        try:
            with open("/proc/cpuinfo") as f:
                flags = next((line for line in f if line.startswith("flags")), "")
            _NATIVE_BF16 = "avx512_bf16" in flags or "amx_bf16" in flags
        except OSError:
            _NATIVE_BF16 = False
    return _NATIVE_BF16


_NATIVE_BF16: bool | None = None


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


def knn_mixed(
    keys: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    *,
    first_tile: int = FIRST_TILE,
    key_block: int = MIXED_KEY_BLOCK,
    query_block: int = MIXED_QUERY_BLOCK,
) -> KnnResult:
    """Exact top-k with a certified bf16 filter (see ``"mixed"`` in the module docstring)."""
    if queries.shape[0] > query_block:
        parts = [
            knn_mixed(
                keys, queries[i : i + query_block], k, first_tile=first_tile, key_block=key_block
            )
            for i in range(0, queries.shape[0], query_block)
        ]
        return KnnResult(
            torch.cat([p.scores for p in parts]), torch.cat([p.indices for p in parts])
        )
    n, d = keys.shape
    m = queries.shape[0]
    first = min(max(first_tile, k), n)
    top = torch.topk(queries @ keys[:first].T, k, dim=-1)
    best_v, best_i = top.values, top.indices
    if first == n or m == 0:
        return KnnResult(best_v, best_i)
    coef = 4 * _BF16_UNIT + d * 2.0**-22
    delta = coef * queries.norm(dim=-1) * keys.norm(dim=-1).max()
    q16, k16 = queries.to(torch.bfloat16), keys.to(torch.bfloat16)
    rows = torch.arange(m, device=queries.device)
    for start in range(first, n, key_block):
        cut = best_v[:, -1] - delta
        # Round the cut down before casting, so that s̃ ≥ cut in bf16 implies s̃ ≥ L − δ.
        cut16 = (cut - cut.abs() * 2.0**-7).to(torch.bfloat16).unsqueeze(1)
        hit = (q16 @ k16[start : start + key_block].T >= cut16).nonzero()
        if hit.numel() == 0:
            continue
        qi, kj = hit[:, 0], hit[:, 1] + start  # row-major: sorted by query
        exact = (queries[qi] * keys[kj]).sum(-1)
        counts = torch.bincount(qi, minlength=m)
        pos = torch.arange(qi.numel(), device=qi.device) - (torch.cumsum(counts, 0) - counts)[qi]
        width = int(counts.max())
        cand_v = torch.full((m, width), -math.inf, dtype=queries.dtype, device=queries.device)
        cand_i = torch.zeros((m, width), dtype=torch.long, device=queries.device)
        cand_v[qi, pos] = exact
        cand_i[qi, pos] = kj
        merged = torch.topk(torch.cat([best_v, cand_v], dim=1), k, dim=-1)
        best_i = torch.cat([best_i, cand_i], dim=1)[rows[:, None], merged.indices]
        best_v = merged.values
    return KnnResult(best_v, best_i)


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
        backend: ``"auto"``, ``"reference"``, ``"blocked"``, ``"mixed"`` or ``"faiss"``.

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
    check_int("k", k, high=n)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        if queries.shape[0] * n <= BLOCK_THRESHOLD:
            backend = "reference"
        elif (
            keys.dtype == torch.float32
            and keys.device.type == "cpu"
            and n >= 2 * FIRST_TILE
            and not (keys.requires_grad or queries.requires_grad)
            and _native_bf16()
        ):
            backend = "mixed"
        else:
            backend = "blocked"
    if backend == "reference":
        return knn_reference(keys, queries, k)
    if backend == "blocked":
        return knn_blocked(keys, queries, k)
    if backend == "mixed":
        return knn_mixed(keys, queries, k)
    return knn_faiss(keys, queries, k)
