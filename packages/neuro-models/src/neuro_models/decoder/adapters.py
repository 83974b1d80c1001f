"""Parts built from the component packages' modules, registered on import.

Mixers: ``"neuro_attention"`` (neuro-attention's :class:`~neuro_attention.NeuroAttention` with any
of its mechanisms; options are its config fields other than the shape), ``"hebbian"``
(neuro-plasticity's :class:`~neuro_plasticity.HebbianAttention`). FFNs: ``"spiking"`` and
``"hybrid"`` (neuro-spiking's :class:`~neuro_spiking.SpikingFFN` / :class:`~neuro_spiking.HybridFFN`,
hidden width ``ffn_dim``). Both mixers decode incrementally: their state (keys, values and the
mechanisms' running state) lives in ``KVCache.state`` under ``"mixer{layer}"``. The NeuroAttention
mixer also takes left padding; the Hebbian one does not.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neuro_models.decoder.config import DecoderConfig
from neuro_models.decoder.functional import rotate
from neuro_models.decoder.parts import SequenceContext, register_ffn, register_mixer

_SHAPE_FIELDS = ("d_model", "num_heads", "num_kv_heads", "head_dim")


class NeuroAttentionMixer(nn.Module):
    """:class:`~neuro_attention.NeuroAttention` as a token mixer: RoPE from the decoder (applied to
    q and k inside the layer), the modulator's β and g as ``query_scale`` and ``head_gain``; its
    decoding cache (:class:`~neuro_attention.NeuroAttentionCache`) kept in ``KVCache.state``."""

    supports_cache = True

    def __init__(self, config: DecoderConfig, layer: int, **options: Any) -> None:
        super().__init__()
        from neuro_attention import NeuroAttention, NeuroAttentionConfig

        clash = sorted(set(options) & set(_SHAPE_FIELDS))
        if clash:
            raise ValueError(f"neuro_attention: {clash} come from the DecoderConfig, not options")
        if options.get("adaptive_temperature"):
            raise ValueError(
                "neuro_attention: adaptive_temperature needs the previous layer's entropy, "
                "which the decoder does not pass yet"
            )
        self.heads = config.n_heads
        self.key = f"mixer{layer}"
        self.attn = NeuroAttention(
            NeuroAttentionConfig(
                d_model=config.d_model,
                num_heads=config.n_heads,
                num_kv_heads=config.kv_heads,
                **options,
            )
        )

    def residual_projections(self) -> list[nn.Linear]:
        return [self.attn.wo]

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        precision: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        rope = ctx.rope

        def rotary(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            q, k = rotate(rope, q, k)
            return q, k

        hs = (b, t, self.heads)
        scale = None if precision is None else precision[..., None].to(x.dtype).expand(hs)
        head_gain = None if gain is None else gain[..., None].to(x.dtype).expand(hs)
        state = None
        if ctx.cache is not None:
            state = ctx.cache.state.get(self.key)
            if state is None:
                state = self.attn.new_cache(b, device=x.device, dtype=ctx.cache.k[0].dtype)
        out = self.attn(x, query_scale=scale, head_gain=head_gain,
                        rotary=rotary if rope is not None else None, cache=state,
                        key_padding_mask=ctx.keys)  # fmt: skip
        if ctx.cache is not None:
            ctx.cache.state[self.key] = out.cache
        result: torch.Tensor = out.out
        return result


class HebbianMixer(nn.Module):
    """:class:`~neuro_plasticity.HebbianAttention` (causal attention with a Hebbian fast-weight
    logit term) as a token mixer; it has its own positional handling (none) and no modulation.
    Decodes incrementally (its :class:`~neuro_plasticity.HebbianCache` in ``KVCache.state``);
    no left padding."""

    supports_cache = True

    def __init__(self, config: DecoderConfig, layer: int, **options: Any) -> None:
        super().__init__()
        from neuro_plasticity import HebbianAttention

        self.key = f"mixer{layer}"
        self.attn = HebbianAttention(config.d_model, config.n_heads, **options)

    def residual_projections(self) -> list[nn.Linear]:
        return [self.attn.out]

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        precision: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ctx.keys is not None:
            raise ValueError("hebbian: this mixer takes no left padding (attention_mask)")
        if precision is not None or gain is not None:
            raise ValueError("hebbian: this mixer takes no precision/gain modulation")
        if ctx.cache is None:
            out: torch.Tensor = self.attn(x)
            return out
        y, state = self.attn.decode(x, ctx.cache.state.get(self.key))
        ctx.cache.state[self.key] = state
        return y


def _spiking(config: DecoderConfig, layer: int, **options: Any) -> nn.Module:
    from neuro_spiking import SpikingFFN

    return SpikingFFN(config.d_model, config.ffn_dim, **options)


def _hybrid(config: DecoderConfig, layer: int, **options: Any) -> nn.Module:
    from neuro_spiking import HybridFFN

    return HybridFFN(config.d_model, config.ffn_dim, **options)


register_mixer("neuro_attention", NeuroAttentionMixer)
register_mixer("hebbian", HebbianMixer)
register_ffn("spiking", _spiking)
register_ffn("hybrid", _hybrid)
