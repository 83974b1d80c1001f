"""Typed parts of a decoder block and their registry.

Three kinds of part, each built by a factory registered under a name:

* **token mixer** ``forward(x [B, T, d], ctx: SequenceContext, precision, gain) -> [B, T, d]``:
  mixes information across positions (causally); it knows its layer index from its factory. ``precision`` β ``[B, T]`` scales
  the attention logits of each query, ``gain`` g ``[B, T]`` multiplies its output (both None when
  no modulator is present; a mixer that cannot take them raises). A mixer that can decode
  incrementally sets ``supports_cache = True`` and reads/writes ``ctx.cache``.
* **FFN** ``forward(x [B, T, d]) -> [B, T, d]``: position-wise.
* **modulator** ``forward(x [B, T, d], state, keys) -> (Signals, state)``: per-token, per-layer
  signals ``[B, T, L]`` (gain, precision, gate) from the embedding stream, with ``state`` what
  incremental decoding must carry (kept in ``KVCache.state["modulator"]``) and ``keys`` the
  ``[B, S]`` key-padding mask (None without padding).

Factories take ``(config: DecoderConfig, layer: int, **options)`` (modulators: ``(config,
**options)``). Parts may define ``residual_projections()`` (Linear layers drawn from N(0, σ/√(2L))
when ``config.scaled_residual_init``) and ``reset_part_parameters()`` (called after the global
N(0, σ) init, for inits of their own).

Built in: mixer ``"attention"`` (causal GQA with RoPE, precision and gain, KV cache, padding);
FFNs ``"swiglu"`` and ``"gelu"``; modulator ``"ncn"`` (the NCN control network). Adapters for the
component packages' modules are in :mod:`neuro_models.decoder.adapters`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.decoder.cache import KVCache
from neuro_models.decoder.config import DecoderConfig
from neuro_models.decoder.functional import causal_attention, rotate

# SDPA gained native grouped-query attention (``enable_gqa``) in torch 2.5.
_SDPA_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)

LayerFactory = Callable[..., nn.Module]

_REGISTRIES: dict[str, dict[str, LayerFactory]] = {"mixer": {}, "ffn": {}, "modulator": {}}


def _register(role: str, kind: str, factory: LayerFactory | None) -> Any:
    def add(f: LayerFactory) -> LayerFactory:
        if kind in _REGISTRIES[role]:
            raise ValueError(f"a {role} part named {kind!r} is already registered")
        _REGISTRIES[role][kind] = f
        return f

    return add if factory is None else add(factory)


def register_mixer(kind: str, factory: LayerFactory | None = None) -> Any:
    """Register a token-mixer factory ``(config, layer, **options) -> nn.Module`` (or decorate)."""
    return _register("mixer", kind, factory)


def register_ffn(kind: str, factory: LayerFactory | None = None) -> Any:
    """Register an FFN factory ``(config, layer, **options) -> nn.Module`` (or decorate)."""
    return _register("ffn", kind, factory)


def register_modulator(kind: str, factory: LayerFactory | None = None) -> Any:
    """Register a modulator factory ``(config, **options) -> nn.Module`` (or decorate)."""
    return _register("modulator", kind, factory)


def registered(role: str) -> tuple[str, ...]:
    """Names registered for ``role`` (``"mixer"``, ``"ffn"`` or ``"modulator"``)."""
    if role not in _REGISTRIES:
        raise ValueError(f"role must be one of {sorted(_REGISTRIES)}, got {role!r}")
    _load_adapters()
    return tuple(sorted(_REGISTRIES[role]))


@functools.cache
def _load_adapters() -> None:
    import neuro_models.decoder.adapters  # noqa: F401  (registers the component-package parts)


def _factory(role: str, kind: str) -> LayerFactory:
    _load_adapters()
    table = _REGISTRIES[role]
    if kind not in table:
        raise ValueError(f"{role}: unknown kind {kind!r}; registered: {sorted(table)}")
    return table[kind]


def build_mixer(config: DecoderConfig, layer: int) -> nn.Module:
    part = config.mixer_at(layer)
    return _factory("mixer", part.kind)(config, layer, **part.options)


def build_ffn(config: DecoderConfig, layer: int) -> nn.Module:
    part = config.ffn_at(layer)
    return _factory("ffn", part.kind)(config, layer, **part.options)


def build_modulator(config: DecoderConfig) -> nn.Module | None:
    if config.modulator is None:
        return None
    return _factory("modulator", config.modulator.kind)(config, **config.modulator.options)


@dataclass
class SequenceContext:
    """What every token mixer of one forward call shares.

    Attributes:
        rope: ``(cos, sin)`` broadcastable to ``[B, T, heads, d_h/2]``, or None (no RoPE).
        mask: SDPA boolean mask ``[B or 1, 1, T, S]`` (True: may attend), or None.
        is_causal: with ``mask`` None, whether SDPA applies its own causal mask.
        cache: the :class:`KVCache` being filled, or None.
        start: positions already cached before this call (``S = start + T``).
        keys: ``[B, S]`` key-padding mask (True: real token), or None without padding.
    """

    rope: tuple[torch.Tensor, torch.Tensor] | None
    mask: torch.Tensor | None
    is_causal: bool
    cache: KVCache | None
    start: int
    keys: torch.Tensor | None


def _attention_op() -> Callable[..., torch.Tensor] | None:
    try:
        from neuro_attention.ops import modulated_attention
    except ImportError:  # pragma: no cover - neuro-attention is a dependency of neuro-models
        return None
    return modulated_attention  # type: ignore[return-value]


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE, precision β and gain g; ``[B, T, d]``.

        q, k, v = x W_qkv (one fused matrix; q/k rotated by RoPE when the model uses it)
        o_i = g_i · Σ_{j ≤ i} softmax_j(β_i q_i·k_j / √d_h) v_j,   y = o W_out

    No biases. ``backend="sdpa"`` (default) runs ``F.scaled_dot_product_attention``; any other
    value (``"auto"``, ``"reference"``, ``"blockwise"``, ``"triton"``) routes whole-sequence calls
    through neuro-attention's ``modulated_attention`` with that backend (decoding with a cache or
    padding always uses SDPA, which is the same equation).
    """

    supports_cache = True

    def __init__(self, config: DecoderConfig, layer: int, *, backend: str = "sdpa") -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (
            config.n_heads,
            config.kv_heads,
            config.head_dim,
        )
        self.layer = layer
        self.backend = backend
        qkv_out = (config.n_heads + 2 * config.kv_heads) * config.head_dim
        self.qkv = nn.Linear(config.d_model, qkv_out, bias=False)
        self.out = nn.Linear(config.n_heads * config.head_dim, config.d_model, bias=False)

    def residual_projections(self) -> list[nn.Linear]:
        return [self.out]

    def write_kv(self, x: torch.Tensor, ctx: SequenceContext) -> None:
        """Only append the keys/values of ``x [B, T, d]`` to ``ctx.cache`` (no attention, no
        output): what an early-exited token leaves for the later tokens of this layer."""
        if ctx.cache is None:
            raise ValueError("write_kv needs ctx.cache")
        B, T, _ = x.shape
        H, KV = self.n_heads, self.n_kv_heads
        w = self.qkv.weight[H * self.head_dim :]
        k, v = F.linear(x, w).view(B, T, 2 * KV, self.head_dim).split([KV, KV], dim=2)
        (k,) = rotate(ctx.rope, k)
        ctx.cache.update(self.layer, k.transpose(1, 2), v.transpose(1, 2))

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        precision: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV = self.n_heads, self.n_kv_heads
        # split (not slicing): its backward is one concatenation instead of zero-filled copies.
        qk, v = self.qkv(x).view(B, T, H + 2 * KV, self.head_dim).split([H + KV, KV], dim=2)
        # Rotate queries and keys together: one set of elementwise kernels instead of two.
        (qk,) = rotate(ctx.rope, qk)
        q, k = qk.split([H, KV], dim=2)
        if (
            self.backend != "sdpa"
            and ctx.cache is None
            and ctx.mask is None
            and not torch.compiler.is_compiling()
        ):
            op = _attention_op()
            if op is not None:
                hs = (B, T, H)
                scale = None if precision is None else precision[..., None].to(q.dtype).expand(hs)
                head_gain = None if gain is None else gain[..., None].to(q.dtype).expand(hs)
                y = op(q, k, v, causal=True, query_scale=scale, head_gain=head_gain,
                       backend=self.backend)  # fmt: skip
                return self.out(y.reshape(B, T, H * self.head_dim))
        if precision is not None:
            q = q * precision[:, :, None, None].to(q.dtype)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if ctx.cache is not None:
            k, v = ctx.cache.update(self.layer, k, v)
        if H != KV and not _SDPA_GQA:
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        gqa = {"enable_gqa": True} if H != KV and _SDPA_GQA else {}
        if ctx.mask is None and ctx.is_causal and not gqa and k.shape[2] == q.shape[2]:
            y = causal_attention(q, k, v).transpose(1, 2)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=ctx.mask, is_causal=ctx.is_causal, **gqa
            ).transpose(1, 2)
        if gain is not None:
            y = y * gain[:, :, None, None].to(y.dtype)
        return self.out(y.reshape(B, T, H * self.head_dim))


class SwiGLU(nn.Module):
    """``W_down(silu(W_gate x) ⊙ W_up x)`` (Shazeer 2020), gate and up one fused matrix; no biases."""

    def __init__(self, config: DecoderConfig, layer: int, *, hidden: int | None = None) -> None:
        super().__init__()
        f = config.ffn_dim if hidden is None else hidden
        self.gate_up = nn.Linear(config.d_model, 2 * f, bias=False)
        self.down = nn.Linear(f, config.d_model, bias=False)

    def residual_projections(self) -> list[nn.Linear]:
        return [self.down]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class GeluMLP(nn.Module):
    """``W_down GELU(W_up x + b_up) + b_down`` (GPT-2); ``bias=False`` drops both biases."""

    def __init__(
        self, config: DecoderConfig, layer: int, *, bias: bool = True, hidden: int | None = None
    ) -> None:
        super().__init__()
        f = config.ffn_dim if hidden is None else hidden
        self.up = nn.Linear(config.d_model, f, bias=bias)
        self.down = nn.Linear(f, config.d_model, bias=bias)

    def residual_projections(self) -> list[nn.Linear]:
        return [self.down]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


def _ncn_modulator(config: DecoderConfig, **options: Any) -> nn.Module:
    from neuro_models.ncn.config import ControlConfig
    from neuro_models.ncn.control import ControlNetwork

    control = ControlConfig.from_dict(options)
    if config.d_model % control.heads:
        raise ValueError(
            f"modulator: d_model={config.d_model} must be divisible by heads={control.heads}"
        )
    return ControlNetwork(config.d_model, config.n_layers, control, config.norm_eps)


register_mixer("attention", Attention)
register_ffn("swiglu", SwiGLU)
register_ffn("gelu", GeluMLP)
register_modulator("ncn", _ncn_modulator)
