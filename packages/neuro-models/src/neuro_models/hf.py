"""Weight conversion between :class:`~neuro_models.llama.Llama` and ``transformers``' ``LlamaForCausalLM``.

Needs the optional extra ``neuro-models[hf]`` (``transformers``), imported only inside functions.

RoPE layout: both sides rotate the pairs ``(i, i + d_h/2)`` of each head ("rotate half"), so
queries and keys copy over unchanged. (Meta's original checkpoints pair ``(2i, 2i+1)``; HF's own
conversion script permutes the rows of ``W_q``/``W_k`` per head to reach this layout, which is the
layout we use natively.) Our fused ``qkv`` and ``gate_up`` matrices are split into HF's
``q_proj/k_proj/v_proj`` and ``gate_proj/up_proj`` and concatenated back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from neuro_models.config import LlamaConfig
from neuro_models.decoder import Decoder
from neuro_models.llama import Attention, Block, Llama, SwiGLU, rope_table

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "neuro_models.hf needs the optional extra: pip install 'neuro-models[hf]'"
        ) from err
    return transformers


def to_hf_config(config: LlamaConfig) -> Any:
    """The ``transformers.LlamaConfig`` describing the same architecture as ``config``."""
    transformers = _transformers()
    return transformers.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ffn_dim,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.max_seq_len,
        initializer_range=config.init_std,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
    )


def _rope(hf_config: Any) -> tuple[float, str]:
    """(θ, rope type) from a transformers 4.x (``rope_theta``/``rope_scaling``) or 5.x config."""
    params = getattr(hf_config, "rope_parameters", None)
    if isinstance(params, dict):
        return float(params.get("rope_theta", 10000.0)), str(params.get("rope_type", "default"))
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    return float(getattr(hf_config, "rope_theta", 10000.0)), str(kind)


def from_hf_config(hf_config: Any) -> LlamaConfig:
    """Our :class:`LlamaConfig` for a ``transformers.LlamaConfig``.

    Raises:
        ValueError: naming the HF field we do not implement (biases, non-SiLU activation, RoPE
            scaling such as Llama 3.1's ``llama3`` type, a head width other than d / H).
    """
    theta, kind = _rope(hf_config)
    if kind != "default":
        raise ValueError(f"hf_config.rope_parameters: RoPE type {kind!r} is not supported")
    for field in ("attention_bias", "mlp_bias"):
        if getattr(hf_config, field, False):
            raise ValueError(f"hf_config.{field}: biases are not supported")
    if hf_config.hidden_act != "silu":
        raise ValueError(f"hf_config.hidden_act must be 'silu', got {hf_config.hidden_act!r}")
    head_dim = getattr(hf_config, "head_dim", None)
    if head_dim is not None and head_dim * hf_config.num_attention_heads != hf_config.hidden_size:
        raise ValueError(
            f"hf_config.head_dim ({head_dim}) must equal hidden_size / num_attention_heads"
        )
    return LlamaConfig(
        vocab_size=hf_config.vocab_size,
        d_model=hf_config.hidden_size,
        n_layers=hf_config.num_hidden_layers,
        n_heads=hf_config.num_attention_heads,
        n_kv_heads=hf_config.num_key_value_heads or hf_config.num_attention_heads,
        ffn_dim=hf_config.intermediate_size,
        rope_theta=theta,
        norm_eps=float(hf_config.rms_norm_eps),
        tie_embeddings=bool(hf_config.tie_word_embeddings),
        max_seq_len=hf_config.max_position_embeddings,
        init_std=float(hf_config.initializer_range),
    )


def llama_config_of(model: Decoder) -> LlamaConfig:
    """The :class:`LlamaConfig` of a decoder whose forward is a plain Llama: a :class:`Llama`, or
    any :class:`~neuro_models.decoder.Decoder` (e.g. a NeuroLlama with every toggle off) with RoPE,
    ``attention`` mixers, ``swiglu`` FFNs, no modulator and no dropout. Extra heads that do not
    enter the logits (NeuroLlama's exit and prediction heads) are not part of it.

    Raises:
        ValueError: naming the part that is not a Llama's.
    """
    if isinstance(model, Llama):
        return model.config
    if not isinstance(model, Decoder):
        raise ValueError(f"model must be a neuro_models Decoder, got {type(model).__name__}")
    c = model.spec
    for i, block in enumerate(model.layers):
        assert isinstance(block, Block)
        if not isinstance(block.attn, Attention) or not isinstance(block.mlp, SwiGLU):
            raise ValueError(
                f"model: layer {i} has {type(block.attn).__name__}/{type(block.mlp).__name__}, "
                "not the Llama attention/SwiGLU (turn the neuro toggles off to export the backbone)"
            )
    if model.modulator is not None or c.positions != "rope" or c.dropout:
        raise ValueError("model: a modulator, learned positions or dropout are not a Llama's")
    return LlamaConfig(vocab_size=c.vocab_size, d_model=c.d_model, n_layers=c.n_layers,
                       n_heads=c.n_heads, n_kv_heads=c.kv_heads, ffn_dim=c.ffn_dim,
                       rope_theta=c.rope_theta, norm_eps=c.norm_eps,
                       tie_embeddings=c.tie_embeddings, max_seq_len=c.max_seq_len,
                       init_std=c.init_std)  # fmt: skip


def _hf_state_dict(model: Decoder) -> dict[str, torch.Tensor]:
    c = llama_config_of(model)
    q_rows, kv_rows = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    sd = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    for i, block in enumerate(model.layers):
        assert isinstance(block, Block)
        assert isinstance(block.attn, Attention)
        assert isinstance(block.mlp, SwiGLU)
        p = f"model.layers.{i}."
        q, k, v = block.attn.qkv.weight.split([q_rows, kv_rows, kv_rows], dim=0)
        gate, up = block.mlp.gate_up.weight.chunk(2, dim=0)
        sd |= {
            p + "input_layernorm.weight": block.attn_norm.weight,
            p + "self_attn.q_proj.weight": q,
            p + "self_attn.k_proj.weight": k,
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": block.attn.out.weight,
            p + "post_attention_layernorm.weight": block.mlp_norm.weight,
            p + "mlp.gate_proj.weight": gate,
            p + "mlp.up_proj.weight": up,
            p + "mlp.down_proj.weight": block.mlp.down.weight,
        }
    sd["lm_head.weight"] = model.lm_head.weight
    return {k: v.detach().clone() for k, v in sd.items()}


def to_hf(model: Decoder) -> LlamaForCausalLM:
    """A ``transformers.LlamaForCausalLM`` with ``model``'s weights (copied), dtype and device.

    ``model``: a :class:`Llama` or any decoder whose forward is a Llama's (see
    :func:`llama_config_of`; a NeuroLlama backbone with its toggles off).

    Raises:
        ValueError: ``model`` is not a Llama-shaped decoder.
    """
    config = llama_config_of(model)
    transformers = _transformers()
    ref = model.embed.weight
    hf = transformers.LlamaForCausalLM(to_hf_config(config)).to(ref.device, ref.dtype)
    missing, unexpected = hf.load_state_dict(_hf_state_dict(model), strict=False)
    # With tied embeddings HF may list lm_head.weight as missing; it shares embed_tokens.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"HF state dict mismatch: missing {missing}, unexpected {unexpected}")
    if config.tie_embeddings:
        hf.tie_weights()
    return hf.eval() if not model.training else hf


def from_hf(hf_model: Any) -> Llama:
    """A :class:`Llama` with the weights (copied), dtype and device of a ``LlamaForCausalLM``.

    Raises:
        ValueError: ``hf_model`` is not a ``LlamaForCausalLM`` or uses a feature we do not
            implement (see :func:`from_hf_config`).
    """
    transformers = _transformers()
    if not isinstance(hf_model, transformers.LlamaForCausalLM):
        raise ValueError(f"hf_model must be a LlamaForCausalLM, got {type(hf_model).__name__}")
    config = from_hf_config(hf_model.config)
    sd = hf_model.state_dict()
    ref = sd["model.embed_tokens.weight"]
    with torch.device("meta"):
        model = Llama(config)
    model = model.to_empty(device=ref.device).to(ref.dtype)
    if config.tie_embeddings:
        # to_empty gives every parameter its own storage, which unties them.
        model.lm_head.weight = model.embed.weight
    # to_empty leaves the (non-persistent) RoPE tables uninitialized: recompute them.
    cos, sin = rope_table(config.head_dim, config.max_seq_len, config.rope_theta)
    model.rope_cos, model.rope_sin = cos.to(ref.device, ref.dtype), sin.to(ref.device, ref.dtype)
    with torch.no_grad():
        model.embed.weight.copy_(ref)
        model.norm.weight.copy_(sd["model.norm.weight"])
        if not config.tie_embeddings:
            model.lm_head.weight.copy_(sd["lm_head.weight"])
        for i, block in enumerate(model.layers):
            assert isinstance(block, Block)
            assert isinstance(block.attn, Attention)
            assert isinstance(block.mlp, SwiGLU)
            p = f"model.layers.{i}."
            block.attn_norm.weight.copy_(sd[p + "input_layernorm.weight"])
            block.mlp_norm.weight.copy_(sd[p + "post_attention_layernorm.weight"])
            qkv = [sd[p + f"self_attn.{n}_proj.weight"] for n in "qkv"]
            block.attn.qkv.weight.copy_(torch.cat(qkv, dim=0))
            block.attn.out.weight.copy_(sd[p + "self_attn.o_proj.weight"])
            gate_up = [sd[p + f"mlp.{n}_proj.weight"] for n in ("gate", "up")]
            block.mlp.gate_up.weight.copy_(torch.cat(gate_up, dim=0))
            block.mlp.down.weight.copy_(sd[p + "mlp.down_proj.weight"])
    return model.train(hf_model.training)


__all__ = ["from_hf", "from_hf_config", "llama_config_of", "to_hf", "to_hf_config"]
