"""The NCN language model: a GPT-2-like (published) or Llama-style backbone whose layers consume
the control network's signals.

Layer l at token t, with signals (g, β, γ) = (gain, precision, gate)[t, l]:

    a = Attn(RMSNorm(x); q ← β·q)           precision scales the logits, before the 1/√d_h
    x = x + g · a
    x = x + g · γ · FFN(RMSNorm(x))

(Morgan 2025, §4.1 and the published ``ModulatedLLM``). Without a control network (``control=None``)
the same code is the bare backbone (arm A′). Attention goes through neuro-attention's
``modulated_attention`` (β as ``query_scale``, g as ``head_gain``: g may be applied per head before
the output projection because that projection has no bias) when a whole sequence is processed;
incremental decoding with a cache uses the reference below, which the tests compare to the op.

Layout: tokens ``[B, T]``, activations ``[B, T, d]``, attention ``[B, T, H, d_h]``, signals
``[B, T, L]``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.ops import RMSNorm
from neuro_core.validation import check_tensor
from neuro_models.llama import apply_rope, rope_table
from neuro_models.ncn.config import NCNConfig
from neuro_models.ncn.control import ControlNetwork, PoolCache, Signals, causal_mask


@functools.cache
def _fused_attention() -> Callable[..., torch.Tensor] | None:
    """neuro-attention's ``modulated_attention`` if installed, else None (reference is used)."""
    try:
        from neuro_attention.ops import modulated_attention
    except ImportError:
        return None
    return modulated_attention  # type: ignore[return-value]


def modulated_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    precision: torch.Tensor | None,
    gain: torch.Tensor | None,
) -> torch.Tensor:
    """Causal attention of the last ``T`` queries over ``S ≥ T`` keys with precision and gain.

    ``o_i = g_i · Σ_j softmax_j(β_i q_i·k_j / √d_h) v_j`` over keys ``j ≤ (S − T) + i``.

    Args:
        q: ``[B, T, H, D]``; k, v: ``[B, S, H, D]``.
        precision: ``[B, T]`` β or None; gain: ``[B, T]`` g or None.

    Returns:
        ``[B, T, H, D]``.
    """
    t, s = q.shape[1], k.shape[1]
    if precision is not None:
        q = q * precision[:, :, None, None].to(q.dtype)
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if s == t:
        out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    elif t == 1:
        out = F.scaled_dot_product_attention(qt, kt, vt)
    else:
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=causal_mask(t, s, q.device))
    out = out.transpose(1, 2)
    if gain is not None:
        out = out * gain[:, :, None, None].to(out.dtype)
    return out


class LayerCache(NamedTuple):
    """Keys and values of one layer, ``[B, S, H, d_h]`` each."""

    k: torch.Tensor
    v: torch.Tensor


class NCNCache(NamedTuple):
    """Everything incremental decoding needs: per-layer K/V, the pooling K/V, and the length."""

    layers: tuple[LayerCache, ...]
    pool: PoolCache | None
    length: int


class NCNOutput(NamedTuple):
    """``logits [B, T, V]``, ``signals`` (None without a control network), ``cache`` (or None)."""

    logits: torch.Tensor
    signals: Signals | None
    cache: NCNCache | None


class Attention(nn.Module):
    """Bias-free multi-head self-attention with optional RoPE, precision and gain."""

    def __init__(self, config: NCNConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.rope = config.backbone == "llama"
        self.backend = config.attention_backend
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        precision: torch.Tensor | None,
        gain: torch.Tensor | None,
        cache: LayerCache | None,
    ) -> tuple[torch.Tensor, LayerCache]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).unbind(2)
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos.to(q.dtype), sin.to(q.dtype))
            k = apply_rope(k, cos.to(k.dtype), sin.to(k.dtype))
        if cache is not None:
            k = torch.cat([cache.k, k], dim=1)
            v = torch.cat([cache.v, v], dim=1)
        op = _fused_attention()
        # Under torch.compile the op's eager input validation (a data-dependent finiteness
        # check) would break the graph; the reference is the same SDPA path "auto" picks.
        if cache is None and op is not None and not torch.compiler.is_compiling():
            hs = (b, t, self.n_heads)
            scale = None if precision is None else precision[..., None].to(q.dtype).expand(hs)
            head_gain = None if gain is None else gain[..., None].to(q.dtype).expand(hs)
            y = op(q, k, v, causal=True, query_scale=scale, head_gain=head_gain,
                   backend=self.backend)  # fmt: skip
        else:
            y = modulated_attention_reference(q, k, v, precision, gain)
        return self.out(y.reshape(b, t, d)), LayerCache(k, v)


class MLP(nn.Module):
    """``gpt2``: Linear(d→F, bias) → GELU → Linear(F→d, bias). ``llama``: bias-free SwiGLU."""

    def __init__(self, config: NCNConfig) -> None:
        super().__init__()
        self.swiglu = config.backbone == "llama"
        d, f = config.d_model, config.ffn_dim
        self.up = nn.Linear(d, 2 * f if self.swiglu else f, bias=not self.swiglu)
        self.down = nn.Linear(f, d, bias=not self.swiglu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            gate, up = self.up(x).chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm block consuming one layer's signals (each ``[B, T]`` or None)."""

    def __init__(self, config: NCNConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        gain: torch.Tensor | None = None,
        precision: torch.Tensor | None = None,
        gate: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, LayerCache]:
        a, cache = self.attn(self.attn_norm(x), rope, precision, gain, cache)
        x = x + self.dropout(a)
        f = self.mlp(self.mlp_norm(x))
        scale = gain if gate is None else (gate if gain is None else gain * gate)
        if scale is not None:
            f = f * scale[..., None].to(f.dtype)
        return x + self.dropout(f), cache


class NCNModel(nn.Module):
    """Decoder-only LM with an optional neuromodulatory control network.

    ``model(tokens [B, T]) -> logits [B, T, V]``; :meth:`run` also returns the signals and takes
    and returns an :class:`NCNCache` for incremental decoding. The output head is tied to the
    token embedding.

    Init (published ``_init_weights``): every Linear and Embedding N(0, 0.02), every bias 0,
    norms 1; the pooling's packed in-projection keeps ``nn.MultiheadAttention``'s xavier-uniform
    init and its query N(0, 1); then the control network's signal biases are set per
    ``config.control.init`` (the published code does it before the global init, which erases it).
    The Llama backbone additionally scales residual output projections by 1/√(2L), as the Llama
    baseline does.
    """

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, config: NCNConfig) -> None:
        super().__init__()
        if not isinstance(config, NCNConfig):
            raise ValueError(f"config must be an NCNConfig, got {type(config).__name__}")
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        self.pos = nn.Embedding(config.max_seq_len, d) if config.backbone == "gpt2" else None
        self.dropout = nn.Dropout(config.dropout)
        self.control = (
            ControlNetwork(d, config.n_layers, config.control, config.norm_eps)
            if config.control is not None
            else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(d, eps=config.norm_eps)
        cos, sin = rope_table(config.head_dim, config.max_seq_len, config.theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.config.init_std
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        if self.control is not None:
            nn.init.xavier_uniform_(self.control.pool.in_proj_weight)
            nn.init.zeros_(self.control.pool.in_proj_bias)
            nn.init.normal_(self.control.pool.query, 0.0, 1.0)
            self.control.apply_signal_init()
        if self.config.backbone == "llama":
            residual_std = std / math.sqrt(2 * self.config.n_layers)
            for block in self.blocks:
                assert isinstance(block, Block)
                nn.init.normal_(block.attn.out.weight, 0.0, residual_std)
                nn.init.normal_(block.mlp.down.weight, 0.0, residual_std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, T] -> logits [B, T, V]`` (no cache)."""
        return self.run(tokens).logits

    def run(self, tokens: torch.Tensor, *, cache: NCNCache | None = None) -> NCNOutput:
        """Logits and signals of ``tokens``, which follow the ``cache.length`` cached positions.

        Args:
            tokens: ``[B, T]`` int ids in ``[0, vocab_size)``.
            cache: None for a whole sequence (no cache is returned), or the cache of the earlier
                positions (``empty_cache()`` to start one); the returned cache covers all of them.

        What the control network sees with a cache: the pooling keys/values of every earlier
        position are cached, so with causal pooling the signals (and logits) are exactly those of
        a full forward pass over the whole prefix. With ``pooling="noncausal"`` each new position
        pools over the prefix that exists so far: the future it saw in training is not available
        at generation time. (The published generation instead feeds the control network the
        current token only, "reactive salience".)
        """
        check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
        _b, t = tokens.shape
        start = 0 if cache is None else cache.length
        if start + t > self.config.max_seq_len:
            raise ValueError(
                f"tokens: {start + t} positions exceed max_seq_len={self.config.max_seq_len}"
            )
        if not torch.compiler.is_compiling() and t > 0:
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(
                    f"tokens must lie in [0, {self.config.vocab_size}), got range [{lo}, {hi}]"
                )
        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos(torch.arange(start, start + t, device=tokens.device))
        x = self.dropout(x)
        signals: Signals | None = None
        pool_cache: PoolCache | None = None
        if self.control is not None:
            signals, pool_cache = self.control(x, None if cache is None else cache.pool)
        rope = None
        if self.config.backbone == "llama":
            rope = (self.rope_cos[start : start + t], self.rope_sin[start : start + t])
            rope = (rope[0][None, :, None, :], rope[1][None, :, None, :])
        layers: list[LayerCache] = []
        for i, block in enumerate(self.blocks):
            kw: dict[str, Any] = {}
            if signals is not None:
                kw = dict(gain=signals.gain[..., i], precision=signals.precision[..., i],
                          gate=signals.gate[..., i])  # fmt: skip
            x, lc = block(x, rope, cache=None if cache is None else cache.layers[i], **kw)
            layers.append(lc)
        logits = F.linear(self.norm(x), self.embed.weight)
        new_cache = None if cache is None else NCNCache(tuple(layers), pool_cache, start + t)
        return NCNOutput(logits, signals, new_cache)

    def empty_cache(self, batch: int, device: torch.device | None = None) -> NCNCache:
        """A cache holding zero positions, for :meth:`run` and :func:`generate`."""
        dev = device if device is not None else self.embed.weight.device
        dt = self.embed.weight.dtype
        h, hd = self.config.n_heads, self.config.head_dim
        kv = torch.zeros(batch, 0, h, hd, device=dev, dtype=dt)
        layers = tuple(LayerCache(kv, kv) for _ in self.blocks)
        pool = None
        if self.control is not None:
            ph = self.control.pool.heads
            pkv = torch.zeros(batch, ph, 0, self.config.d_model // ph, device=dev, dtype=dt)
            pool = PoolCache(pkv, pkv)
        return NCNCache(layers, pool, 0)
