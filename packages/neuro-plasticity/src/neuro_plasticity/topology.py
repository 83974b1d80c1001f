"""Connectivity layouts on which every plasticity rule runs: dense, CSR sparse, and local.

A rule never indexes a weight matrix itself. It builds its weight change out of three primitives
of a :class:`Topology`, so one rule definition runs on every layout (no rule × topology copies):

* ``outer(post, pre)``: the batch-mean Hebbian product ``mean_b post[b, i] · pre[b, j]`` for
  every synapse ``(i, j)``;
* ``at_post(v)`` / ``at_pre(v)``: a per-neuron vector ``[n_post]`` / ``[n_pre]`` broadcast to
  every synapse.

The weight tensor is laid out by the topology: ``[n_post, n_pre]`` for :class:`Dense`, the
``[nnz]`` value array of a CSR matrix (rows = post, columns = pre) for :class:`CSR`. Elementwise
arithmetic on weights is then the same code for both.

Weight-shared (convolutional) connectivity is not a topology here: a shared weight has no single
post-synaptic neuron, so per-neuron factors such as a BCM threshold have no place to go. Local
receptive fields without sharing are covered by :func:`local_csr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuro_core.sparse import csr_from_edges, gather_ranges
from neuro_core.validation import check_tensor

#: A CSR Hebbian product with batch 1 is computed event-driven (only the synapses of active
#: neurons are touched) when at most this fraction of the post (or pre) neurons is nonzero.
EVENT_FRACTION = 0.05


class Topology:
    """Base class; see the module docstring for the three primitives."""

    n_pre: int
    n_post: int
    #: False where a rule needs a matrix product over the full ``[post, pre]`` matrix.
    supports_matmul: bool = False

    def outer(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def at_post(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def at_pre(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def check_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Raise ``ValueError`` naming ``weight`` if it does not have this layout."""
        return check_tensor("weight", weight, shape=self.weight_shape(), floating=True)

    def dense(self, values: torch.Tensor) -> torch.Tensor:
        """``[n_post, n_pre]`` dense copy of a tensor in this layout (zeros where no synapse)."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Dense(Topology):
    """All-to-all connectivity; weights are ``[n_post, n_pre]``."""

    n_post: int
    n_pre: int
    supports_matmul: bool = True

    def outer(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return post.transpose(0, 1) @ pre / post.shape[0]

    def at_post(self, v: torch.Tensor) -> torch.Tensor:
        return v[:, None]

    def at_pre(self, v: torch.Tensor) -> torch.Tensor:
        return v[None, :]

    def weight_shape(self) -> tuple[int, ...]:
        return (self.n_post, self.n_pre)

    def dense(self, values: torch.Tensor) -> torch.Tensor:
        return values


@dataclass(frozen=True, eq=False)
class CSR(Topology):
    """Sparse connectivity in CSR form (rows = post-synaptic, columns = pre-synaptic).

    Weights are the ``[nnz]`` value array aligned with ``col_indices``.

    Attributes:
        crow_indices: ``[n_post + 1]`` int64 row pointers.
        col_indices: ``[nnz]`` int64 pre-synaptic index of every synapse.
        n_pre: number of pre-synaptic neurons.
    """

    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    n_pre: int
    supports_matmul: bool = False

    def __post_init__(self) -> None:
        check_tensor("crow_indices", self.crow_indices, ndim=1, dtype=torch.int64)
        check_tensor("col_indices", self.col_indices, ndim=1, dtype=torch.int64)
        if self.crow_indices.numel() < 1 or int(self.crow_indices[-1]) != self.col_indices.numel():
            raise ValueError("crow_indices must end with nnz = len(col_indices)")
        if self.col_indices.numel() and (
            int(self.col_indices.min()) < 0 or int(self.col_indices.max()) >= self.n_pre
        ):
            raise ValueError(f"col_indices must lie in [0, n_pre={self.n_pre})")
        counts = self.crow_indices.diff()
        if bool((counts < 0).any()):
            raise ValueError("crow_indices must be non-decreasing")
        rows = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
        object.__setattr__(self, "row_indices", rows)
        object.__setattr__(self, "n_post", counts.numel())

    @classmethod
    def from_dense_mask(cls, mask: torch.Tensor) -> CSR:
        """CSR topology of the nonzero entries of a ``[n_post, n_pre]`` mask."""
        check_tensor("mask", mask, ndim=2)
        rows, cols = mask.nonzero(as_tuple=True)
        crow, col, _ = csr_from_edges(rows, cols, int(mask.shape[0]))
        return cls(crow, col, int(mask.shape[1]))

    @property
    def nnz(self) -> int:
        return int(self.col_indices.numel())

    def outer(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        rows: torch.Tensor = self.row_indices  # type: ignore[attr-defined]
        if post.shape[0] == 1:
            # event-driven path: with few active neurons on one side, touch only their synapses
            a, b = post[0], pre[0]
            active_post = torch.count_nonzero(a)
            if int(active_post) <= EVENT_FRACTION * self.n_post:
                return self._from_active_rows(a, b)
            if int(torch.count_nonzero(b)) <= EVENT_FRACTION * self.n_pre:
                return self._from_active_cols(a, b)
            return a.index_select(0, rows) * b.index_select(0, self.col_indices)
        return (post.index_select(1, rows) * pre.index_select(1, self.col_indices)).mean(0)

    def _from_active_rows(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = a.new_zeros(self.nnz)
        active = a.nonzero().flatten()
        if active.numel():
            idx = gather_ranges(self.crow_indices, active)
            rows: torch.Tensor = self.row_indices  # type: ignore[attr-defined]
            out[idx] = a[rows[idx]] * b[self.col_indices[idx]]
        return out

    def _from_active_cols(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = a.new_zeros(self.nnz)
        active = b.nonzero().flatten()
        if active.numel():
            if not hasattr(self, "_csc"):
                # pre-major (CSC) index: the same builder with rows and columns swapped
                ptr, _, order = csr_from_edges(self.col_indices, self.row_indices, self.n_pre)  # type: ignore[attr-defined]
                object.__setattr__(self, "_csc", (order, ptr))
            order, ptr = self._csc  # type: ignore[attr-defined]
            idx = order[gather_ranges(ptr, active)]
            rows: torch.Tensor = self.row_indices  # type: ignore[attr-defined]
            out[idx] = a[rows[idx]] * b[self.col_indices[idx]]
        return out

    def at_post(self, v: torch.Tensor) -> torch.Tensor:
        return v[self.row_indices]  # type: ignore[attr-defined]

    def at_pre(self, v: torch.Tensor) -> torch.Tensor:
        return v[self.col_indices]

    def weight_shape(self) -> tuple[int, ...]:
        return (self.nnz,)

    def dense(self, values: torch.Tensor) -> torch.Tensor:
        out = values.new_zeros(self.n_post, self.n_pre)
        out[self.row_indices, self.col_indices] = values  # type: ignore[attr-defined]
        return out

    def to_sparse_csr(self, values: torch.Tensor) -> torch.Tensor:
        """``torch.sparse_csr_tensor`` with these indices and ``values`` (for ``W @ x``)."""
        return torch.sparse_csr_tensor(
            self.crow_indices, self.col_indices, values, size=(self.n_post, self.n_pre)
        )


def local_csr(n_pre: int, n_post: int, radius: int) -> CSR:
    """1-D local receptive fields: post ``i`` sees pre neurons within ``radius`` of its centre.

    Post neuron ``i`` is centred at pre position ``round(i · (n_pre − 1) / max(n_post − 1, 1))``;
    fields are clipped at the borders (no wrap-around, no weight sharing).
    """
    if n_pre < 1 or n_post < 1:
        raise ValueError(f"n_pre and n_post must be ≥ 1, got {n_pre}, {n_post}")
    if radius < 0:
        raise ValueError(f"radius must be ≥ 0, got {radius}")
    centres = torch.round(torch.arange(n_post) * (n_pre - 1) / max(n_post - 1, 1)).long()
    offsets = torch.arange(-radius, radius + 1)
    cols = centres[:, None] + offsets[None, :]
    mask = torch.zeros(n_post, n_pre, dtype=torch.bool)
    valid = (cols >= 0) & (cols < n_pre)
    mask[torch.arange(n_post)[:, None].expand_as(cols)[valid], cols[valid]] = True
    return CSR.from_dense_mask(mask)


__all__ = ["CSR", "Dense", "Topology", "local_csr"]
