"""The iso-parameter Llama-style baseline decoder (``specs/reference-systems.md`` §6.1).

    h = x + Attn(RMSNorm(x)),   y = h + SwiGLU(RMSNorm(h)),   logits = RMSNorm(y_L) Wᵀ

Attention is causal grouped-query attention through ``F.scaled_dot_product_attention`` with rotary
position embeddings (Su et al. 2021, "RoFormer") applied to queries and keys; the MLP is SwiGLU
(Shazeer 2020): ``W_down(silu(W_gate x) ⊙ W_up x)``. No biases anywhere. Init: every matrix
N(0, σ), the two residual output projections of each block N(0, σ/√(2L)) (GPT-2, Radford et al.
2019).

What we changed from Meta's reference ``model.py`` and why:

* q/k/v are one fused ``qkv`` matrix and gate/up one ``gate_up`` matrix (fewer, larger matmuls; the
  HF converter splits them). RoPE uses the rotate-half layout (pairs ``(i, i + d_h/2)``) of
  ``transformers``, not Meta's interleaved pairs ``(2i, 2i+1)``: it is cheaper in eager PyTorch and
  makes HF conversion a plain copy. The two layouts differ by a fixed permutation of the rows of
  ``W_q`` and ``W_k`` per head (what HF's conversion script applies to Meta checkpoints).
* Batched generation with left padding: ``attention_mask`` marks real tokens; positions count only
  real tokens (as HF does), and each query may always see itself so that all-padding rows stay
  finite.

It is a configuration of the one decoder (:mod:`neuro_models.decoder`): mixer ``"attention"``,
FFN ``"swiglu"``, no modulator, no dropout; :class:`Llama` adds only the typed
:class:`~neuro_models.config.LlamaConfig` and the conversion to a
:class:`~neuro_models.decoder.DecoderConfig`.

Layout: tokens ``[B, T]``, activations ``[B, T, d]``, attention ``[B, H, T, d_h]`` inside SDPA.
"""

from __future__ import annotations

from neuro_models.config import LlamaConfig
from neuro_models.decoder import (
    LOSS_CHUNK,
    Attention,
    Block,
    Decoder,
    DecoderConfig,
    KVCache,
    Part,
    SwiGLU,
    apply_rope,
    rope_table,
)


def decoder_config(config: LlamaConfig) -> DecoderConfig:
    """The :class:`~neuro_models.decoder.DecoderConfig` of a Llama configuration."""
    return DecoderConfig(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads,
        ffn_dim=config.ffn_dim,
        max_seq_len=config.max_seq_len,
        positions="rope",
        rope_theta=config.rope_theta,
        norm_eps=config.norm_eps,
        init_std=config.init_std,
        scaled_residual_init=True,
        tie_embeddings=config.tie_embeddings,
        dropout=0.0,
        mixer=Part("attention"),
        ffn=Part("swiglu"),
    )


class Llama(Decoder):
    """Llama-style decoder: ``tokens [B, T] -> logits [B, T, V]``.

    Blocks live in ``self.layers`` (an ``nn.ModuleList`` of plain modules) so that FSDP can wrap
    them one by one. Build on the meta device (``with torch.device("meta"): Llama(cfg)``) to count
    parameters of large presets without allocating them. ``config`` is the
    :class:`~neuro_models.config.LlamaConfig`; ``spec`` the decoder configuration built from it.
    Everything else (``forward``, ``run``, ``hidden_states``, ``loss``, ``new_cache``) is
    :class:`~neuro_models.decoder.Decoder`'s.
    """

    def __init__(self, config: LlamaConfig) -> None:
        if not isinstance(config, LlamaConfig):
            raise ValueError(f"config must be a LlamaConfig, got {type(config).__name__}")
        super().__init__(decoder_config(config))
        self.config = config


__all__ = [
    "LOSS_CHUNK",
    "Attention",
    "Block",
    "KVCache",
    "Llama",
    "SwiGLU",
    "apply_rope",
    "decoder_config",
    "rope_table",
]
