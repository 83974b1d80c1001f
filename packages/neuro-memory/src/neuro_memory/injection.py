"""Injecting memories into ``[B, T, C]`` hidden states: gate, cross-attention or concat.

Each token reads with its own query and sees only the memories visible at its position
(:func:`neuro_memory.visibility`: prior memories, and writes made at positions ``< t``). With
``V_t`` the visible memories of token ``t`` (keys ``k_m``, values ``v_m``, strengths ``σ_m``)::

    score_tm = cos(W_q x_t, k_m) · σ_m                         m ∈ V_t
    gate / concat:  w_t = softmax(score_t[top-k] / τ),  m_t = W_m Σ_j w_tj v_j       [C]
      gate:          y_t = x_t + σ(W_g [x_t; m_t] + b_g) ⊙ m_t
      concat:        y_t = x_t + W_c [x_t; m_t]
    cross_attention (H heads, d_h = C / H, over all of V_t):
                     a_tmh = softmax_m((W_q^h x_t)·(W_k^h k_m) / √d_h + log σ_m)
                     y_t = x_t + W_o concat_h Σ_m a_tmh W_v^h v_m

A token with no visible memory (or only strength-0 ones) gets ``y_t = x_t`` in every mode.

Source: Aura's ``MemoryAugmentedLayer`` (auralmn/aura-snn-rag,
``src/core/language_zone/memory_augmented_layer.py``; reference-systems §3.2) with injection
``gate`` (σ(W[h; W_m m̄])·W_m m̄), ``cross_attention`` or ``concat`` (0.1·m̄). What we changed:

* **Per-token causal queries.** Aura builds one query from the mean over the whole sequence and
  broadcasts the retrieved memory to every position, so token ``t`` sees tokens after ``t``.
  Ours: query from ``x_t`` and the visibility rule above. ``query="sequence_mean"`` keeps the
  published query (and then every memory is visible everywhere, as in Aura); the contract
  catalogue shows it failing causality.
* **concat** was ``x + 0.1 m̄``, a fixed residual scale; ours projects the concatenation
  ``[x_t; m_t]`` with a learned ``W_c`` so the scale is learned per channel.
* **Strength-weighted cross-attention.** ``log σ_m`` in the logits makes decayed memories count
  less and strength-0 memories not at all, as in :func:`neuro_memory.read`.

For stores too large for dense ``[B, T, M]`` scores, select candidates first (e.g.
:func:`neuro_memory.read` / :class:`neuro_memory.MemoryRetrieval` over an
:class:`~neuro_memory.EpisodicState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_int, check_positive, check_tensor
from neuro_memory.write_path import MemoryWrites, visibility

InjectionMode = Literal["gate", "cross_attention", "concat"]
InjectionQuery = Literal["token", "sequence_mean"]
_MODES: tuple[str, ...] = ("gate", "cross_attention", "concat")


@dataclass(frozen=True, kw_only=True)
class InjectionParams:
    """Options of :class:`MemoryInjection`.

    Attributes:
        mode: ``"gate"``, ``"cross_attention"`` or ``"concat"``.
        k: memories read per token by gate/concat. Default 5 = Aura's top-k.
        temperature: ``τ`` of the gate/concat softmax over scores in ``[−1, 1]``. Default 0.1 (as
            :class:`neuro_memory.RetrievalParams`).
        heads: ``H`` of cross-attention (must divide ``C``). Default 4.
        query: ``"token"`` (causal, ours) or ``"sequence_mean"`` (published, non-causal).
        eps: norm floor of the cosine.
    """

    mode: InjectionMode = "gate"
    k: int = 5
    temperature: float = 0.1
    heads: int = 4
    query: InjectionQuery = "token"
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        for name in ("k", "heads"):
            v = getattr(self, name)
            check_int(name, v)
        check_positive("temperature", self.temperature)
        if self.query not in ("token", "sequence_mean"):
            raise ValueError(f"query must be 'token' or 'sequence_mean', got {self.query!r}")
        check_positive("eps", self.eps)


class MemoryInjection(nn.Module):
    """``forward(x [B, T, C], memory: MemoryWrites) -> [B, T, C]`` (equations in the module doc).

    Args:
        dim: ``C``.
        key_dim: ``Dk`` of the memories.
        value_dim: ``Dv`` of the memories.
        params: :class:`InjectionParams`.
    """

    def __init__(
        self, dim: int, key_dim: int, value_dim: int, params: InjectionParams | None = None
    ) -> None:
        super().__init__()
        for name, d in (("dim", dim), ("key_dim", key_dim), ("value_dim", value_dim)):
            check_int(name, d)
        self.dim, self.key_dim, self.value_dim = dim, key_dim, value_dim
        self.params = p = params if params is not None else InjectionParams()
        if p.mode == "cross_attention":
            if dim % p.heads:
                raise ValueError(f"heads={p.heads} must divide dim={dim}")
            self.query = nn.Linear(dim, dim, bias=False)
            self.key = nn.Linear(key_dim, dim, bias=False)
            self.value = nn.Linear(value_dim, dim, bias=False)
            self.out = nn.Linear(dim, dim, bias=False)
        else:
            self.query = nn.Linear(dim, key_dim, bias=False)
            self.out = nn.Linear(value_dim, dim, bias=False)
            self.mix = nn.Linear(2 * dim, dim, bias=p.mode == "gate")

    def _check(self, x: torch.Tensor, memory: MemoryWrites) -> None:
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dim {self.dim}, got shape {tuple(x.shape)}")
        if not isinstance(memory, MemoryWrites):
            raise ValueError(f"memory must be a MemoryWrites, got {type(memory).__name__}")
        b = x.shape[0]
        check_tensor(
            "memory.keys",
            memory.keys,
            shape=(b, None, self.key_dim),
            floating=True,
            device=x.device,
        )
        m = memory.keys.shape[1]
        check_tensor(
            "memory.values",
            memory.values,
            shape=(b, m, self.value_dim),
            floating=True,
            device=x.device,
        )
        check_tensor(
            "memory.positions", memory.positions, shape=(b, m), dtype=torch.long, device=x.device
        )
        check_tensor(
            "memory.strength", memory.strength, shape=(b, m), floating=True, device=x.device
        )

    def forward(self, x: torch.Tensor, memory: MemoryWrites) -> torch.Tensor:
        self._check(x, memory)
        p = self.params
        b, t, c = x.shape
        if memory.keys.shape[1] == 0:
            return x
        h = x.mean(1, keepdim=True).expand_as(x) if p.query == "sequence_mean" else x
        if p.query == "sequence_mean":
            visible = torch.ones(b, t, memory.keys.shape[1], dtype=torch.bool, device=x.device)
        else:
            visible = visibility(memory.positions, t)
        visible = visible & (memory.strength > 0)[:, None, :]
        keys, values = memory.keys.to(x.dtype), memory.values.to(x.dtype)
        strength = memory.strength.to(x.dtype)
        has = visible.any(-1, keepdim=True)  # [B, T, 1]
        if p.mode == "cross_attention":
            nh, dh = p.heads, c // p.heads
            q = self.query(h).view(b, t, nh, dh).transpose(1, 2)  # [B, H, T, dh]
            k = self.key(keys).view(b, -1, nh, dh).transpose(1, 2)  # [B, H, M, dh]
            v = self.value(values).view(b, -1, nh, dh).transpose(1, 2)
            # Strength-0 memories are masked below; the clamp only keeps their log finite.
            bias = strength.clamp_min(torch.finfo(x.dtype).tiny).log()[:, None, None, :]
            logits = (q @ k.transpose(-1, -2) / math.sqrt(dh) + bias).masked_fill(
                ~visible[:, None], -math.inf
            )
            # A row with nothing visible would be all −inf (NaN softmax): zero it, then drop it.
            logits = logits.masked_fill(~has[:, None], 0.0)
            att = torch.softmax(logits, dim=-1) * has[:, None].to(x.dtype)
            r = (att @ v).transpose(1, 2).reshape(b, t, c)
            return x + self.out(r)
        q = F.normalize(self.query(h), dim=-1, eps=p.eps)
        kn = F.normalize(keys, dim=-1, eps=p.eps)
        scores = (q @ kn.transpose(1, 2)) * strength[:, None, :]  # [B, T, M]
        scores = scores.masked_fill(~visible, -math.inf)
        top = torch.topk(scores, min(p.k, scores.shape[-1]), dim=-1)
        vals = top.values.masked_fill(~has, 0.0)  # as above: no all −inf rows
        w = torch.softmax(vals / p.temperature, dim=-1) * has.to(x.dtype)
        picked = values.unsqueeze(1).expand(b, t, *values.shape[1:])
        picked = picked.gather(
            2, top.indices.unsqueeze(-1).expand(*top.indices.shape, values.shape[-1])
        )
        m = self.out(torch.einsum("btk,btkd->btd", w, picked))
        if p.mode == "gate":
            return x + torch.sigmoid(self.mix(torch.cat([x, m], dim=-1))) * m
        return x + self.mix(torch.cat([x, m], dim=-1)) * has.to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, key_dim={self.key_dim}, value_dim={self.value_dim}, params={self.params}"
