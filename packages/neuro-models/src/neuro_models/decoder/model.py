"""The one pre-norm decoder every reference model is a configuration of.

Layer l at token t, with optional signals ``(g, β, γ) = (gain, precision, gate)[t, l]`` from a
modulator (all 1 without one):

    a = Mixer(RMSNorm(x); β)                 β scales the attention logits of query t
    x = x + drop(g · a)
    x = x + drop(g · γ · FFN(RMSNorm(x)))
    logits = RMSNorm(x_L) Wᵀ                 W the token embedding when tied

with positions either rotary (inside the mixer) or a learned table added to the embedding, and
dropout on the embedding too. The Llama baseline (:class:`~neuro_models.llama.Llama`) is this with
``mixer="attention"``, ``ffn="swiglu"``, no modulator and no dropout; the NCN model
(:class:`~neuro_models.ncn.NCNModel`) adds the ``"ncn"`` modulator (and, for its published GPT-2
backbone, learned positions and a GELU MLP with biases). There is one attention path, one cache
(:class:`~neuro_models.decoder.KVCache`) and one :func:`~neuro_models.generate.generate`.

Layout: tokens ``[B, T]``, activations ``[B, T, d]``, attention ``[B, H, T, d_h]`` inside SDPA,
signals ``[B, T, L]``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from neuro_core.ops import RMSNorm
from neuro_core.validation import check_tensor
from neuro_models.decoder.cache import KVCache
from neuro_models.decoder.config import DecoderConfig
from neuro_models.decoder.functional import LOSS_CHUNK, _LinearCrossEntropy, rope_table
from neuro_models.decoder.parts import SequenceContext, build_ffn, build_mixer, build_modulator


class DecoderOutput(NamedTuple):
    """``logits [B, T, V]``; ``signals`` of the modulator (None without one); ``cache`` (the one
    passed in, advanced; None without); ``layers``: when requested (else None), the ``L + 1``
    residual streams ``[B, T, d]``: the block input (embedding stream) and each block's output."""

    logits: torch.Tensor
    signals: Any
    cache: KVCache | None
    layers: tuple[torch.Tensor, ...] | None = None


class Block(nn.Module):
    """Pre-norm block: ``x + drop(g·Mixer(norm(x); β))`` then ``x + drop(g·γ·FFN(norm(x)))``."""

    def __init__(self, config: DecoderConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = build_mixer(config, layer)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = build_ffn(config, layer)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        gain: torch.Tensor | None = None,
        precision: torch.Tensor | None = None,
        gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if gain is None and precision is None:
            a = self.attn(self.attn_norm(x), ctx)
        else:
            a = self.attn(self.attn_norm(x), ctx, precision, gain)
        x = x + (a if self.dropout is None else self.dropout(a))
        f = self.mlp(self.mlp_norm(x))
        scale = gain if gate is None else (gate if gain is None else gain * gate)
        if scale is not None:
            f = f * scale[..., None].to(f.dtype)
        return x + (f if self.dropout is None else self.dropout(f))


class Decoder(nn.Module):
    """Decoder-only LM built from a :class:`DecoderConfig`: ``tokens [B, T] -> logits [B, T, V]``.

    Blocks live in ``self.layers`` (an ``nn.ModuleList`` of plain modules, so FSDP can wrap them
    one by one); the modulator, if any, in ``self.modulator``. Build on the meta device to count
    parameters of large configurations without allocating them.

    Init: every Linear and Embedding N(0, σ) in module order (a tied weight is drawn once), biases
    0, norms 1; then each part's own ``reset_part_parameters()``; then, with
    ``scaled_residual_init``, the parts' residual projections N(0, σ/√(2L)).
    """

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        if not isinstance(config, DecoderConfig):
            raise ValueError(f"config must be a DecoderConfig, got {type(config).__name__}")
        self.spec = config
        # Subclasses replace it by their own typed config (LlamaConfig, NCNConfig).
        self.config: Any = config
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        self.pos = nn.Embedding(config.max_seq_len, d) if config.positions == "learned" else None
        self.embed_dropout = nn.Dropout(config.dropout) if config.dropout > 0 else None
        self.modulator = build_modulator(config)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(d, config.norm_eps)
        if config.tie_embeddings:
            # Built on the meta device (no allocation, no random draw), then tied.
            self.lm_head = nn.Linear(d, config.vocab_size, bias=False, device="meta")
            self.lm_head.weight = self.embed.weight
        else:
            self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        if config.positions == "rope":
            cos, sin = rope_table(config.head_dim, config.max_seq_len, config.rope_theta)
        else:
            cos = sin = torch.zeros(0)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw every weight (see the class docstring)."""
        std = self.spec.init_std
        drawn: set[int] = set()
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                if id(module.weight) not in drawn:
                    nn.init.normal_(module.weight, mean=0.0, std=std)
                    drawn.add(id(module.weight))
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        for module in self.modules():
            reset = getattr(module, "reset_part_parameters", None)
            if module is not self and callable(reset):
                reset()
        if self.spec.scaled_residual_init:
            residual_std = std / math.sqrt(2 * self.spec.n_layers)
            for block in self.layers:
                for part in (block.attn, block.mlp):
                    projections = getattr(part, "residual_projections", None)
                    for linear in projections() if callable(projections) else ():
                        nn.init.normal_(linear.weight, mean=0.0, std=residual_std)

    # ---------------------------------------------------------------- public API

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` of the next token at every position; see :meth:`run`."""
        return self.lm_head(self.hidden_states(tokens, cache=cache, attention_mask=attention_mask))

    def run(
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        output_layers: bool = False,
    ) -> DecoderOutput:
        """Logits, modulator signals and (optionally) every block's output.

        Args:
            tokens: ``[B, T]`` int64/int32 ids in ``[0, vocab_size)``.
            cache: optional :class:`KVCache` (:meth:`new_cache`); the new tokens follow the
                ``cache.length`` cached ones and are appended to it (``length`` advances by T).
            attention_mask: optional ``[B, T]`` bool, True for real tokens and False for left
                padding (positions count real tokens only). Padded positions get finite but
                meaningless logits. With a cache, the mask of earlier calls is remembered in it.
            output_layers: also return the ``L + 1`` residual streams (the embedding stream and
                each block's output; for per-layer heads: exit, prediction).
        """
        h, signals, layers = self._trunk(tokens, cache, attention_mask, output_layers)
        return DecoderOutput(self.lm_head(h), signals, cache, layers)

    def hidden_states(
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-normed hidden states ``[B, T, d]`` (``lm_head`` of them gives the logits).

        Raises:
            ValueError: bad ``tokens``/``attention_mask``, or more than ``max_seq_len`` (or
                ``cache.capacity``) positions.
        """
        return self._trunk(tokens, cache, attention_mask, False)[0]

    def loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, *, chunk: int = LOSS_CHUNK
    ) -> torch.Tensor:
        """Mean next-token NLL ``[]`` (fp32) of ``targets [B, T]`` given ``inputs [B, T]``.

        Equal, value and gradients, to ``F.cross_entropy(self(inputs).float().flatten(0, 1),
        targets.flatten())`` (every target must be a valid id: no ``ignore_index``), but
        ``lm_head`` and the cross-entropy run fused over ``chunk`` tokens at a time, so the
        ``[B, T, V]`` logits are never materialized: faster to train, and less memory.
        """
        if chunk < 1:
            raise ValueError(f"chunk must be ≥ 1, got {chunk}")
        check_tensor(
            "targets", targets, shape=tuple(inputs.shape), dtype=(torch.int64, torch.int32)
        )
        h = self.hidden_states(inputs)
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        out: torch.Tensor = _LinearCrossEntropy.apply(
            h.flatten(0, 1), self.lm_head.weight, targets.flatten().long(), chunk, dtype
        )
        return out

    def new_cache(
        self,
        batch: int,
        capacity: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty :class:`KVCache` for this model (device and dtype of its parameters).

        Raises:
            ValueError: a token mixer of this model cannot decode incrementally (recompute the
                prefix instead: ``generate(..., use_cache=False)``).
        """
        for i, block in enumerate(self.layers):
            if not getattr(block.attn, "supports_cache", False):
                raise ValueError(
                    f"layer {i}: mixer {type(block.attn).__name__} has no incremental decoding; "
                    "generate with use_cache=False (recomputes the prefix each step)"
                )
        p = self.embed.weight
        return KVCache(
            self.spec,
            batch,
            capacity,
            device=p.device if device is None else device,
            dtype=p.dtype if dtype is None else dtype,
        )

    # ---------------------------------------------------------------- internals

    def _trunk(
        self,
        tokens: torch.Tensor,
        cache: KVCache | None,
        attention_mask: torch.Tensor | None,
        output_layers: bool,
    ) -> tuple[torch.Tensor, Any, tuple[torch.Tensor, ...] | None]:
        cfg = self.spec
        check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
        B, T = tokens.shape
        start = 0 if cache is None else cache.length
        limit = cfg.max_seq_len if cache is None else cache.capacity
        if start + T > limit:
            raise ValueError(
                f"tokens: sequence of {start + T} positions exceeds "
                f"{'max_seq_len' if cache is None else 'cache.capacity'} = {limit}"
            )
        if not torch.compiler.is_compiling() and T > 0:
            lo, hi = (int(v) for v in torch.aminmax(tokens))
            if lo < 0 or hi >= cfg.vocab_size:
                raise ValueError(
                    f"tokens must lie in [0, {cfg.vocab_size}), got range [{lo}, {hi}]"
                )
        if cache is not None and cache.batch != B:
            raise ValueError(f"cache: built for batch {cache.batch}, tokens have batch {B}")
        if attention_mask is not None:
            check_tensor("attention_mask", attention_mask, shape=(B, T), dtype=torch.bool)
        ctx, positions = self._layout(B, T, start, cache, attention_mask, tokens.device)

        x = self.embed(tokens)
        if self.pos is not None:
            x = x + self.pos(positions)
        if self.embed_dropout is not None:
            x = self.embed_dropout(x)
        signals = None
        if self.modulator is not None:
            state = None if cache is None else cache.state.get("modulator")
            signals, state = self.modulator(x, state, ctx.keys)
            if cache is not None:
                cache.state["modulator"] = state
        layers: list[torch.Tensor] = [x] if output_layers else []
        for i, block in enumerate(self.layers):
            if signals is None:
                x = block(x, ctx)
            else:
                x = block(x, ctx, signals.gain[..., i], signals.precision[..., i],
                          signals.gate[..., i])  # fmt: skip
            if output_layers:
                layers.append(x)
        if cache is not None:
            cache.length += T
        return self.norm(x), signals, tuple(layers) if output_layers else None

    def _layout(
        self,
        B: int,
        T: int,
        start: int,
        cache: KVCache | None,
        attention_mask: torch.Tensor | None,
        device: torch.device,
    ) -> tuple[SequenceContext, torch.Tensor]:
        """The shared :class:`SequenceContext` and the positions ``[T]`` or ``[B, T]``."""
        rope_on = self.spec.positions == "rope"
        padded = attention_mask is not None or (cache is not None and cache.mask is not None)
        if not padded:
            if cache is not None:
                cache.seen += T
            positions = torch.arange(start, start + T, device=device)
            rope = None
            if rope_on:
                rope = (
                    self.rope_cos[start : start + T][:, None],
                    self.rope_sin[start : start + T][:, None],
                )
            # No padding: SDPA's own causal mask, or no mask at all when T queries see every key.
            if start == 0:
                return SequenceContext(rope, None, T > 1, cache, start, None), positions
            if T == 1:
                return SequenceContext(rope, None, False, cache, start, None), positions
            mask = self._causal(start, T, device)[None, None]
            return SequenceContext(rope, mask, False, cache, start, None), positions

        new = (
            attention_mask
            if attention_mask is not None
            else torch.ones(B, T, dtype=torch.bool, device=device)
        )
        seen = cache.seen if cache is not None else torch.zeros(B, dtype=torch.long, device=device)
        positions = (seen[:, None] + new.long().cumsum(-1) - 1).clamp(min=0)
        if cache is not None:
            cache.seen += new.long().sum(-1)
            if cache.mask is None:
                cache.mask = torch.ones(B, cache.capacity, dtype=torch.bool, device=device)
            cache.mask[:, start : start + T] = new
            keys = cache.mask[:, : start + T]
        else:
            keys = new
        # Query i (absolute start+i) sees real keys j ≤ start+i, and always itself.
        causal = self._causal(start, T, device)
        diag = (
            torch.arange(start + T, device=device)[None, :]
            == (start + torch.arange(T, device=device))[:, None]
        )
        mask = (causal[None] & keys[:, None, :]) | diag[None]
        rope = None
        if rope_on:
            rope = (self.rope_cos[positions][:, :, None], self.rope_sin[positions][:, :, None])
        return SequenceContext(rope, mask[:, None], False, cache, start, keys), positions

    @staticmethod
    def _causal(start: int, T: int, device: torch.device) -> torch.Tensor:
        """``[T, start + T]`` bool, True where key j ≤ query position ``start + i``."""
        q = start + torch.arange(T, device=device)
        return torch.arange(start + T, device=device)[None, :] <= q[:, None]
