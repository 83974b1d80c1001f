"""Brain-Inspired LLM v3 (``gowrav-vishwakarma/qllm2`` ``v3/`` @5271bfb), ported; reference-systems §5.1.

Bytes ``x [B, T]`` → logits ``[B, T, 256]``::

    e = Emb(x)                                                       (N(0, 1) init)
    h = Consciousness(e)
    repeat l = 0 … L−1  (STM and LTM shared by every repetition):
        h = STM(h)
        h = h + 0.3 · LTM(h)
        h = Spiking_l(h)
        h = Developmental_l(h)
    logits = W_o h + b_o

There is no attention, recurrence or convolution over time: apart from the consciousness softmax
and the spiking state, position t sees only its own byte (an over-parameterised bigram model,
§5.1). Where the published code is non-causal or couples batch items or calls, a flag of
:class:`~neuro_models.v3.V3Config` selects our causal form (default) or the published one; each
module's docstring gives both.

Why it does not use the shared decoder: no v3 block is a pre-norm residual ``x + f(norm(x))`` (the
memory and spiking steps replace ``h``), its STM/LTM/consciousness modules are shared across the
repetitions, its head has a bias and there is no final norm; the decoder's norms alone would add
``(2L + 1)·d`` parameters and change the computation. The model instead offers what
:func:`neuro_models.generate.generate` reads (``spec``, ``lm_head``, ``hidden_states``), so
sampling uses the one ``generate`` (``use_cache=False``: v3 has no incremental decoding).

Init is the published one: PyTorch defaults for Linear/LayerNorm (U(±1/√fan_in)), N(0, 1) for the
embedding, then ``create_brain_inspired_model``'s draws (global consciousness N(0, 0.01), memory
slots and concepts N(0, 0.02), membrane potentials N(0, 0.1)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_tensor
from neuro_models.v3.config import V3Config

#: c = LN(W_f[aw; at; me; in]) + 0.1 · g  (published constant).
GLOBAL_CONSCIOUSNESS_SCALE = 0.1
#: h ← h + 0.3 · LTM(h)  (published constant).
LTM_SCALE = 0.3
#: LTM(h) = concept + 0.5 · episodic  (published constant).
EPISODIC_SCALE = 0.5
#: Initial value of the STM decay Parameter (never trained: it only enters ``.data`` writes).
STM_DECAY_INIT = 0.95
#: Consolidation into episodic memory when mean |h_L| exceeds it (published ``consolidation_threshold``).
CONSOLIDATION_THRESHOLD = 0.8
#: The developmental modules' branches.
BRANCHES = 3
# Logit of a padded position in the prefix softmax: finite, so leading pads give no NaN.
_PAD_LOGIT = -1e30


class ConsciousnessLayer(nn.Module):
    """Awareness, attention, memory and intention projections fused into per-feature weights.

        aw = tanh(W₁e), at = σ(W₂e), me = tanh(W₃e), in = σ(W₄e)         (all Linear with bias)
        c_t = LayerNorm(W_f [aw; at; me; in]_t) + 0.1 · g                 g: [d] Parameter
        out_t = e_t ⊙ w_t + e_t

    ``softmax="prefix"`` (ours): ``w_t = exp(c_t) / Σ_{s ≤ t} exp(c_s)`` per feature, causal.
    ``softmax="sequence"`` (published): ``w_t = exp(c_t) / Σ_{s ≤ T} exp(c_s)``, which normalises
    each feature over every position, future ones included. It is v3's only token mixing.
    """

    def __init__(self, dim: int, softmax: str) -> None:
        super().__init__()
        self.softmax = softmax
        self.awareness_proj = nn.Linear(dim, dim)
        self.attention_proj = nn.Linear(dim, dim)
        self.memory_proj = nn.Linear(dim, dim)
        self.intention_proj = nn.Linear(dim, dim)
        self.global_consciousness = nn.Parameter(torch.empty(1, 1, dim))
        self.consciousness_fusion = nn.Linear(4 * dim, dim)
        self.consciousness_norm = nn.LayerNorm(dim)

    def logits(self, e: torch.Tensor) -> torch.Tensor:
        """``c [B, T, d]`` before the softmax."""
        states = torch.cat(
            [
                torch.tanh(self.awareness_proj(e)),
                torch.sigmoid(self.attention_proj(e)),
                torch.tanh(self.memory_proj(e)),
                torch.sigmoid(self.intention_proj(e)),
            ],
            dim=-1,
        )
        c = self.consciousness_norm(self.consciousness_fusion(states))
        return c + GLOBAL_CONSCIOUSNESS_SCALE * self.global_consciousness

    def forward(self, e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.logits(e)
        if self.softmax == "sequence":
            w = torch.softmax(c, dim=1)
        else:
            if mask is not None:
                c = c.masked_fill(~mask[..., None], _PAD_LOGIT)
            w = torch.exp(c - torch.logcumsumexp(c, dim=1))
        return e * w + e


class ShortTermMemory(nn.Module):
    """64 gated memory slots M ``[S, d]`` read by every token.

        G = σ(W_g h + b_g)  [B, T, S],   m = G M,   out = LayerNorm(W_u [h; m] + b_u)

    With ``write`` (published ``memory_writes`` in training mode), after the read::

        M ← δ M + (1 − δ) · mean_{b,t}(G) ⊗ mean_{b,t}(h)          (a ``.data`` write, δ = 0.95)

    which mixes batch items and positions and, because the module is shared by the L
    repetitions, changes what the next repetition of the same forward pass reads.
    ``memory_weights`` is never read (kept for the published parameter count).
    """

    def __init__(self, dim: int, memory_size: int) -> None:
        super().__init__()
        self.memory_slots = nn.Parameter(torch.empty(memory_size, dim))
        self.memory_weights = nn.Parameter(torch.empty(memory_size))
        self.memory_update = nn.Linear(2 * dim, dim)
        self.memory_gate = nn.Linear(dim, memory_size)
        self.memory_norm = nn.LayerNorm(dim)
        self.decay_rate = nn.Parameter(torch.empty(()))

    def forward(self, h: torch.Tensor, write: bool = False) -> torch.Tensor:
        gates = torch.sigmoid(self.memory_gate(h))
        retrieved = gates @ self.memory_slots
        out = self.memory_norm(self.memory_update(torch.cat([h, retrieved], dim=-1)))
        if write:
            self._write(h.detach(), gates.detach())
        return out

    @torch.no_grad()
    def _write(self, h: torch.Tensor, gates: torch.Tensor) -> None:
        delta = self.decay_rate.detach()
        update = gates.mean(dim=(0, 1))[:, None] * h.mean(dim=(0, 1))[None, :]
        # .data: invisible to autograd, as published.
        self.memory_slots.data.copy_(delta * self.memory_slots.data + (1 - delta) * update)


class LongTermMemory(nn.Module):
    """Concept (semantic) and episodic memories read by softmax similarity.

        concept  = W_cr softmax((W_c h + b_c) Cᵀ) C + b_cr          C: [N, c] concepts
        episodic = W_er softmax(h Pᵀ) P + b_er                      P: [E, d] patterns
        out      = concept + 0.5 · episodic

    :meth:`consolidate` (published, training only) writes one pattern
    ``mean_{b,t}(h ⊙ σ(W_k h + b_k) ⊙ importance)`` over the least-used episodic slot.
    """

    def __init__(self, dim: int, concept_dim: int, num_concepts: int, episodic_slots: int) -> None:
        super().__init__()
        self.concept_memory = nn.Parameter(torch.empty(num_concepts, concept_dim))
        self.concept_embeddings = nn.Linear(dim, concept_dim)
        self.episodic_memory = nn.Parameter(torch.empty(episodic_slots, dim))
        self.episodic_weights = nn.Parameter(torch.empty(episodic_slots))
        self.concept_retrieval = nn.Linear(concept_dim, dim)
        self.episodic_retrieval = nn.Linear(dim, dim)
        self.consolidation_gate = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        c = self.concept_memory
        concept = torch.softmax(self.concept_embeddings(h) @ c.t(), dim=-1) @ c
        p = self.episodic_memory
        episodic = torch.softmax(h @ p.t(), dim=-1) @ p
        return self.concept_retrieval(concept) + EPISODIC_SCALE * self.episodic_retrieval(episodic)

    @torch.no_grad()
    def consolidate(self, h: torch.Tensor, importance: torch.Tensor) -> None:
        """Overwrite the least-used episodic slot with the gated batch-and-time mean of ``h``."""
        gates = torch.sigmoid(self.consolidation_gate(h)).squeeze(-1) * importance
        pattern = (h * gates[..., None]).mean(dim=(0, 1))
        slot = int(torch.argmin(self.episodic_weights))
        self.episodic_memory.data[slot] = pattern
        self.episodic_weights.data[slot] = 1.0


class SpikingLayer(nn.Module):
    """Synaptic Linear, a leaky integrate-and-fire membrane, and a refractory mask.

        s = W h + b
        u ← λ u + I;   spike = 1[u > θ];   u ← u (1 − spike);   r ← λ r + spike
        out = s ⊙ (1 − 1[r > ρ])                     (λ = 0.9, θ = 1, ρ = 0.1)

    ``spiking="causal"`` (ours): one membrane per sequence and feature, I = s_t, scanned over
    t = 1…T from ``u₀ = membrane_potential`` and ``r₀ = spike_history`` (read, never written),
    so out_t depends on s_{≤t} of its own sequence only and each call starts afresh.
    ``spiking="global"`` (published): one membrane per feature, I = mean_{b,t}(s), one step per
    call, ``u`` and ``r`` stored back into the Parameters with ``.data``; the resulting mask is
    shared by every token and batch item and depends on the previous calls.

    Spikes are not differentiable; gradients reach W and b through ``s``.
    """

    def __init__(self, dim: int, config: V3Config) -> None:
        super().__init__()
        self.mode = config.spiking
        self.threshold = float(config.spike_threshold)
        self.decay = float(config.spike_decay)
        self.refractory = float(config.refractory_level)
        self.membrane_potential = nn.Parameter(torch.empty(dim))
        self.synaptic_weights = nn.Linear(dim, dim)
        self.spike_history = nn.Parameter(torch.empty(dim))

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(h, mask)[0]

    def run(
        self, h: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out [B, T, d], spikes [B, T, d])``; published spikes are broadcast over B and T."""
        s = self.synaptic_weights(h)
        if self.mode == "global":
            silent, spikes = self._global_step(s.detach())
            return s * (1.0 - silent), spikes.expand_as(s)
        silent, spikes = self._scan(s.detach(), mask)
        return s * (1.0 - silent), spikes

    @torch.no_grad()
    def _global_step(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.decay * self.membrane_potential.data + s.mean(dim=tuple(range(s.ndim - 1)))
        spikes = (u > self.threshold).to(s.dtype)
        self.membrane_potential.data.copy_(u * (1.0 - spikes))
        r = self.decay * self.spike_history.data + spikes
        self.spike_history.data.copy_(r)
        return (r > self.refractory).to(s.dtype), spikes

    @torch.no_grad()
    def _scan(
        self, s: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, d = s.shape
        u = self.membrane_potential.detach().to(s.dtype).expand(B, d)
        r = self.spike_history.detach().to(s.dtype).expand(B, d)
        silent, spikes = torch.empty_like(s), torch.empty_like(s)
        for t in range(T):
            u_new = self.decay * u + s[:, t]
            spike = (u_new > self.threshold).to(s.dtype)
            u_new = u_new * (1.0 - spike)
            r_new = self.decay * r + spike
            if mask is not None:
                # A padded position leaves the membrane as it was.
                keep = mask[:, t, None]
                u_new, r_new = torch.where(keep, u_new, u), torch.where(keep, r_new, r)
                spike = spike * keep
            u, r = u_new, r_new
            spikes[:, t] = spike
            silent[:, t] = (r > self.refractory).to(s.dtype)
        return silent, spikes


class DevelopmentalPlasticity(nn.Module):
    """A base Linear and three expansion → contraction branches (two d×d Linears each).

        v = Var(h)  (unbiased);   out = W_base h + b          if v < 0.1
                                   out = C_k(E_k h),  k = ⌊10 v⌋ mod 3   otherwise

    ``routing="token"`` (ours): v is each token's variance over its d features, so each token
    picks its own branch (all branches are computed and selected per token).
    ``routing="batch"`` (published): v is the variance over (time, features) of each sequence,
    averaged over the batch: one branch for the whole batch, chosen from every position, and a
    host sync per call. With ``write`` the published usage statistics are updated
    (``usage_count[k] += 1``, ``importance_scores[k] ← 0.9·importance + 0.1·v``); the forward
    pass never reads them.
    """

    def __init__(self, dim: int, config: V3Config) -> None:
        super().__init__()
        self.mode = config.routing
        self.threshold = float(config.complexity_threshold)
        self.scale = float(config.complexity_scale)
        self.usage_count = nn.Parameter(torch.empty(config.max_dim))
        self.importance_scores = nn.Parameter(torch.empty(config.max_dim))
        self.base_transform = nn.Linear(dim, dim)
        self.expansion_layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(BRANCHES))
        self.contraction_layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(BRANCHES))

    def branch(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """``C_k(E_k h)``."""
        return self.contraction_layers[k](self.expansion_layers[k](h))

    def forward(self, h: torch.Tensor, write: bool = False) -> torch.Tensor:
        if self.mode == "batch":
            complexity = float(torch.var(h.detach(), dim=(1, 2)).mean())
            if complexity < self.threshold:
                return self.base_transform(h)
            k = min(int(complexity * self.scale) % BRANCHES, BRANCHES - 1)
            if write:
                with torch.no_grad():
                    self.usage_count.data[k] += 1
                    imp = self.importance_scores.data
                    imp[k] = 0.9 * imp[k] + 0.1 * complexity
            return self.branch(k, h)
        v = torch.var(h.detach(), dim=-1)
        level = torch.floor(v * self.scale).remainder(BRANCHES)
        out = self.base_transform(h)
        for k in range(BRANCHES):
            pick = (v >= self.threshold) & (level == k)
            out = torch.where(pick[..., None], self.branch(k, h), out)
        return out


class V3Model(nn.Module):
    """The v3 byte model: ``tokens [B, T]`` → logits ``[B, T, vocab_size]`` (see the module doc).

    Attribute names follow the published module (``token_embedding``, ``consciousness``,
    ``short_term_memory``, ``long_term_memory``, ``spiking_neurons``,
    ``developmental_plasticity``, ``output_proj``, ``learning_efficiency``,
    ``adaptation_rate``). With the default :class:`V3Config` the model has 16,420,584
    parameters, as published. Build it on the meta device (``with torch.device("meta")``) to
    count them without allocating.

    ``memory_writes`` in training mode also runs the published consolidation after the last
    repetition when ``training_step`` is given: if ``mean |h_L| > 0.8``, one episodic slot is
    overwritten (:meth:`LongTermMemory.consolidate`).
    """

    def __init__(self, config: V3Config | None = None) -> None:
        super().__init__()
        cfg = V3Config() if config is None else config
        if not isinstance(cfg, V3Config):
            raise ValueError(f"config must be a V3Config, got {type(cfg).__name__}")
        self.config = cfg
        # What neuro_models.generate reads: spec.vocab_size and spec.max_seq_len.
        self.spec = cfg
        d = cfg.dim
        self.token_embedding = nn.Embedding(cfg.vocab_size, d)
        self.consciousness = ConsciousnessLayer(d, cfg.softmax)
        self.short_term_memory = ShortTermMemory(d, cfg.memory_size)
        self.long_term_memory = LongTermMemory(
            d, cfg.concept_dim, cfg.num_concepts, cfg.episodic_slots
        )
        self.spiking_neurons = nn.ModuleList(SpikingLayer(d, cfg) for _ in range(cfg.num_layers))
        self.developmental_plasticity = nn.ModuleList(
            DevelopmentalPlasticity(d, cfg) for _ in range(cfg.num_layers)
        )
        self.output_proj = nn.Linear(d, cfg.vocab_size)
        self.learning_efficiency = nn.Parameter(torch.empty(()))
        self.adaptation_rate = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    @property
    def lm_head(self) -> nn.Linear:
        """The output projection (``logits = lm_head(hidden_states(x))``)."""
        return self.output_proj

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-draw every weight with the published init (see the module docstring)."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.LayerNorm):
                module.reset_parameters()
        nn.init.normal_(self.token_embedding.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.consciousness.global_consciousness, mean=0.0, std=0.01)
        stm, ltm = self.short_term_memory, self.long_term_memory
        nn.init.normal_(stm.memory_slots, mean=0.0, std=0.02)
        nn.init.zeros_(stm.memory_weights)
        nn.init.constant_(stm.decay_rate, STM_DECAY_INIT)
        nn.init.normal_(ltm.concept_memory, mean=0.0, std=0.02)
        nn.init.normal_(ltm.episodic_memory, mean=0.0, std=0.02)
        nn.init.zeros_(ltm.episodic_weights)
        for module in self.modules():
            if isinstance(module, SpikingLayer):
                nn.init.normal_(module.membrane_potential, mean=0.0, std=0.1)
                nn.init.zeros_(module.spike_history)
            elif isinstance(module, DevelopmentalPlasticity):
                nn.init.zeros_(module.usage_count)
                nn.init.ones_(module.importance_scores)
        nn.init.constant_(self.learning_efficiency, 1.0)
        nn.init.constant_(self.adaptation_rate, 0.1)

    # ---------------------------------------------------------------- public API

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        training_step: int | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` of the next byte at every position (see :meth:`hidden_states`)."""
        h = self.hidden_states(tokens, attention_mask=attention_mask, training_step=training_step)
        return self.output_proj(h)

    def hidden_states(
        self,
        tokens: torch.Tensor,
        *,
        cache: None = None,
        attention_mask: torch.Tensor | None = None,
        training_step: int | None = None,
    ) -> torch.Tensor:
        """Last hidden states ``[B, T, d]``.

        Args:
            tokens: ``[B, T]`` int64/int32 bytes in ``[0, vocab_size)``, ``T ≤ max_seq_len``.
            cache: must be None (v3 has no incremental decoding).
            attention_mask: ``[B, T]`` bool, False at left padding; padded positions do not
                enter the prefix softmax or the membranes (needs the causal flags).
            training_step: published consolidation trigger (see the class docstring).

        Raises:
            ValueError: bad ``tokens``/``attention_mask``, a cache, or a mask with a published
                flag.
        """
        if cache is not None:
            raise ValueError("cache: v3 has no incremental decoding; use use_cache=False")
        mask = self._check(tokens, attention_mask)
        h = self.embed(tokens, mask)
        for layer in range(self.config.num_layers):
            h = self.block(layer, h, mask)
        if self.config.memory_writes and self.training and training_step is not None:
            importance = h.detach().abs().mean(dim=-1)
            if float(importance.mean()) > CONSOLIDATION_THRESHOLD:
                self.long_term_memory.consolidate(h.detach(), importance)
        return h

    def embed(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``Consciousness(Emb(tokens))`` ``[B, T, d]`` (no input checks)."""
        return self.consciousness(self.token_embedding(tokens), mask)

    def block(self, layer: int, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Repetition ``layer``: STM, LTM, spiking layer ``layer``, developmental ``layer``."""
        write = self.config.memory_writes and self.training
        h = self.short_term_memory(h, write)
        h = h + LTM_SCALE * self.long_term_memory(h)
        h = self.spiking_neurons[layer](h, mask)
        return self.developmental_plasticity[layer](h, write)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-byte NLL ``[]`` (fp32) of ``targets [B, T]`` given ``inputs [B, T]``."""
        check_tensor(
            "targets", targets, shape=tuple(inputs.shape), dtype=(torch.int64, torch.int32)
        )
        logits = self(inputs)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten().long())

    def new_cache(self, *args: object, **kwargs: object) -> None:
        """v3 cannot decode incrementally: always raises ``ValueError``."""
        raise ValueError(
            "V3Model has no incremental decoding; generate with use_cache=False "
            "(recomputes the prefix each step)"
        )

    # ---------------------------------------------------------------- internals

    def _check(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        cfg = self.config
        check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
        B, T = tokens.shape
        if cfg.max_seq_len < T:
            raise ValueError(f"tokens: {T} positions exceed max_seq_len = {cfg.max_seq_len}")
        if T > 0 and not torch.compiler.is_compiling():
            lo, hi = (int(v) for v in torch.aminmax(tokens))
            if lo < 0 or hi >= cfg.vocab_size:
                raise ValueError(
                    f"tokens must lie in [0, {cfg.vocab_size}), got range [{lo}, {hi}]"
                )
        if attention_mask is None:
            return None
        check_tensor("attention_mask", attention_mask, shape=(B, T), dtype=torch.bool)
        if not cfg.is_causal:
            raise ValueError(
                "attention_mask: padding is supported with the causal flags only (softmax="
                "'prefix', spiking='causal', routing='token', memory_writes=False)"
            )
        return attention_mask


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (each tensor once)."""
    return sum(p.numel() for p in model.parameters())


def expected_parameters(config: V3Config) -> int:
    """Closed-form parameter count of :class:`V3Model` for ``config`` (§5.3 arithmetic).

    Emb V·d + Consciousness (4(d² + d) + d + 4d·d + d + 2d)
    + STM (S·d + S + 2d·d + d + d·S + S + 2d + 1)
    + LTM (N·c + d·c + c + E·d + E + c·d + d + d² + d + d + 1)
    + L · [Spiking (d + d² + d + d) + Developmental (2·max_dim + 7(d² + d))]
    + Head (d·V + V) + 2
    """
    d, V, L = config.dim, config.vocab_size, config.num_layers
    S, c, N, E = config.memory_size, config.concept_dim, config.num_concepts, config.episodic_slots
    linear = d * d + d
    consciousness = 4 * linear + d + (4 * d * d + d) + 2 * d
    stm = S * d + S + (2 * d * d + d) + (d * S + S) + 2 * d + 1
    ltm = N * c + (d * c + c) + E * d + E + (c * d + d) + linear + (d + 1)
    per_layer = (2 * d + linear) + (2 * config.max_dim + 7 * linear)
    return V * d + consciousness + stm + ltm + L * per_layer + (d * V + V) + 2


__all__ = [
    "BRANCHES",
    "ConsciousnessLayer",
    "DevelopmentalPlasticity",
    "LongTermMemory",
    "ShortTermMemory",
    "SpikingLayer",
    "V3Model",
    "count_parameters",
    "expected_parameters",
]
