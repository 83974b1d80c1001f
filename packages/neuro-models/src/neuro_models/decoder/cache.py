"""The one decoding cache: preallocated keys/values of every layer plus the state of stateful parts."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class CacheShape(Protocol):
    """What :class:`KVCache` needs to know about a model (``LlamaConfig`` and ``DecoderConfig``)."""

    @property
    def n_layers(self) -> int: ...

    @property
    def n_heads(self) -> int: ...

    @property
    def n_kv_heads(self) -> int | None: ...

    @property
    def head_dim(self) -> int: ...

    @property
    def max_seq_len(self) -> int: ...


class KVCache:
    """Preallocated keys/values of every layer for incremental decoding.

    ``k[i]``, ``v[i]``: ``[B, n_kv_heads, capacity, d_h]``. ``length`` positions are filled (the
    same for every row; batches of different prompt lengths are left-padded and ``mask`` records
    which cached positions hold real tokens). A decoder's forward writes to it and advances
    ``length``; the cache is the only state of a generation and is never kept on the model.
    Parts that carry more than keys and values between calls (the NCN control network's pooling
    keys, a fast-weight matrix) keep it in ``state`` under their own key.

    Args:
        config: the model's config (``n_layers``, ``n_kv_heads``, ``head_dim``, ``max_seq_len``).
        batch: rows ``B``.
        capacity: positions to allocate (default ``config.max_seq_len``).
        device, dtype: of the cached tensors (the model's parameter dtype for exact decoding).
    """

    def __init__(
        self,
        config: CacheShape,
        batch: int,
        capacity: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        capacity = config.max_seq_len if capacity is None else capacity
        if not 1 <= capacity <= config.max_seq_len:
            raise ValueError(f"capacity must be in [1, {config.max_seq_len}], got {capacity}")
        if batch < 1:
            raise ValueError(f"batch must be ≥ 1, got {batch}")
        kv_heads = config.n_kv_heads or config.n_heads
        shape = (batch, kv_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.batch, self.capacity, self.length = batch, capacity, 0
        # [B, capacity] bool, True where a real token is cached; None while there is no padding.
        self.mask: torch.Tensor | None = None
        # [B] number of real tokens cached per row (the next position).
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)
        # State of stateful parts, by the part's key (e.g. "modulator").
        self.state: dict[str, Any] = {}

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``/``v`` ``[B, KV, T, d_h]`` at ``length``; return everything cached so far."""
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def keys_mask(self, end: int) -> torch.Tensor | None:
        """``[B, end]`` bool, True where a cached position holds a real token; None: no padding."""
        return None if self.mask is None else self.mask[:, :end]
