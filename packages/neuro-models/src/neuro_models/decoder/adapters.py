"""Parts built from the component packages' modules, registered on import.

Mixers: ``"neuro_attention"`` (neuro-attention's :class:`~neuro_attention.NeuroAttention` with any
of its mechanisms; options are its config fields other than the shape), ``"hebbian"``
(neuro-plasticity's :class:`~neuro_plasticity.HebbianAttention`). FFNs: ``"spiking"`` and
``"hybrid"`` (neuro-spiking's :class:`~neuro_spiking.SpikingFFN` / :class:`~neuro_spiking.HybridFFN`,
hidden width ``ffn_dim``). None of these mixers decodes incrementally yet (``supports_cache`` is
False: :meth:`Decoder.new_cache` says so and generation recomputes the prefix), and none accepts
left padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neuro_models.decoder.config import DecoderConfig
from neuro_models.decoder.functional import apply_rope
from neuro_models.decoder.parts import SequenceContext, register_ffn, register_mixer

_SHAPE_FIELDS = ("d_model", "num_heads", "num_kv_heads", "head_dim")


def _no_padding(name: str, ctx: SequenceContext) -> None:
    if ctx.keys is not None or ctx.mask is not None or ctx.cache is not None:
        raise ValueError(
            f"{name}: this mixer runs whole unpadded sequences only (no cache, no attention_mask)"
        )


class NeuroAttentionMixer(nn.Module):
    """:class:`~neuro_attention.NeuroAttention` as a token mixer: RoPE from the decoder (applied to
    q and k inside the layer), the modulator's β and g as ``query_scale`` and ``head_gain``."""

    supports_cache = False

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
        _no_padding("neuro_attention", ctx)
        b, t, _ = x.shape
        rotary = None
        if ctx.rope is not None:
            cos, sin = ctx.rope

            def rotary(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return (apply_rope(q, cos.to(q.dtype), sin.to(q.dtype)),
                        apply_rope(k, cos.to(k.dtype), sin.to(k.dtype)))  # fmt: skip

        hs = (b, t, self.heads)
        scale = None if precision is None else precision[..., None].to(x.dtype).expand(hs)
        head_gain = None if gain is None else gain[..., None].to(x.dtype).expand(hs)
        out: torch.Tensor = self.attn(x, query_scale=scale, head_gain=head_gain, rotary=rotary).out
        return out


class HebbianMixer(nn.Module):
    """:class:`~neuro_plasticity.HebbianAttention` (causal attention with a Hebbian fast-weight
    logit term) as a token mixer; it has its own positional handling (none) and no modulation."""

    supports_cache = False

    def __init__(self, config: DecoderConfig, layer: int, **options: Any) -> None:
        super().__init__()
        from neuro_plasticity import HebbianAttention

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
        _no_padding("hebbian", ctx)
        if precision is not None or gain is not None:
            raise ValueError("hebbian: this mixer takes no precision/gain modulation")
        out: torch.Tensor = self.attn(x)
        return out


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
