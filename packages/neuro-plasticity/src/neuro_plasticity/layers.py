"""Sequence layers built on fast weights: HebbianAttention, RewardModulatedHebbian, HebbianFastWeights.

All three are causal and keep no state on ``self``: the Hebbian matrix is rebuilt from zero for
every sequence of every batch item by :func:`~neuro_plasticity.ops.fast_weights.fast_weights`.
Inputs are ``[B, T, dim]``.

Published behaviour we changed (reference-systems §1.7): NeuroLlama's Hebbian attention adds
η·Q H Kᵀ to the logits with H ← λ(H + η Qᵀ A K) summed over the *whole* sequence after the call and
carried to the next call (next batch), so outputs depended on batch order and on future tokens.
Here H at position t holds only positions < t of the same sequence.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_plasticity.ops.fast_weights import FastWeightBackend, Normalize, fast_weights


def _shift(x: torch.Tensor) -> torch.Tensor:
    """``x[:, t−1]`` at position t (zeros at t = 0), for exclusive fast-weight reads."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


class HebbianCache(NamedTuple):
    """Decoding state of :class:`HebbianAttention` after S positions: keys and values
    ``[B, H, S, D]``, the fast-weight state ``[B, H, D, D]`` (fp32) holding the writes of
    positions < S − 1, and the last position's query and read key ``[B, 1, H, D]`` (its write
    enters at the next position)."""

    k: torch.Tensor
    v: torch.Tensor
    state: torch.Tensor
    last_q: torch.Tensor
    last_read: torch.Tensor


class HebbianAttention(nn.Module):
    """Causal softmax attention whose logits carry a Hebbian fast-weight term.

        logits_tj = q_t·k_j/√d + η q_tᵀ H_{t−1} k_j,    H_t = λ H_{t−1} + β_t q_t r_tᵀ,
        r_t = Σ_{j≤t} A⁰_tj k_j  (the key the plain attention A⁰ = softmax(q kᵀ/√d) read at t)

    so H associates past queries with the keys they attended; a key gets a bonus when queries like
    the current one attended keys like it before. H is built from A⁰ (not from the modulated
    attention) so the whole layer is one fast-weight pass plus two softmaxes, parallel over T.
    β_t = 1 here; :class:`RewardModulatedHebbian` sets it from a reward.

    Args:
        dim: model width; ``n_heads`` must divide it.
        n_heads: heads.
        lr: η (NeuroLlama's ``hebbian_lr`` default 0.01).
        decay: λ ∈ (0, 1] (NeuroLlama's ``decay_rate`` default 0.99).
        chunk_size, backend: passed to :func:`fast_weights`.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        *,
        lr: float = 0.01,
        decay: float = 0.99,
        chunk_size: int = 64,
        backend: FastWeightBackend = "auto",
    ) -> None:
        super().__init__()
        if dim < 1 or n_heads < 1 or dim % n_heads:
            raise ValueError(f"n_heads must divide dim, got dim={dim}, n_heads={n_heads}")
        self.lr = check_positive("lr", lr, allow_zero=True)
        self.decay = check_in_range("decay", decay, 0.0, 1.0, low_open=True)
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.chunk_size = chunk_size
        self.backend: FastWeightBackend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def _attend(
        self,
        x: torch.Tensor,
        strength: torch.Tensor | None,
        cache: HebbianCache | None = None,
    ) -> tuple[torch.Tensor, HebbianCache]:
        check_tensor(
            "x", x, ndim=3, shape=(None, None, self.n_heads * self.head_dim), floating=True
        )
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).unbind(2)
        scale = 1.0 / math.sqrt(self.head_dim)
        qh, kh, vh = (z.transpose(1, 2) for z in (q, k, v))  # [B, H, T, D]
        past = 0
        prev_q = prev_read = state = None
        if cache is not None:
            check_tensor("cache.k", cache.k, ndim=4, shape=(b, self.n_heads, None, self.head_dim))
            past = cache.k.shape[2]
            kh, vh = (
                torch.cat([cache.k.to(kh.dtype), kh], 2),
                torch.cat([cache.v.to(vh.dtype), vh], 2),
            )
            prev_q, prev_read, state = cache.last_q, cache.last_read, cache.state
        # query i (absolute past + i) sees keys j ≤ past + i
        causal = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
        logits = (qh @ kh.transpose(-1, -2)) * scale
        a0 = logits.masked_fill(~causal, -math.inf).softmax(-1)
        read = (a0 @ kh).transpose(1, 2)  # r_t, [B, T, H, D]
        s = None if strength is None else _shift(strength[..., None].expand(b, t, self.n_heads))
        memory, new_state = fast_weights(
            q,
            _shift(q) if prev_q is None else torch.cat([prev_q.to(q.dtype), q[:, :-1]], 1),
            _shift(read)
            if prev_read is None
            else torch.cat([prev_read.to(q.dtype), read[:, :-1]], 1),
            lr=1.0,
            decay=self.decay,
            strength=s,
            initial_state=state,
            chunk_size=self.chunk_size,
            backend=self.backend,
        )
        bias = self.lr * (memory.transpose(1, 2) @ kh.transpose(-1, -2))
        attn = (logits + bias).masked_fill(~causal, -math.inf).softmax(-1)
        y = (attn @ vh).transpose(1, 2).reshape(b, t, -1)
        return self.out(y), HebbianCache(kh, vh, new_state, q[:, -1:], read[:, -1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, dim]`` → ``[B, T, dim]``."""
        return self._attend(x, None)[0]

    def decode(
        self, x: torch.Tensor, cache: HebbianCache | None = None
    ) -> tuple[torch.Tensor, HebbianCache]:
        """Incremental decoding: ``x [B, T, dim]`` are the T positions after those in ``cache``
        (None: none); returns their outputs and the extended cache. A prefix then one token at
        a time gives exactly the outputs of the whole sequence."""
        return self._attend(x, None, cache)


class RewardModulatedHebbian(HebbianAttention):
    """:class:`HebbianAttention` whose Hebbian writes are scaled by an external reward (three-factor).

    ``forward(x, reward)`` with ``reward`` ``[B, T]``: the write at position t (H_t − λH_{t−1}) is
    multiplied by reward_t, which affects outputs at positions > t only. The reward comes from
    outside (e.g. whether the previous prediction was right), as in NeuroLlama's
    RewardModulatedHebbian, but per position and per batch item.
    """

    def forward(self, x: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        check_tensor("reward", reward, shape=x.shape[:2], floating=True, device=x.device)
        return self._attend(x, reward.to(x.dtype))[0]


class HebbianFastWeights(nn.Module):
    """Linear layer plus a causal Hebbian fast-weight matrix (a plastic FFN projection).

        y⁰_t = W x_t + b,      y_t = y⁰_t + W^fast_{t−1} x̂_t,
        W^fast_t = λ W^fast_{t−1} + η y⁰_t x̂_tᵀ

    with x̂ = x/‖x‖ when ``normalize="l2"`` (default; keeps the fast term bounded by
    η/(1 − λ)·max‖y⁰‖). The published HebbianFastWeights (reference-systems §1.7) writes with the
    full output y_t and is neither causal nor per sequence; writing with the slow-pathway output
    y⁰ keeps the update linear, hence chunk-parallel.

    Args:
        in_features, out_features: sizes.
        lr: η ≥ 0 (default 0.1).
        decay: λ ∈ (0, 1] (default 0.95).
        bias: learnable bias on the slow pathway.
        normalize: ``"l2"`` or ``"none"`` for x̂.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lr: float = 0.1,
        decay: float = 0.95,
        bias: bool = True,
        normalize: Normalize = "l2",
        chunk_size: int = 64,
        backend: FastWeightBackend = "auto",
    ) -> None:
        super().__init__()
        self.lr = check_positive("lr", lr, allow_zero=True)
        self.decay = check_in_range("decay", decay, 0.0, 1.0, low_open=True)
        if normalize not in ("l2", "none"):
            raise ValueError(f"normalize must be 'l2' or 'none', got {normalize!r}")
        self.normalize: Normalize = normalize
        self.chunk_size = chunk_size
        self.backend: FastWeightBackend = backend
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, in_features]`` → ``[B, T, out_features]``."""
        check_tensor("x", x, ndim=3, shape=(None, None, self.linear.in_features), floating=True)
        y0 = self.linear(x)
        xh = F.normalize(x, dim=-1) if self.normalize == "l2" else x
        fast, _ = fast_weights(
            xh[:, :, None],
            _shift(xh)[:, :, None],
            _shift(y0)[:, :, None],
            lr=self.lr,
            decay=self.decay,
            chunk_size=self.chunk_size,
            backend=self.backend,
        )
        return y0 + fast[:, :, 0]


__all__ = ["HebbianAttention", "HebbianFastWeights", "RewardModulatedHebbian"]
