"""Aura's HippocampalTransformer (and SNN-RAG transformer) on the one decoder.

As trained by Aura (reference-systems §3.1; ``HippocampalTransformer.forward``), for tokens
``x_{1..T}``:

    e_t = E[x_t];   z = W_p e_t + b_p;   a = σ(z) on the top k = ⌊ρP⌋ cells, 0 elsewhere
    u_t = e_t + 0.1 (W_r a + b_r)                    place-cell residual
    h⁰_t = Dropout(LayerNorm(u_t + PE(t)))           theta-gamma code PE (or RoPE in attention)
    h^{l+½} = h^l + Dropout(Attn_l(LayerNorm h^l))   prosody and memory query gates (parts.py)
    [SNN-RAG read: h^{l+½} ← h^{l+½} + g ⊙ m(h^{l+½})]
    h^{l+1} = h^{l+½} + Dropout(FFN_l(LayerNorm h^{l+½}))   GELU MLP with biases (or spiking)
    logits_t = E h^L_t                                tied head, no final norm

On the decoder: the mixer is ``"aura_attention"`` (which owns the attention LayerNorm), the
modulator ``"aura_prosody"``, the FFN ``"gelu"``/``"spiking"``/``"hybrid"``. The decoder has no
part kinds for the embedding, a non-RoPE position code, the embedding norm, LayerNorm or "no final
norm", so :class:`HippocampalTransformer` swaps those modules in after building the decoder (the
embedding table subclass, the position module, the embedding LayerNorm in place of the embedding
dropout, LayerNorm FFN norms, identities for the attention and final norms). The one decoder
loop, KV cache and ``generate`` run unchanged.

Parameter count (tied head; ``P`` place cells, ``θ = 3d`` for the published theta-gamma code (two phase
offsets and an amplitude per dimension), ``d`` for ours (an amplitude) and 0 for RoPE, ``F`` the FFN width)::

    V·d + (2Pd + P + d) + θ + 2d
      + L·[2d + (4d² + 4d) + (d + 1) + 5H + 2d + FFN]       FFN = 2dF + F + d (GELU)

(``4d² + 4d`` biased q/k/v/o, ``d + 1`` memory gate, ``5H`` prosody gate, two LayerNorms.) A spiking
FFN is ``2dF + F + d`` too and a hybrid one twice that plus 1 (neuro-spiking's
``ffn_parameter_count``); a layer with a memory read adds neuro-memory's ``MemoryRetrieval``,
``d² (query) + d² (out) + 2d² + d (gate)`` = ``4d² + d``. The notebook's shape gives 131,605,916
(reference-systems §3.3; asserted in the tests).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neuro_memory import EpisodicParams, PlaceCellParams, ThetaGammaParams
from neuro_models.aura.config import AuraConfig
from neuro_models.aura.parts import (
    EmbeddingNorm,
    HippocampalAttention,
    MemoryBank,
    PlaceCellEmbedding,
    ThetaGammaPositions,
)
from neuro_models.decoder import Decoder, DecoderConfig, KVCache, Part, shape_kwargs


def decoder_config(config: AuraConfig) -> DecoderConfig:
    """The :class:`~neuro_models.decoder.DecoderConfig` of an Aura configuration (positions
    ``"learned"`` stand for the theta-gamma code, whose module replaces the learned table)."""
    retrieval = config.retrieval
    mixers = []
    for i in range(config.n_layers):
        options: dict[str, Any] = {"memory_gate": config.memory_gate}
        if retrieval is not None and i in config.retrieval_layers:
            r = retrieval
            options["retrieval"] = {
                "k": r.k,
                "query": r.query,
                "aggregate": r.aggregate,
                "temperature": r.temperature,
                "capacity": r.capacity,
            }
        mixers.append(Part("aura_attention", options))
    ffns = []
    for i in range(config.n_layers):
        if i in config.snn_layers:
            ffns.append(Part(config.snn_ffn, dict(config.snn_options)))
        elif config.ffn == "gelu":
            ffns.append(Part("gelu", {"bias": True}))
        else:
            ffns.append(Part(config.ffn, dict(config.snn_options)))
    return DecoderConfig(
        **shape_kwargs(config),
        n_kv_heads=config.n_heads,
        positions="rope" if config.positions == "rope" else "learned",
        rope_theta=config.rope_theta,
        init_std=0.02,
        scaled_residual_init=config.init == "decoder",
        tie_embeddings=True,
        dropout=config.dropout,
        mixer=tuple(mixers),
        ffn=tuple(ffns),
        modulator=Part(
            "aura_prosody", {"source": config.prosody, "amygdala_seed": config.amygdala_seed}
        ),
    )


class HippocampalTransformer(Decoder):
    """Aura's language model: ``tokens [B, T] -> logits [B, T, V]`` (equations in the module
    docstring); the SNN-RAG transformer is the same class with :func:`snn_rag_config`.

    ``config`` is the :class:`AuraConfig`, ``spec`` the decoder configuration built from it.
    ``memory`` is the :class:`MemoryBank` (None unless some layer reads it or ``store_memory``
    is on). Nothing in a forward pass writes to it unless ``config.store_memory`` (published:
    the per-sequence mean of the final hidden states, every call); fill it with
    :meth:`write_memory` (or ``memory.load``) between calls, so that calls stay independent.

    Init, ``init="decoder"``: every Linear and the embedding N(0, 0.02), biases 0, LayerNorms
    (1, 0), residual projections (attention and FFN outputs) N(0, 0.02/√(2L)); place-cell
    prototypes U(±1/√d). ``init="published"``: PyTorch's default for every Linear (Aura sets none),
    the embedding N(0, 0.02); the theta-gamma offsets N(0, 0.1²) in both.
    """

    def __init__(self, config: AuraConfig) -> None:
        if not isinstance(config, AuraConfig):
            raise ValueError(f"config must be an AuraConfig, got {type(config).__name__}")
        super().__init__(decoder_config(config))
        self.config = config
        d, eps = config.d_model, config.norm_eps
        place = None
        if config.place_cells:
            place = PlaceCellParams(
                n_cells=config.n_place_cells,
                sparsity=config.place_sparsity,
                residual_scale=config.place_residual_scale,
                learnable_prototypes=config.place_learnable,
                k_rule=config.place_k_rule,
            )
        self.embed = PlaceCellEmbedding(config.vocab_size, d, place)
        self.lm_head.weight = self.embed.weight
        if config.positions != "rope":
            published = config.positions == "published_theta_gamma"
            self.pos = ThetaGammaPositions(  # type: ignore[assignment]
                ThetaGammaParams(
                    dim=d,
                    variant="published" if published else "multiscale",
                    gamma_per_theta=config.gamma_per_theta,
                    max_seq_len=config.max_seq_len if published else None,
                ),
                scale=config.position_scale,
            )
        self.embed_dropout = EmbeddingNorm(d, eps, config.dropout)  # type: ignore[assignment]
        for block in self.layers:
            block.attn_norm = nn.Identity()
            block.mlp_norm = nn.LayerNorm(d, eps=eps)
        self.norm = nn.Identity()  # type: ignore[assignment]
        self.memory: MemoryBank | None = None
        if config.has_memory:
            capacity = (
                config.retrieval.capacity
                if config.retrieval is not None
                else config.memory_capacity
            )
            self.memory = MemoryBank(d, EpisodicParams(capacity=capacity))
            for i in config.retrieval_layers:
                attn = self.layers[i].attn
                assert isinstance(attn, HippocampalAttention)
                attn.attach_memory(self.memory)
        self._ready = True
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw every weight (see the class docstring)."""
        super().reset_parameters()
        if not getattr(self, "_ready", False):
            return  # the decoder's own call, before the Aura modules are in place
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.config.init == "published":
            for module in self.modules():
                if isinstance(module, nn.Linear) and module is not self.lm_head:
                    module.reset_parameters()

    def write_memory(self, keys: torch.Tensor, values: torch.Tensor | None = None) -> None:
        """Store ``keys [M, d]`` (values default to the keys) in the bank, e.g. mean-pooled
        hidden states of documents (:meth:`pooled_states`)."""
        if self.memory is None:
            raise ValueError("this model has no memory bank (retrieval=None, store_memory=False)")
        self.memory.write(keys, values)

    @torch.no_grad()
    def pooled_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` mean over positions of the final hidden states (what ``store_memory``
        writes), without writing anything."""
        h = Decoder._trunk(self, tokens, None, None, False)[0]
        return h.mean(1)

    def place_activity(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, P]`` sparse place-cell activity of ``tokens`` (published ``place_cell_activity``,
        for the sparsity term of ``HippocampalLoss``)."""
        embed = self.embed
        assert isinstance(embed, PlaceCellEmbedding)
        return embed.code(tokens).activity

    def empty_cache(self, batch: int, device: torch.device | None = None) -> KVCache:
        """A cache holding zero positions (as :meth:`new_cache`)."""
        return self.new_cache(batch, device=device)

    def _trunk(
        self,
        tokens: torch.Tensor,
        cache: KVCache | None,
        attention_mask: torch.Tensor | None,
        output_layers: bool,
    ) -> tuple[torch.Tensor, Any, tuple[torch.Tensor, ...] | None]:
        h, signals, layers = super()._trunk(tokens, cache, attention_mask, output_layers)
        if self.config.store_memory and self.memory is not None and h.shape[1] > 0:
            # Published store_memory: the sequence-mean final state of each row, every call.
            if attention_mask is None:
                pooled = h.detach().mean(1)
            else:
                w = attention_mask.to(h.dtype)[..., None]
                pooled = (h.detach() * w).sum(1) / w.sum(1).clamp_min(1)
            self.memory.write(pooled.float())
        return h, signals, layers


def count_formula(config: AuraConfig) -> int:
    """The parameter count of the module docstring, from the config alone (GELU, spiking and
    hybrid FFNs; memory reads)."""
    V, d, L, H, F = (
        config.vocab_size,
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.ffn_dim,
    )
    P = config.n_place_cells
    total = V * d + 2 * d
    if config.place_cells:
        total += 2 * P * d + P + d
    if config.positions == "published_theta_gamma":
        total += 3 * d
    elif config.positions == "theta_gamma":
        total += d
    gelu = 2 * d * F + F + d
    for i in range(L):
        kind = config.snn_ffn if i in config.snn_layers else config.ffn
        ffn = 2 * gelu + 1 if kind == "hybrid" else gelu
        memory_gate = d + 1 if config.memory_gate else 0
        total += 2 * d + 4 * d * d + 4 * d + memory_gate + 5 * H + 2 * d + ffn
        if i in config.retrieval_layers:
            total += 4 * d * d + d
    return total
