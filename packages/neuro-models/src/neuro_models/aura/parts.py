"""Aura's parts on the one decoder: the hippocampal attention mixer, the prosody gates, the
place-cell embedding, theta-gamma positions, the embedding LayerNorm and the memory bank.

Registered on import: mixer ``"aura_attention"`` and modulator ``"aura_prosody"``. The FFNs are
the decoder's ``"gelu"`` (with biases), ``"spiking"`` and ``"hybrid"``.

Attention of layer l at token t (``HippocampalProsodyAttention``, reference-systems §3.1), on
``h = LayerNorm(x)`` (the mixer owns its pre-norm, see :class:`HippocampalAttention`):

    q, k, v = W_{q,k,v} h + b_{q,k,v}          (H heads of d_h; RoPE on q, k if the model uses it)
    q_{t,h} ← q_{t,h} · ρ_{t,h,l} · μ_t
        ρ_{t,h,l} = (1 + σ(W^l_pros p_t + b^l_pros))_h · (1 + 0.2 tanh p_{t,0}) · (1 + 0.05 tanh p_{t,1})
        μ_t       = 1 + 0.5 σ(w_m · h_t + b_m)
    a_t = W_o Σ_{j ≤ t} softmax_j(q_t·k_j / √d_h) v_j + b_o

with prosody ``p_t ∈ R⁴`` (arousal, valence, two unused) from the ``"aura_prosody"`` modulator.
Both factors only rescale the logits of query t: per-token, per-head attention temperatures. The
published "hippocampal memory" gate μ retrieves nothing. In SNN-RAG layers, the memory read
(neuro-memory's :class:`~neuro_memory.MemoryRetrieval`, gate injection) follows on the residual
stream: ``x₁ = x + a``, ``x₂ = x₁ + g ⊙ m(x₁)`` (``MemoryAugmentedLayer``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_tensor
from neuro_memory import (
    EpisodicParams,
    EpisodicState,
    MemoryRetrieval,
    PlaceCellEncoder,
    PlaceCellParams,
    PlaceCode,
    RetrievalParams,
    ThetaGammaEncoding,
    ThetaGammaParams,
    init_state,
    write,
)
from neuro_models.decoder import DecoderConfig, SequenceContext
from neuro_models.decoder.functional import rotate
from neuro_models.decoder.parts import register_mixer, register_modulator

#: Published prosody coupling: arousal boosts the query by up to ±20 %, valence by ±5 %.
AROUSAL_GAIN = 0.2
VALENCE_GAIN = 0.05
#: Published memory gate: the query grows by up to 50 %.
MEMORY_GATE_GAIN = 0.5
#: Hidden width of the published (untrained) amygdala MLP.
AMYGDALA_HIDDEN = 64
#: Prosody features per token (arousal, valence, and two more the attention never reads alone).
PROSODY_DIM = 4


class AuraSignals(NamedTuple):
    """What the ``"aura_prosody"`` modulator hands the blocks.

    Attributes:
        gain: ``[B, T, L]`` ones (Aura has no output gain; the decoder's protocol expects one).
        precision: ``[B, T, H, L]`` the prosody factor ρ of every query head and layer.
        gate: ``[B, T, L]`` ones (no FFN gate).
        prosody: ``[B, T, 4]`` the prosody features ``p`` it was computed from.
    """

    gain: torch.Tensor
    precision: torch.Tensor
    gate: torch.Tensor
    prosody: torch.Tensor


def prosody_factor(prosody: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``ρ = (1 + σ(W p + b)) · (1 + 0.2 tanh p₀) · (1 + 0.05 tanh p₁)``.

    Args:
        prosody: ``p`` ``[B, T, 4]``.
        weight: ``[L, H, 4]`` (one ``prosody_gate`` Linear per layer); bias ``[L, H]``.

    Returns:
        ``[B, T, H, L]``.
    """
    gate = torch.sigmoid(torch.einsum("btp,lhp->bthl", prosody, weight) + bias.T)
    arousal = 1 + AROUSAL_GAIN * torch.tanh(prosody[..., 0])
    valence = 1 + VALENCE_GAIN * torch.tanh(prosody[..., 1])
    return (1 + gate) * (arousal * valence)[:, :, None, None]


class ProsodyGates(nn.Module):
    """The ``"aura_prosody"`` modulator: prosody features → per-head query factors of every layer.

    ``forward(x [B, T, d], state, keys) -> (AuraSignals, state)``; ``state`` is None except for the
    amygdala source with a cache (its running sums). Sources of ``p_t``:

    * ``"zeros"`` (ours): ``p = 0``, so ``ρ_{h,l} = 1 + σ(b^l_h)``, a learned temperature per head.
    * ``"random"`` (published notebook): ``p ~ U[0, 1)⁴`` drawn per token at every call (torch's
      global generator). The notebook trained on this noise, evaluated its loss with zeros and
      sampled with N(0, 1) noise; to evaluate the notebook's way, load the same weights into a
      ``prosody="zeros"`` model (the parameters are identical).
    * ``"amygdala"`` (published Colab script): an untrained MLP ``tanh(W₂ relu(W₁ x̄ + b₁) + b₂)``
      on the mean over positions, averaged over the batch: ``p = (a, v, a, v)`` for every token of
      every row, ``a = (s₀ + 1)/2``, ``v = s₁``. It sees the future and the other rows (it is
      registered as breaking causality and batch independence). Published on the raw token
      embeddings; here on the embedding stream the modulator receives (after the place cells,
      positions and embedding LayerNorm). With a cache, each new token pools over the prefix
      seen so far. Its weights are fixed buffers drawn from ``amygdala_seed`` (not in the
      state dict).
    """

    amygdala_w1: torch.Tensor
    amygdala_b1: torch.Tensor
    amygdala_w2: torch.Tensor
    amygdala_b2: torch.Tensor

    def __init__(
        self, d_model: int, n_layers: int, n_heads: int, *, source: str, amygdala_seed: int = 0
    ) -> None:
        super().__init__()
        if source not in ("zeros", "random", "amygdala"):
            raise ValueError(f"source must be 'zeros', 'random' or 'amygdala', got {source!r}")
        self.source = source
        self.n_layers, self.n_heads = n_layers, n_heads
        self.gates = nn.ModuleList(nn.Linear(PROSODY_DIM, n_heads) for _ in range(n_layers))
        if source == "amygdala":
            gen = torch.Generator().manual_seed(amygdala_seed)
            w1, b1 = _linear_default(AMYGDALA_HIDDEN, d_model, gen)
            w2, b2 = _linear_default(2, AMYGDALA_HIDDEN, gen)
            for name, t in (
                ("amygdala_w1", w1),
                ("amygdala_b1", b1),
                ("amygdala_w2", w2),
                ("amygdala_b2", b2),
            ):
                self.register_buffer(name, t, persistent=False)

    def forward(
        self, x: torch.Tensor, state: Any = None, keys: torch.Tensor | None = None
    ) -> tuple[AuraSignals, Any]:
        B, T, _ = x.shape
        if self.source == "zeros":
            p = x.new_zeros(B, T, PROSODY_DIM)
        elif self.source == "random":
            p = torch.rand(B, T, PROSODY_DIM, device=x.device, dtype=x.dtype)
        else:
            p, state = self._amygdala(x, state, keys)
        gates = cast(list[nn.Linear], list(self.gates))
        weight = torch.stack([g.weight for g in gates]).to(x.dtype)
        bias = torch.stack([g.bias for g in gates]).to(x.dtype)
        ones = x.new_ones(()).expand(B, T, self.n_layers)
        return AuraSignals(ones, prosody_factor(p, weight, bias), ones, p), state

    def _amygdala(
        self, x: torch.Tensor, state: Any, keys: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        B, T, _ = x.shape
        real = torch.ones(B, T, dtype=x.dtype, device=x.device)
        if keys is not None:
            real = keys[:, -T:].to(x.dtype)
        total = (x * real[..., None]).sum(1)
        count = real.sum(1)
        if state is not None:
            total, count = total + state[0], count + state[1]
        pooled = total / count.clamp_min(1)[:, None]
        hid = F.relu(F.linear(pooled, self.amygdala_w1.to(x.dtype), self.amygdala_b1.to(x.dtype)))
        s = torch.tanh(F.linear(hid, self.amygdala_w2.to(x.dtype), self.amygdala_b2.to(x.dtype)))
        s = s.mean(0)  # one "global brain state" for the whole batch, as published
        arousal, valence = (s[0] + 1) / 2, s[1]
        p = torch.stack([arousal, valence, arousal, valence]).expand(B, T, PROSODY_DIM)
        return p, (total, count)


def _linear_default(
    out_features: int, in_features: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear``'s default init (U(±1/√fan_in) for weight and bias) from ``gen``."""
    bound = 1 / math.sqrt(in_features)
    w = (torch.rand(out_features, in_features, generator=gen) * 2 - 1) * bound
    b = (torch.rand(out_features, generator=gen) * 2 - 1) * bound
    return w, b


class MemoryBank(nn.Module):
    """The model's episodic store: an :class:`~neuro_memory.EpisodicState` kept as buffers.

    Keys and values are ``[capacity, d]`` (a memory is one ``d``-vector, its own key, as in
    Aura's ``HippocampalFormation``); read by cos · strength (neuro-memory's :func:`~neuro_memory.read`).
    The buffers are not in the state dict: memories are data, not weights. Nothing in a forward
    pass writes here unless the published ``store_memory`` flag is on; write with :meth:`write` or
    :meth:`load`.
    """

    keys: torch.Tensor
    values: torch.Tensor
    strength: torch.Tensor
    age: torch.Tensor
    stamp: torch.Tensor

    def __init__(self, dim: int, params: EpisodicParams) -> None:
        super().__init__()
        self.dim, self.params = dim, params
        empty = init_state(params, dim, dim)
        for name in ("keys", "values", "strength", "age", "stamp"):
            self.register_buffer(name, getattr(empty, name), persistent=False)
        self.count = 0

    @property
    def state(self) -> EpisodicState:
        """The current contents (the buffers themselves, not a copy)."""
        return EpisodicState(
            self.keys, self.values, self.strength, self.age, self.stamp, self.count
        )

    @property
    def size(self) -> int:
        """Filled slots."""
        return self.state.size

    def load(self, state: EpisodicState) -> None:
        """Replace the contents by ``state`` (same capacity and width, moved to this bank's device)."""
        if not isinstance(state, EpisodicState):
            raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
        if state.capacity != self.params.capacity or state.keys.shape[1] != self.dim:
            raise ValueError(
                f"state must hold {self.params.capacity} slots of width {self.dim}, got "
                f"{state.capacity} slots of width {state.keys.shape[1]}"
            )
        if state.values.shape[1] != self.dim:
            raise ValueError(f"state values must have width {self.dim}, got {state.values.shape}")
        for name in ("keys", "values", "strength", "age", "stamp"):
            mine = getattr(self, name)
            setattr(self, name, getattr(state, name).to(device=mine.device, dtype=mine.dtype))
        self.count = int(state.count)

    def write(
        self,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        *,
        strength: torch.Tensor | None = None,
    ) -> None:
        """Store ``M`` memories ``keys [M, d]`` (values default to the keys), neuro-memory's
        :func:`~neuro_memory.write` (FIFO once full)."""
        keys = check_tensor("keys", keys, ndim=2, floating=True)
        values = keys if values is None else values
        self.load(write(self.state, keys.detach(), values.detach(), self.params, strength=strength))

    def clear(self) -> None:
        """Forget every memory."""
        self.load(
            init_state(
                self.params, self.dim, self.dim, device=self.keys.device, dtype=self.keys.dtype
            )
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, capacity={self.params.capacity}, size={self.size}"


class HippocampalAttention(nn.Module):
    """The ``"aura_attention"`` mixer (equations in the module docstring); ``[B, T, d]``.

    It owns its pre-norm (``LayerNorm``; the model sets the block's ``attn_norm`` to the identity)
    because the SNN-RAG memory read sits after the attention on the un-normed residual stream,
    where the block cannot put it: it returns ``x₂ − x`` so that the block's ``x + ·`` gives
    ``x₂`` (in training, the block's dropout then falls on the attention and the memory
    increment together; published, on the attention only).

    ``precision`` is the modulator's ``[B, T, H]`` prosody factor (or ``[B, T]``); ``gain``
    ``[B, T]`` multiplies the heads' output. Decodes with the decoder's ``KVCache``; the memory
    read is per token (``query="token"``) and needs no state. The published
    ``query="sequence_mean"`` cannot decode incrementally or take left padding (raises).

    Args:
        config: the decoder config (shape, ``norm_eps``, ``dropout`` for the attention
            probabilities in training).
        layer: block index.
        memory_gate: the query factor μ (published: on).
        retrieval: :class:`~neuro_models.aura.RetrievalConfig` fields (JSON) or None: the memory
            read of SNN-RAG layers. The bank is attached by the model (:meth:`attach_memory`).
    """

    supports_cache = True

    def __init__(
        self,
        config: DecoderConfig,
        layer: int,
        *,
        memory_gate: bool = True,
        retrieval: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if config.kv_heads != config.n_heads:
            raise ValueError("aura_attention: Aura has no grouped-query attention (n_kv_heads)")
        d = config.d_model
        self.layer = layer
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.attn_dropout = float(config.dropout)
        self.norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.memory_gate = nn.Linear(d, 1) if memory_gate else None
        self.retrieval: MemoryRetrieval | None = None
        self.query_mode = "token"
        if retrieval is not None:
            from neuro_models.aura.config import RetrievalConfig

            rc = RetrievalConfig.from_dict(retrieval)
            self.query_mode = rc.query
            self.retrieval = MemoryRetrieval(
                d,
                d,
                d,
                params=RetrievalParams(
                    k=rc.k, aggregate=rc.aggregate, temperature=rc.temperature, query=rc.query
                ),
                memory=EpisodicParams(capacity=rc.capacity),
            )
        self._bank: MemoryBank | None = None

    def attach_memory(self, bank: MemoryBank) -> None:
        """Read ``bank`` (owned by the model; kept as a plain reference, not a submodule)."""
        if self.retrieval is None:
            raise ValueError(f"layer {self.layer}: this mixer has no retrieval to attach a bank to")
        if bank.params.capacity != self.retrieval.memory.capacity:
            raise ValueError(
                f"bank capacity {bank.params.capacity} differs from the retrieval's "
                f"{self.retrieval.memory.capacity}"
            )
        # object.__setattr__: a reference, so the bank is not registered (and saved) per layer.
        object.__setattr__(self, "_bank", bank)

    def residual_projections(self) -> list[nn.Linear]:
        return [self.out]

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        precision: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, d = x.shape
        H, D = self.n_heads, self.head_dim
        h = self.norm(x)
        q, k, v = self.qkv(h).view(B, T, 3, H, D).unbind(2)
        q, k = rotate(ctx.rope, q, k)
        if precision is not None:
            rho = precision if precision.ndim == 3 else precision[..., None]
            q = q * rho[..., None].to(q.dtype)
        if self.memory_gate is not None:
            mu = 1 + MEMORY_GATE_GAIN * torch.sigmoid(self.memory_gate(h))  # [B, T, 1]
            q = q * mu[..., None].to(q.dtype)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if ctx.cache is not None:
            k, v = ctx.cache.update(self.layer, k, v)
        p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=ctx.mask, is_causal=ctx.is_causal, dropout_p=p
        ).transpose(1, 2)
        if gain is not None:
            y = y * gain[:, :, None, None].to(y.dtype)
        a = self.out(y.reshape(B, T, d))
        if self.retrieval is None:
            return a
        bank = self._bank
        if bank is None:
            raise ValueError(f"layer {self.layer}: retrieval without a memory bank (attach_memory)")
        if bank.size == 0:
            return a
        if self.query_mode == "sequence_mean" and (ctx.cache is not None or ctx.keys is not None):
            raise ValueError(
                "retrieval query='sequence_mean' (published) pools the whole sequence: it cannot "
                "decode with a cache or take left padding; use query='token' or use_cache=False"
            )
        x1 = x + a
        return self.retrieval(x1, bank.state) - x


class PlaceCellEmbedding(nn.Embedding):
    """Token embedding followed by the place-cell residual: ``y = e + s·(W_r a(e) + b_r)``,
    ``e = E[token]`` (neuro-memory's :class:`~neuro_memory.PlaceCellEncoder`).

    ``weight`` is the raw table ``E`` (tied to the output head, as published, which therefore
    sees ``E`` and not ``y``). ``place`` is None without place cells.
    """

    def __init__(self, vocab_size: int, dim: int, place: PlaceCellParams | None) -> None:
        super().__init__(vocab_size, dim)
        self.place = PlaceCellEncoder(dim, place) if place is not None else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = super().forward(tokens)
        return e if self.place is None else self.place(e).output

    def code(self, tokens: torch.Tensor) -> PlaceCode:
        """The place code of ``tokens`` (output, sparse activity ``[..., P]``, active cells)."""
        if self.place is None:
            raise ValueError("this model has no place cells (place_cells=False)")
        return self.place(super().forward(tokens))  # type: ignore[no-any-return]

    def reset_part_parameters(self) -> None:
        # Prototypes keep nn.Linear's default init (published): they are a code, not a projection.
        if self.place is None:
            return
        with torch.no_grad():
            bound = 1 / math.sqrt(self.embedding_dim)
            self.place.prototypes.uniform_(-bound, bound)
            self.place.bias.uniform_(-bound, bound)


class ThetaGammaPositions(nn.Module):
    """Theta-gamma positional code added to the embedding (neuro-memory's
    :class:`~neuro_memory.ThetaGammaEncoding`): ``positions [T] or [B, T] -> [..., d]``, in the
    model's dtype.

    The multiscale code (ours) is scaled by a learnable per-dimension amplitude ``A``
    (``amplitude``), initialised to ``scale``: its entries have unit amplitude in every
    dimension, so added at full scale to N(0, 0.02²) token embeddings it leaves the tokens ~2 % of
    the signal after the embedding LayerNorm, and a small model cannot even learn a bigram (a test
    trains one). The published code has its own learnable amplitude (initialised to 1; its rank
    ≤ 8 leaves the other directions to the tokens).
    """

    _dtype: torch.Tensor

    def __init__(self, params: ThetaGammaParams, *, scale: float = 0.02) -> None:
        super().__init__()
        self.encoding = ThetaGammaEncoding(params)
        self.scale = float(scale)
        self.amplitude: nn.Parameter | None = None
        if params.variant == "multiscale":
            self.amplitude = nn.Parameter(torch.full((params.dim,), self.scale))
        # Follows model.to(dtype), so the code is added in the embedding's dtype.
        self.register_buffer("_dtype", torch.zeros(0), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoding(positions).to(self._dtype.dtype)
        return out if self.amplitude is None else out * self.amplitude

    def reset_part_parameters(self) -> None:
        enc = self.encoding
        with torch.no_grad():
            if self.amplitude is not None:
                self.amplitude.fill_(self.scale)
            if enc.theta_offset is None or enc.gamma_offset is None or enc.amplitude is None:
                return
            enc.theta_offset.normal_(0.0, 0.1)
            enc.gamma_offset.normal_(0.0, 0.1)
            enc.amplitude.fill_(1.0)


class EmbeddingNorm(nn.Module):
    """``Dropout(LayerNorm(x))`` on the embedding stream (published, after the positions)."""

    def __init__(self, dim: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return x if self.dropout is None else self.dropout(x)


def _prosody_modulator(
    config: DecoderConfig, *, source: str = "zeros", amygdala_seed: int = 0
) -> nn.Module:
    return ProsodyGates(
        config.d_model, config.n_layers, config.n_heads, source=source, amygdala_seed=amygdala_seed
    )


register_mixer("aura_attention", HippocampalAttention)
register_modulator("aura_prosody", _prosody_modulator)
