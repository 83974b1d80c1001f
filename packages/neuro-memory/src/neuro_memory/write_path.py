"""The write path a model calls: memories from hidden states, under a causal rule.

For hidden states ``h [B, T, C]`` and a stride ``s``, write ``m`` summarises the segment
``P_m = {m·s, …, min((m+1)·s, T) − 1}`` and is stamped with the segment's last position::

    pos_m = max P_m,      u_m = mean_{p ∈ P_m} h_p  (pooling="mean")  or  h_{pos_m}  ("last")
    key_m = W_k u_m,      value_m = W_v u_m,      strength_m = mean_{p ∈ P_m} ι_p  (ι = 1 if none)

**Causal rule.** A write uses only positions ``≤ pos_m`` (what the model has seen when it makes
it), and a read at position ``t`` may see write ``m`` only if ``pos_m < t``:

    visible[t, m] = pos_m < t                                             (:func:`visibility`)

so the output at ``t`` depends on inputs ``≤ t − 1`` through memory (and on ``x_t`` through its
own query). Memories that existed before the sequence (an :class:`~neuro_memory.EpisodicState`,
see :func:`writes_from_state`) carry ``pos = −1``: visible everywhere. The contract tests feed
the layers of :mod:`neuro_memory.injection` with writes made from their own input and check that
changing inputs after ``t`` changes no output at ``≤ t``.

Source: Aura's ``SNNRAGTransformer`` stores the mean final hidden state of the *whole* sequence
after the forward pass (reference-systems §3.2); used within a sequence that is a leak of the
future. ``stride = T`` with ``pooling="mean"`` is that write, stamped at ``T − 1``, so no
position of the same sequence can read it. After the sequence, the writes can be stored for later
sequences with :func:`neuro_memory.write` (``keys[b]``, ``values[b]``, ``strength[b]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_int, check_tensor
from neuro_memory.episodic import EpisodicState

Pooling = Literal["mean", "last"]


class MemoryWrites(NamedTuple):
    """A batch of memories with the positions that made them.

    Attributes:
        keys: ``[B, M, Dk]``.
        values: ``[B, M, Dv]``.
        positions: ``[B, M]`` long: the position after which each memory is readable (``−1``: a
            prior memory, readable everywhere).
        strength: ``[B, M]`` ≥ 0 (0 = never read).
    """

    keys: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    strength: torch.Tensor


def segment_positions(
    seq_len: int, stride: int, *, device: torch.device | None = None
) -> torch.Tensor:
    """``pos_m = min((m + 1)·s, T) − 1`` for ``m = 0 … ⌈T/s⌉ − 1``: ``[M]`` long."""
    for name, v in (("seq_len", seq_len), ("stride", stride)):
        check_int(name, v)
    ends = torch.arange(stride, seq_len + stride, stride, device=device)
    return ends.clamp_max(seq_len) - 1


def segment_pool(
    hidden: torch.Tensor, stride: int, pooling: Pooling = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool ``hidden [B, T, C]`` per segment: ``(u [B, M, C], positions [M])`` (see module doc)."""
    check_tensor("hidden", hidden, ndim=3, floating=True)
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
    b, t, c = hidden.shape
    pos = segment_positions(t, stride, device=hidden.device)
    if pooling == "last":
        return hidden[:, pos], pos
    # Mean per segment: pad to a multiple of s, sum, divide by each segment's true length.
    m = pos.numel()
    padded = hidden.new_zeros(b, m * stride, c)
    padded[:, :t] = hidden
    lengths = (pos - torch.arange(m, device=hidden.device) * stride + 1).to(hidden.dtype)
    return padded.reshape(b, m, stride, c).sum(2) / lengths[:, None], pos


def visibility(positions: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``visible[b, t, m] = positions[b, m] < t``: ``[B, T, M]`` bool."""
    check_tensor("positions", positions, ndim=2, dtype=torch.long)
    t = torch.arange(seq_len, device=positions.device)
    return positions[:, None, :] < t[None, :, None]


def writes_from_state(state: EpisodicState, batch: int) -> MemoryWrites:
    """The filled slots of ``state`` as prior memories (``pos = −1``) for ``batch`` sequences."""
    n = state.size
    expand = lambda z: z[:n].unsqueeze(0).expand(batch, *z[:n].shape)
    return MemoryWrites(
        keys=expand(state.keys),
        values=expand(state.values),
        positions=torch.full((batch, n), -1, dtype=torch.long, device=state.keys.device),
        strength=expand(state.strength),
    )


def concat_writes(*writes: MemoryWrites) -> MemoryWrites:
    """Join memory sets along ``M`` (same ``B``, ``Dk``, ``Dv``)."""
    if not writes:
        raise ValueError("give at least one MemoryWrites")
    return MemoryWrites(*(torch.cat(parts, dim=1) for parts in zip(*writes)))


@dataclass(frozen=True, kw_only=True)
class WriteParams:
    """Options of :class:`MemoryWriter`.

    Attributes:
        stride: ``s``, positions per write. Default 16 (ours).
        pooling: ``"mean"`` over the segment or its ``"last"`` state.
    """

    stride: int = 16
    pooling: Pooling = "mean"

    def __post_init__(self) -> None:
        s = self.stride
        check_int("stride", s)
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {self.pooling!r}")


class MemoryWriter(nn.Module):
    """``hidden [B, T, C]`` (+ optional importance ``[B, T]``) → :class:`MemoryWrites`.

    Args:
        dim: ``C``.
        key_dim: ``Dk``.
        value_dim: ``Dv``.
        params: :class:`WriteParams`.
    """

    def __init__(
        self, dim: int, key_dim: int, value_dim: int, params: WriteParams | None = None
    ) -> None:
        super().__init__()
        for name, d in (("dim", dim), ("key_dim", key_dim), ("value_dim", value_dim)):
            check_int(name, d)
        self.dim = dim
        self.params = params if params is not None else WriteParams()
        self.key = nn.Linear(dim, key_dim, bias=False)
        self.value = nn.Linear(dim, value_dim, bias=False)

    def forward(self, hidden: torch.Tensor, importance: torch.Tensor | None = None) -> MemoryWrites:
        check_tensor("hidden", hidden, ndim=3, floating=True)
        if hidden.shape[-1] != self.dim:
            raise ValueError(f"hidden must have last dim {self.dim}, got {tuple(hidden.shape)}")
        u, pos = segment_pool(hidden, self.params.stride, self.params.pooling)
        b, m = u.shape[:2]
        if importance is None:
            strength = hidden.new_ones(b, m)
        else:
            check_tensor(
                "importance", importance, shape=hidden.shape[:2], floating=True, finite=True
            )
            if bool((importance < 0).any()):
                raise ValueError("importance must be ≥ 0")
            strength = segment_pool(importance.unsqueeze(-1), self.params.stride, "mean")[0][..., 0]
        return MemoryWrites(self.key(u), self.value(u), pos.unsqueeze(0).expand(b, m), strength)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, params={self.params}"
