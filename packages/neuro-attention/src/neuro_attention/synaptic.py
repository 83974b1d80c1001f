"""Synaptic attention (NeuroLlama §1.4): per-head scaling, neuromodulated head gates, pair gate.

Sources: reference-systems §1.4 (NeuroLlama ``SynapticScaling``, ``NeuromodulatedAttention``,
``SynapticModulationMatrix``). Every module here produces a signal for
:func:`neuro_attention.modulated_attention` (``head_gain`` or ``pair_gate``), so none of them ever
materializes a ``[T, T]`` matrix.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_positive, check_tensor


class SynapticScaling(nn.Module):
    """Learnable per-head output gain: ``o_h ← α_h · o_h``, α initialised to 1 (H parameters).

    The published module scales the post-softmax probabilities of head h by α_h, which is the same
    as scaling the head's output. It is a pure reparameterization (α_h can be folded into the
    columns of W_o), so it changes optimisation dynamics, never the reachable loss: a useful null
    control for every other mechanism. Use :meth:`gain` as ``head_gain`` of the fused op.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        check_positive("num_heads", num_heads)
        self.alpha = nn.Parameter(torch.ones(num_heads))

    def gain(self) -> torch.Tensor:
        """``[H]`` gains for ``modulated_attention(head_gain=...)``."""
        return self.alpha

    def forward(self, heads: torch.Tensor) -> torch.Tensor:
        """``heads [B, T, H, D] → [B, T, H, D]`` scaled per head."""
        check_tensor("heads", heads, ndim=4, shape=(None, None, self.alpha.shape[0], None))
        return heads * self.alpha.to(heads.dtype)[:, None]

    @torch.no_grad()
    def update_alpha(self, head: int, delta: float) -> None:
        """External (non-gradient) update ``α_head += delta``, as in the published API."""
        if not 0 <= head < self.alpha.shape[0]:
            raise ValueError(f"head must be in [0, {self.alpha.shape[0]}), got {head}")
        self.alpha[head] += delta


class NeuromodulatedAttention(nn.Module):
    """Per-token head gates from a causal prefix mean of the layer input.

        c_t = (1/t) Σ_{s≤t} x_s
        g_t = σ(W₂ · SiLU(W₁ c_t + b₁) + b₂) ∈ (0, 1)^H

    with W₁: d → d/4 and W₂: d/4 → H; parameters d·d/4 + d/4 + (d/4)·H + H.
    Changed from the published module: its context is the mean over the **whole** sequence, which
    lets every position see future tokens; we use the prefix mean (``context="prefix_mean"``,
    default), so gates are ``[B, T, H]``. ``context="sequence_mean"`` keeps the published
    behaviour, ``c_t = (1/T) Σ_{s≤T} x_s`` for every t (non-causal; registered in the contract
    catalogue as an expected causality failure).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        reduction: int = 4,
        context: Literal["prefix_mean", "sequence_mean"] = "prefix_mean",
    ) -> None:
        super().__init__()
        check_positive("d_model", d_model)
        check_positive("reduction", reduction)
        if context not in ("prefix_mean", "sequence_mean"):
            raise ValueError(f"context must be 'prefix_mean' or 'sequence_mean', got {context!r}")
        self.context = context
        hidden = max(1, d_model // reduction)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, d] → gates [B, T, H]`` for ``modulated_attention(head_gain=...)``."""
        return self.continue_prefix(x)[0]

    def continue_prefix(
        self,
        x: torch.Tensor,
        prefix_sum: torch.Tensor | None = None,
        prefix_count: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gates of the positions after a prefix, given the sum and count of its inputs.

            c_t = (prefix_sum + Σ_{s≤t} m_s x_s) / max(1, prefix_count + Σ_{s≤t} m_s)

        with m_s = 1 for real tokens and 0 for padding (``valid``), so padding never enters the
        mean (a padded position's own gate is finite but meaningless).

        Args:
            x: ``[B, T, d]`` the new positions.
            prefix_sum: ``[B, d]`` sum of the earlier real inputs, or None (no earlier ones).
            prefix_count: ``[B]`` number of earlier real inputs, or None (0).
            valid: ``[B, T]`` bool, False for padding, or None (all real).

        Returns:
            ``(gates [B, T, H], sum [B, d], count [B])`` of everything so far; decoding one
            chunk at a time gives the gates of the whole sequence.
        """
        check_tensor("x", x, ndim=3, shape=(None, None, self.fc1.in_features), floating=True)
        b, t, d = x.shape
        if self.context == "sequence_mean":
            if prefix_sum is not None or prefix_count is not None or valid is not None:
                raise ValueError(
                    "context='sequence_mean' (published) needs the whole unpadded sequence: "
                    "it cannot continue a prefix"
                )
            context = x.mean(dim=1, keepdim=True).expand_as(x)
            gates = torch.sigmoid(self.fc2(F.silu(self.fc1(context))))
            return gates, x.sum(1), x.new_full((b,), float(t))
        if prefix_sum is not None:
            check_tensor("prefix_sum", prefix_sum, shape=(b, d), device=x.device)
        if prefix_count is not None:
            check_tensor("prefix_count", prefix_count, shape=(b,), device=x.device)
        if valid is not None:
            check_tensor("valid", valid, shape=(b, t), dtype=torch.bool, device=x.device)
        m = x.new_ones(b, t) if valid is None else valid.to(x.dtype)
        cum = (x * m[..., None]).cumsum(dim=1)
        count = m.cumsum(dim=1)
        if prefix_sum is not None:
            cum = cum + prefix_sum[:, None].to(x.dtype)
        if prefix_count is not None:
            count = count + prefix_count[:, None].to(x.dtype)
        context = cum / count.clamp_min(1.0)[..., None]
        gates = torch.sigmoid(self.fc2(F.silu(self.fc1(context))))
        if t == 0:
            zero = x.new_zeros(b)
            return (
                gates,
                (prefix_sum if prefix_sum is not None else x.new_zeros(b, d)),
                (prefix_count if prefix_count is not None else zero),
            )
        return gates, cum[:, -1], count[:, -1]


class SynapticModulationMatrix(nn.Module):
    """Factorized pairwise modulation S_ij = σ(w·[q_i; k_j] + c) = σ(a_i + b_j) inside a window.

        a_i = w_q·q_i,   b_j = w_k·k_j + c,   logit_ij += log S_ij  for ``|i − j| < W``

    Parameters 2·d_h + 1 (shared by all heads, as published). Changed from the published sketch:
    it builds the ``[T, T, 2·d_h]`` concatenation and multiplies probabilities without
    renormalizing; the factorized form is exact, costs O(T·d_h), and adding log S to the logits
    renormalizes. Keys with ``|i − j| ≥ W`` stay ungated (S = 1), as published. Default W = 512
    (published default).
    """

    def __init__(self, head_dim: int, *, window: int = 512) -> None:
        super().__init__()
        check_positive("head_dim", head_dim)
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        self.window = int(window)
        self.w_q = nn.Parameter(torch.zeros(head_dim))
        self.w_k = nn.Parameter(torch.zeros(head_dim))
        # σ(4) ≈ 0.98: starts close to "no modulation" (S = 1) while keeping gradients alive
        self.bias = nn.Parameter(torch.tensor(4.0))

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``q [B, T_q, H, D]``, ``k [B, T_k, H_kv, D]`` → ``(a [B,T_q,H], b [B,T_k,H], W)``.

        ``T_q < T_k`` when decoding (queries are the last ``T_q`` positions).
        """
        check_tensor("q", q, ndim=4, shape=(None, None, None, self.w_q.shape[0]))
        check_tensor("k", k, ndim=4, shape=(q.shape[0], None, None, self.w_q.shape[0]))
        a = q @ self.w_q.to(q.dtype)
        b = k @ self.w_k.to(k.dtype) + self.bias.to(k.dtype)
        b = b.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
        return a, b, self.window

    def dense(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The published ``[B, H, T, T]`` matrix S (for tests and inspection; O(T²) memory)."""
        a, b, w = self.forward(q, k)
        t = q.shape[1]
        rel = torch.arange(t, device=q.device)[:, None] - torch.arange(t, device=q.device)[None, :]
        s = torch.sigmoid(a.transpose(1, 2)[..., :, None] + b.transpose(1, 2)[..., None, :])
        return torch.where(rel.abs() < w, s, torch.ones_like(s))


__all__ = ["NeuromodulatedAttention", "SynapticModulationMatrix", "SynapticScaling"]
