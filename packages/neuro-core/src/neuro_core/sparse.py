"""Sparse connectivity: the one CSR builder of the neuro-* packages.

Synapses are stored in CSR form with rows = postsynaptic neurons and columns = presynaptic
neurons (``neuro_plasticity.topology.CSR``, ``neuro_spiking.network.Projection``); the same
builder with the roles swapped gives the presynaptic-major (CSC) index an event-driven
simulator walks when a presynaptic neuron spikes.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np
import torch

from neuro_core.validation import check_int, check_tensor

_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class CSRIndices(NamedTuple):
    """Index arrays of a CSR matrix built from an edge list (see :func:`csr_from_edges`).

    Attributes:
        crow_indices: ``[n_rows + 1]`` int64 row pointers; row ``i`` holds entries
            ``crow_indices[i]:crow_indices[i + 1]``.
        col_indices: ``[nnz]`` int64 column of every entry, row by row.
        order: ``[nnz]`` int64 permutation from edge-list order to CSR order: entry ``k`` of the
            CSR is edge ``order[k]``, so per-edge values map with ``values[order]``.
    """

    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    order: torch.Tensor


def _check_range(name: str, index: torch.Tensor, bound: int, bound_name: str) -> None:
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= bound):
        raise ValueError(f"{name} must lie in [0, {bound_name}={bound})")


def csr_from_edges(
    post: torch.Tensor, pre: torch.Tensor, n_post: int, *, n_pre: int | None = None
) -> CSRIndices:
    """CSR index arrays (rows = ``post``, columns = ``pre``) of the edges ``pre[e] → post[e]``.

    With ``order`` the stable argsort of ``post`` (edges of one row keep their input order)::

        col_indices = pre[order]
        crow_indices[i] = #{e : post[e] < i}        for i = 0 … n_post

    Args:
        post: ``[nnz]`` integer row (postsynaptic) index of every edge, in ``[0, n_post)``.
        pre: ``[nnz]`` integer column (presynaptic) index of every edge, on ``post``'s device.
        n_post: number of rows (≥ 0); empty rows are allowed.
        n_pre: number of columns; when given, ``pre`` must lie in ``[0, n_pre)``.

    Returns:
        :class:`CSRIndices` ``(crow_indices, col_indices, order)``, int64 on ``post``'s device.

    Raises:
        ValueError: naming the argument: not 1-D integer tensors, different lengths or devices,
            ``n_post``/``n_pre`` not an int ≥ 0, or an index out of range.
    """
    check_tensor("post", post, ndim=1, dtype=_INDEX_DTYPES)
    check_tensor("pre", pre, ndim=1, dtype=_INDEX_DTYPES, device=post.device)
    if pre.numel() != post.numel():
        raise ValueError(
            f"pre and post must have the same length, got {pre.numel()} and {post.numel()}"
        )
    n_rows = check_int("n_post", n_post, low=0)
    _check_range("post", post, n_rows, "n_post")
    if n_pre is not None:
        _check_range("pre", pre, check_int("n_pre", n_pre, low=0), "n_pre")
    post = post.long()
    order = torch.argsort(post, stable=True)
    counts = torch.bincount(post, minlength=n_rows)
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return CSRIndices(crow, pre.long()[order], order)


Index = TypeVar("Index", np.ndarray, torch.Tensor)


def gather_ranges(ptr: Index, rows: Index) -> Index:
    """The entries of the CSR rows ``rows``: the concatenation of ``arange(ptr[r], ptr[r + 1])``
    for ``r`` in ``rows``, in that order, without a Python loop (numpy arrays or torch tensors;
    the result is of the same kind). With ``n_r`` the row lengths and ``E_r`` their cumulative
    sum, entry ``m`` of row ``r``'s part is ``m + ptr[r] − (E_r − n_r)`` offset by its position.
    This is how an event-driven rule finds the synapses of the neurons that spiked."""
    starts = ptr[rows]
    counts = ptr[rows + 1] - starts
    if isinstance(ptr, torch.Tensor):
        ends_t = counts.cumsum(0)
        total = int(ends_t[-1]) if ends_t.numel() else 0
        base = torch.repeat_interleave(starts - (ends_t - counts), counts, output_size=total)
        return torch.arange(total, device=ptr.device) + base  # type: ignore[return-value]
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return np.arange(total) + np.repeat(starts - (ends - counts), counts)  # type: ignore[return-value]


__all__ = ["CSRIndices", "csr_from_edges", "gather_ranges"]
