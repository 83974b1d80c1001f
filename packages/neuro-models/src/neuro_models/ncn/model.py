"""The NCN language model: a GPT-2-like (published) or Llama-style backbone whose layers consume
the control network's signals.

Layer l at token t, with signals (g, β, γ) = (gain, precision, gate)[t, l]:

    a = Attn(RMSNorm(x); q ← β·q)           precision scales the logits, before the 1/√d_h
    x = x + g · a
    x = x + g · γ · FFN(RMSNorm(x))

(Morgan 2025, §4.1 and the published ``ModulatedLLM``). Without a control network (``control=None``)
the same code is the bare backbone (arm A′). The model is a configuration of the one decoder
(:mod:`neuro_models.decoder`): the control network is its ``"ncn"`` modulator, attention its
``"attention"`` mixer (β as the query scale, g per head before the bias-free output projection),
the FFN ``"gelu"`` with biases (``gpt2``) or ``"swiglu"`` (``llama``); one KV cache
(:class:`~neuro_models.decoder.KVCache`, the pooling keys in ``cache.state["modulator"]``) and one
:func:`~neuro_models.generate.generate`. :func:`modulated_attention_reference` below is the
readable equation the tests compare the attention path against.

Layout: tokens ``[B, T]``, activations ``[B, T, d]``, attention ``[B, T, H, d_h]``, signals
``[B, T, L]``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch
import torch.nn.functional as F

from neuro_models.decoder import (
    Decoder,
    DecoderConfig,
    DecoderOutput,
    KVCache,
    Part,
    shape_kwargs,
)
from neuro_models.ncn.config import NCNConfig
from neuro_models.ncn.control import ControlNetwork, causal_mask

#: Output of :meth:`NCNModel.run`: ``logits``, ``signals`` (None without a control network),
#: ``cache`` (the one passed in, advanced, or None).
NCNOutput = DecoderOutput
#: The cache of incremental decoding is the decoder's one :class:`~neuro_models.decoder.KVCache`.
NCNCache = KVCache


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


def decoder_config(config: NCNConfig) -> DecoderConfig:
    """The :class:`~neuro_models.decoder.DecoderConfig` of an NCN configuration."""
    llama = config.backbone == "llama"
    return DecoderConfig(
        **shape_kwargs(config),
        n_kv_heads=config.n_heads,
        positions="rope" if llama else "learned",
        rope_theta=config.theta,
        init_std=config.init_std,
        scaled_residual_init=llama,
        tie_embeddings=True,
        dropout=config.dropout,
        mixer=Part("attention", {"backend": config.attention_backend}),
        ffn=Part("swiglu") if llama else Part("gelu", {"bias": True}),
        modulator=None
        if config.control is None
        else Part("ncn", dataclasses.asdict(config.control)),
    )


# Parameter names of neuro-models 0.1 NCN checkpoints (its own decoder) -> the one decoder's.
_OLD_KEYS = ((re.compile(r"^blocks\."), "layers."), (re.compile(r"^control\."), "modulator."))


class NCNModel(Decoder):
    """Decoder-only LM with an optional neuromodulatory control network.

    ``model(tokens [B, T]) -> logits [B, T, V]``; :meth:`run` also returns the signals and takes
    and returns a :class:`~neuro_models.decoder.KVCache` for incremental decoding
    (:meth:`empty_cache` starts one). The output head is tied to the token embedding; the control
    network is ``model.control`` (the decoder's ``modulator``).

    Init (published ``_init_weights``): every Linear and Embedding N(0, 0.02), every bias 0,
    norms 1; the pooling's packed in-projection keeps ``nn.MultiheadAttention``'s xavier-uniform
    init and its query N(0, 1); then the control network's signal biases are set per
    ``config.control.init`` (the published code does it before the global init, which erases it).
    The Llama backbone additionally scales residual output projections by 1/√(2L), as the Llama
    baseline does. Bundles of neuro-models 0.1 (keys ``blocks.*``, ``control.*``, ``mlp.up`` for
    SwiGLU, no ``lm_head``) load unchanged.
    """

    def __init__(self, config: NCNConfig) -> None:
        if not isinstance(config, NCNConfig):
            raise ValueError(f"config must be an NCNConfig, got {type(config).__name__}")
        super().__init__(decoder_config(config))
        self.config = config
        self._register_load_state_dict_pre_hook(self._upgrade_keys)

    @property
    def control(self) -> ControlNetwork | None:
        """The control network (the decoder's modulator), or None for the bare backbone."""
        return self.modulator  # type: ignore[return-value]

    def _upgrade_keys(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        if prefix + "blocks.0.attn.qkv.weight" not in state_dict:
            return  # not a 0.1 checkpoint (safetensors' load_model drops tied names itself)
        for key in [k for k in state_dict if k.startswith(prefix)]:
            name = key[len(prefix) :]
            new = name
            for pattern, repl in _OLD_KEYS:
                new = pattern.sub(repl, new)
            if self.config.backbone == "llama":
                new = re.sub(r"^(layers\.\d+\.mlp)\.up\.", r"\1.gate_up.", new)
            if new != name:
                state_dict[prefix + new] = state_dict.pop(key)
        # 0.1 had no lm_head (the head read embed.weight); safetensors' load_model expects the
        # tied name to be missing, so it is not added here.

    def run(  # type: ignore[override]
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        output_layers: bool = False,
    ) -> DecoderOutput:
        """Logits and signals of ``tokens``, which follow the ``cache.length`` cached positions.

        Args:
            tokens: ``[B, T]`` int ids in ``[0, vocab_size)``.
            cache: None for a whole sequence (no cache is returned), or a cache of the earlier
                positions (:meth:`empty_cache` to start one), advanced in place and returned.
            attention_mask: ``[B, T]`` bool, False for left padding (see
                :meth:`~neuro_models.decoder.Decoder.run`); the control network's pooling skips
                padded positions too.
            output_layers: also return the residual stream after each block.

        What the control network sees with a cache: the pooling keys/values of every earlier
        position are cached, so with causal pooling the signals (and logits) are exactly those of
        a full forward pass over the whole prefix. With ``pooling="noncausal"`` each new position
        pools over the prefix that exists so far: the future it saw in training is not available
        at generation time. (The published generation instead feeds the control network the
        current token only, "reactive salience".)
        """
        return super().run(
            tokens, cache=cache, attention_mask=attention_mask, output_layers=output_layers
        )

    def empty_cache(self, batch: int, device: torch.device | None = None) -> KVCache:
        """A cache holding zero positions, for :meth:`run` and generation."""
        return self.new_cache(batch, device=device)
