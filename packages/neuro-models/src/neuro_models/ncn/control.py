"""The neuromodulatory control network: salience pooling → phasic input → MLP → per-layer signals.

For every token t and layer l the network emits three signals (Morgan 2025, "Neuromodulatory
Control Networks", eqs. 1-19; code ``Mmorgan-ML/Neuromodulatory-Control-Networks`` @ ac0eb85):

    c_t   = MHA(query = q_sal, key = value = x_{≤t})          salience pooling (causal, ours)
    u_t   = c_t + x_t                                          phasic input
    z_t   = W₂ tanh(W₁ RMSNorm(u_t) + b₁) + b₂ ∈ R^{L×3}
    g     = 2 σ(z_g)                       ∈ (0, 2)            layer gain
    β     = min(softplus(z_β) + 0.01, 4)   ∈ (0.01, 4]         attention precision
    γ     = σ(z_γ)                         ∈ (0, 1)            FFN gate

``x`` is the embedding stream (token + position embedding), not a deeper hidden state, and q_sal is
a learned ``[d]`` vector drawn from N(0, 1).

Why it lives in neuro-models and not in a component package: the network is only meaningful
together with its consumers (the attention precision/gain and the FFN gate of every block), and
component packages may not import each other; the consumed op, ``modulated_attention``, is the
reusable part and lives in neuro-attention.

What we changed from the published code, and why:

* pooling is **causal** by default: the published pooling attends over all T positions without a
  mask, so the signals at t are a function of tokens after t (a label leak in a causal LM). The
  published behaviour is ``pooling="noncausal"``.
* the bias-init protocol of the paper (β ≈ 1, γ ≈ 0.95, g = 1) is applied *after* the global
  weight init; the published code applies it before, so the global init zeroes it (β = 0.70,
  γ = 0.5). The published behaviour is ``init="published"``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.ops import RMSNorm
from neuro_models.ncn.config import ControlConfig


class Signals(NamedTuple):
    """Per-layer modulatory signals, each ``[B, T, L]``."""

    gain: torch.Tensor
    precision: torch.Tensor
    gate: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"gain": self.gain, "precision": self.precision, "gate": self.gate}


class PoolCache(NamedTuple):
    """Keys and values of the salience pooling seen so far, each ``[B, heads, S, head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor


def signals_from_logits(
    z: torch.Tensor, *, precision_floor: float = 0.01, precision_max: float = 4.0
) -> Signals:
    """Map raw control logits ``z [B, T, L, 3]`` (gain, precision, gate) to :class:`Signals`."""
    gain = 2.0 * torch.sigmoid(z[..., 0])
    precision = (F.softplus(z[..., 1]) + precision_floor).clamp(max=precision_max)
    gate = torch.sigmoid(z[..., 2])
    return Signals(gain, precision, gate)


def causal_mask(t_query: int, t_key: int, device: torch.device) -> torch.Tensor:
    """``[t_query, t_key]`` bool mask for queries at the *last* ``t_query`` of ``t_key`` positions:
    query i may see key j iff ``j ≤ (t_key − t_query) + i``."""
    offset = t_key - t_query
    q = torch.arange(t_query, device=device)[:, None]
    k = torch.arange(t_key, device=device)[None, :]
    return k <= q + offset


class SaliencePooling(nn.Module):
    """A learned query attends over the embedding stream: ``[B, T, d] → [B, T, d]``.

    Same parameters as the published ``nn.MultiheadAttention(d, heads)`` with biases (packed
    in-projection, xavier-uniform init, out-projection), plus the ``[d]`` query ~ N(0, 1).

    Args:
        d_model: width d.
        heads: pooling heads (d divisible by heads).
        pooling: ``"causal"`` (c_t sees x_{≤t}) or ``"noncausal"`` (every c_t sees all of x).
    """

    def __init__(self, d_model: int, heads: int, pooling: str) -> None:
        super().__init__()
        self.d_model, self.heads, self.pooling = d_model, heads, pooling
        self.query = nn.Parameter(torch.randn(d_model))
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(
        self, x: torch.Tensor, cache: PoolCache | None = None, keys: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, PoolCache]:
        """Pool ``x [B, T, d]`` (the newest T positions when ``cache`` holds earlier ones).

        ``keys``: ``[B, S]`` bool, False for padded positions (never pooled; a position always
        pools itself so that an all-padding prefix stays finite), or None without padding.
        Returns ``(c [B, T, d], cache)`` where the cache covers every position seen so far.
        """
        b, t, d = x.shape
        h, hd = self.heads, d // self.heads
        wq, wk, wv = self.in_proj_weight.split(d)
        bq, bk, bv = self.in_proj_bias.split(d)
        q = F.linear(self.query, wq, bq).view(1, h, 1, hd)
        k = F.linear(x, wk, bk).view(b, t, h, hd).transpose(1, 2)
        v = F.linear(x, wv, bv).view(b, t, h, hd).transpose(1, 2)
        if cache is not None:
            k = torch.cat([cache.k, k], dim=2)
            v = torch.cat([cache.v, v], dim=2)
        s_total = k.shape[2]
        if keys is not None:
            if tuple(keys.shape) != (b, s_total):
                raise ValueError(f"keys must have shape {(b, s_total)}, got {tuple(keys.shape)}")
            allowed = keys[:, None, :]  # [B, 1, S]
            if self.pooling != "noncausal":
                mine = torch.arange(s_total - t, s_total, device=x.device)[:, None]
                allowed = (causal_mask(t, s_total, x.device) & allowed) | (
                    torch.arange(s_total, device=x.device)[None, :] == mine
                )
                pooled = F.scaled_dot_product_attention(
                    q.expand(b, h, t, hd), k, v, attn_mask=allowed[:, None]
                )
            else:
                pooled = F.scaled_dot_product_attention(
                    q.expand(b, h, 1, hd), k, v, attn_mask=allowed[:, None]
                ).expand(b, h, t, hd)
        elif self.pooling == "noncausal":
            # one pooled vector from every available position, broadcast to all queries
            pooled = F.scaled_dot_product_attention(q.expand(b, h, 1, hd), k, v)
            pooled = pooled.expand(b, h, t, hd)
        else:
            qq = q.expand(b, h, t, hd)
            if s_total == t:
                pooled = F.scaled_dot_product_attention(qq, k, v, is_causal=True)
            else:
                mask = causal_mask(t, s_total, x.device)
                pooled = F.scaled_dot_product_attention(qq, k, v, attn_mask=mask)
        c = self.out_proj(pooled.transpose(1, 2).reshape(b, t, d))
        return c, PoolCache(k, v)


class ControlNetwork(nn.Module):
    """Emits :class:`Signals` ``[B, T, L]`` for every layer from the embedding stream ``[B, T, d]``.

    Args:
        d_model: width d of the embedding stream.
        n_layers: number of modulated layers L.
        config: :class:`~neuro_models.ncn.config.ControlConfig`.
        norm_eps: ε of the input RMSNorm.
    """

    def __init__(self, d_model: int, n_layers: int, config: ControlConfig, norm_eps: float) -> None:
        super().__init__()
        self.config = config
        self.n_layers = n_layers
        self.pool = SaliencePooling(d_model, config.heads, config.pooling)
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.fc1 = nn.Linear(d_model, config.hidden)
        self.fc2 = nn.Linear(config.hidden, 3 * n_layers)

    @torch.no_grad()
    def reset_part_parameters(self) -> None:
        """The pooling's own init (xavier-uniform in-projection, zero bias, query N(0, 1)), then
        the signal biases (:meth:`apply_signal_init`); called after the decoder's global init."""
        nn.init.xavier_uniform_(self.pool.in_proj_weight)
        nn.init.zeros_(self.pool.in_proj_bias)
        nn.init.normal_(self.pool.query, 0.0, 1.0)
        self.apply_signal_init()

    @torch.no_grad()
    def apply_signal_init(self) -> None:
        """Set the signal-head biases per ``config.init`` (call after any global weight init)."""
        bias = self.fc2.bias.view(self.n_layers, 3)
        if self.config.init == "published":
            bias.zero_()
            return
        bias[:, 0] = self.config.gain_bias
        bias[:, 1] = self.config.precision_bias
        bias[:, 2] = self.config.gate_bias

    def forward(
        self, x: torch.Tensor, cache: PoolCache | None = None, keys: torch.Tensor | None = None
    ) -> tuple[Signals, PoolCache]:
        """Signals ``[B, T, L]`` of ``x [B, T, d]`` and the pooling cache (see
        :meth:`SaliencePooling.forward` for ``cache`` and ``keys``)."""
        b, t, _ = x.shape
        c, cache = self.pool(x, cache, keys)
        z = self.fc2(torch.tanh(self.fc1(self.norm(c + x))))
        signals = signals_from_logits(
            z.view(b, t, self.n_layers, 3).float(),
            precision_floor=self.config.precision_floor,
            precision_max=self.config.precision_max,
        )
        return signals, cache


def intended_signal_values(config: ControlConfig) -> tuple[float, float, float]:
    """``(g, β, γ)`` produced by the intended biases alone (zero MLP output)."""
    g = 2.0 / (1.0 + math.exp(-config.gain_bias))
    beta = min(
        math.log1p(math.exp(config.precision_bias)) + config.precision_floor, config.precision_max
    )
    gamma = 1.0 / (1.0 + math.exp(-config.gate_bias))
    return g, beta, gamma
