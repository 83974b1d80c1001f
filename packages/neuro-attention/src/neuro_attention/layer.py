"""``NeuroAttention``: one configurable attention layer composing the mechanisms on the fused op.

Every mechanism becomes one of the op's inputs (β, key bias, pair gate, head gain) or a per-token
operation on the head outputs, so any subset composes without materializing ``[T, T]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from neuro_attention.columns import LateralInhibition
from neuro_attention.habituation import (
    HabituatingAttention,
    HabituationState,
    habituation_exposure,
)
from neuro_attention.modulation import MemoryTemperature
from neuro_attention.ops.modulated_attention import AttentionBackend, modulated_attention
from neuro_attention.population import (
    AdaptiveHeadTemperature,
    ConfidenceWeightedVoting,
    EntropyBasedVoting,
    PopulationCodedAttention,
)
from neuro_attention.synaptic import (
    NeuromodulatedAttention,
    SynapticModulationMatrix,
    SynapticScaling,
)
from neuro_core.validation import check_positive, check_tensor

Rotary = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, kw_only=True)
class NeuroAttentionConfig:
    """Typed configuration of :class:`NeuroAttention`; every switch defaults to off (plain GQA).

    Attributes:
        d_model: model width.
        num_heads: query heads H.
        num_kv_heads: key/value heads (= columns); None means H.
        head_dim: D; None means d_model // H.
        bias: biases in the q/k/v/o projections.
        window: sliding-window mask size, or None.
        synaptic_scaling: learnable per-head gain α (:class:`SynapticScaling`).
        neuromodulated_gates: per-token head gates from the prefix mean (:class:`NeuromodulatedAttention`).
        gate_context: ``"prefix_mean"`` (ours) or ``"sequence_mean"`` (published: the gates see
            the whole sequence, non-causal; no cache or padding).
        pair_gate_window: W of the synaptic modulation matrix, or None for off.
        habituation: content-based key habituation (:class:`HabituatingAttention`) on the keys
            before RoPE.
        habituation_rate, recovery_rate, max_habituation: its parameters (published defaults).
        memory_temperature: Aura's per-token "memory" temperature (:class:`MemoryTemperature`).
        adaptive_temperature: β from the previous layer's entropy (needs ``prev_entropy``).
        lateral_inhibition: inhibition between columns (:class:`LateralInhibition`).
        population_tuning: per-head tuning curves (:class:`PopulationCodedAttention`).
        voting: combine heads by "entropy" or "confidence" voting into one D-vector (W_o: D → d)
            instead of concatenating them ("none").
        return_entropy: return the per-head attention entropy.
        backend: backend of the fused op.
    """

    d_model: int
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    bias: bool = False
    window: int | None = None
    synaptic_scaling: bool = False
    neuromodulated_gates: bool = False
    gate_context: Literal["prefix_mean", "sequence_mean"] = "prefix_mean"
    pair_gate_window: int | None = None
    habituation: bool = False
    habituation_rate: float = 0.1
    recovery_rate: float = 0.01
    max_habituation: float = 0.9
    memory_temperature: bool = False
    adaptive_temperature: bool = False
    lateral_inhibition: bool = False
    population_tuning: bool = False
    voting: Literal["none", "entropy", "confidence"] = "none"
    return_entropy: bool = False
    backend: AttentionBackend = "auto"

    def __post_init__(self) -> None:
        check_positive("d_model", self.d_model)
        check_positive("num_heads", self.num_heads)
        if self.num_kv_heads is not None and (
            self.num_kv_heads < 1 or self.num_heads % self.num_kv_heads
        ):
            raise ValueError(
                f"num_kv_heads must divide num_heads={self.num_heads}, got {self.num_kv_heads}"
            )
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by num_heads or head_dim given"
            )
        if self.gate_context not in ("prefix_mean", "sequence_mean"):
            raise ValueError(
                f"gate_context must be 'prefix_mean' or 'sequence_mean', got {self.gate_context!r}"
            )
        if self.gate_context != "prefix_mean" and not self.neuromodulated_gates:
            raise ValueError("gate_context is set but neuromodulated_gates is off")
        if self.voting not in ("none", "entropy", "confidence"):
            raise ValueError(
                f"voting must be 'none', 'entropy' or 'confidence', got {self.voting!r}"
            )
        for name in ("window", "pair_gate_window"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be ≥ 1 or None, got {v}")

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def dim_head(self) -> int:
        return self.head_dim or self.d_model // self.num_heads

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> NeuroAttentionConfig:
        """Build from a dict; unknown keys raise ``ValueError`` (no silently ignored knobs)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown NeuroAttentionConfig fields: {sorted(unknown)}")
        return cls(**values)  # type: ignore[arg-type]


class NeuroAttentionCache(NamedTuple):
    """Decoding state of one :class:`NeuroAttention` layer after S positions.

    Attributes:
        k, v: ``[B, S, H_kv, D]`` keys (after the rotary transform) and values.
        key_bias: ``[B, S, H_kv]`` habituation bias of the cached keys, or None (habituation off).
        habituation: the habituation scan state, or None (habituation off).
        input_sum: ``[B, d_model]`` sum of the real layer inputs so far (neuromodulated gates),
            or None (gates off).
        input_count: ``[B]`` their number, or None (gates off).
    """

    k: torch.Tensor
    v: torch.Tensor
    key_bias: torch.Tensor | None
    habituation: HabituationState | None
    input_sum: torch.Tensor | None
    input_count: torch.Tensor | None


class NeuroAttentionOutput(NamedTuple):
    """``out [B, T, d]``; with ``return_entropy``, ``entropy [B, T, H]`` (else None); when a
    ``cache`` was passed in, the cache extended by these T positions (else None)."""

    out: torch.Tensor
    entropy: torch.Tensor | None
    cache: NeuroAttentionCache | None = None


class NeuroAttention(nn.Module):
    """Attention layer composing any subset of the brain-inspired mechanisms on the fused op.

    Parameters: the GQA projections d·H·D + 2·d·H_kv·D + (H·D or D)·d, plus those of each enabled
    mechanism (see each class). With every switch off it is plain causal GQA attention.
    External per-token signals (NCN's β and g, Aura's prosody β) enter as ``query_scale`` and
    ``head_gain`` and multiply the internal ones.
    """

    def __init__(self, config: NeuroAttentionConfig) -> None:
        super().__init__()
        c = self.config = config
        h, hkv, d = c.num_heads, c.kv_heads, c.dim_head
        self.wq = nn.Linear(c.d_model, h * d, bias=c.bias)
        self.wk = nn.Linear(c.d_model, hkv * d, bias=c.bias)
        self.wv = nn.Linear(c.d_model, hkv * d, bias=c.bias)
        self.wo = nn.Linear(d if c.voting != "none" else h * d, c.d_model, bias=c.bias)
        self.scaling = SynapticScaling(h) if c.synaptic_scaling else None
        self.gates = (
            NeuromodulatedAttention(c.d_model, h, context=c.gate_context)
            if c.neuromodulated_gates
            else None
        )
        self.pair = (
            SynapticModulationMatrix(d, window=c.pair_gate_window) if c.pair_gate_window else None
        )
        self.habituation = (
            HabituatingAttention(
                habituation_rate=c.habituation_rate,
                recovery_rate=c.recovery_rate,
                max_habituation=c.max_habituation,
            )
            if c.habituation
            else None
        )
        self.memory = MemoryTemperature(c.d_model, h) if c.memory_temperature else None
        self.temperature = AdaptiveHeadTemperature() if c.adaptive_temperature else None
        self.inhibition = LateralInhibition(hkv) if c.lateral_inhibition else None
        self.population = PopulationCodedAttention(h, d) if c.population_tuning else None
        self.entropy_vote = EntropyBasedVoting() if c.voting == "entropy" else None
        self.confidence_vote = ConfidenceWeightedVoting(h, d) if c.voting == "confidence" else None

    def new_cache(
        self, batch: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> NeuroAttentionCache:
        """An empty :class:`NeuroAttentionCache` (S = 0) for ``batch`` sequences."""
        c = self.config
        check_positive("batch", batch)
        device = device if device is not None else self.wq.weight.device
        dtype = dtype if dtype is not None else self.wq.weight.dtype
        hkv, d = c.kv_heads, c.dim_head
        kv = torch.zeros(batch, 0, hkv, d, device=device, dtype=dtype)
        habituation = None
        key_bias = None
        if self.habituation is not None:
            key_bias = torch.zeros(batch, 0, hkv, device=device, dtype=dtype)
            # the scan state of no keys: all sums and weights zero
            habituation = habituation_exposure(kv, self.habituation.decay)[1]
        input_sum = input_count = None
        if self.gates is not None:
            input_sum = torch.zeros(batch, c.d_model, device=device, dtype=dtype)
            input_count = torch.zeros(batch, device=device, dtype=dtype)
        return NeuroAttentionCache(kv, kv, key_bias, habituation, input_sum, input_count)

    def forward(
        self,
        x: torch.Tensor,
        *,
        query_scale: torch.Tensor | None = None,
        head_gain: torch.Tensor | None = None,
        prev_entropy: torch.Tensor | None = None,
        rotary: Rotary | None = None,
        cache: NeuroAttentionCache | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> NeuroAttentionOutput:
        """``x [B, T, d] → NeuroAttentionOutput``.

        Args:
            x: layer input (with a cache: the T positions after the S cached ones).
            query_scale: external β ``[B, T, H]`` (e.g. NCN precision, Aura prosody).
            head_gain: external g ``[H]`` or ``[B, T, H]`` (e.g. NCN gain).
            prev_entropy: ``[B, T, H]`` entropy of the previous layer, required by
                ``adaptive_temperature``.
            rotary: optional ``(q, k) -> (q, k)`` positional transform on ``[B, T, heads, D]``
                (with a cache it must rotate positions S … S + T − 1).
            cache: decoding state from :meth:`new_cache` or a previous call; the output then
                carries the extended cache. Prefix then one token at a time gives the outputs of
                the whole sequence at once, with every mechanism (test).
            key_padding_mask: ``[B, S + T]`` bool over the cached and new keys, True for real
                tokens (left padding for batches of different lengths). Padded keys are masked
                (a query still sees itself), and padded inputs take no part in habituation or in
                the gates' prefix mean; outputs at padded positions are finite but meaningless.
                Windows and the pair gate count positions in the padded layout.
        """
        c = self.config
        check_tensor("x", x, ndim=3, shape=(None, None, c.d_model), floating=True)
        b, t, _ = x.shape
        h, hkv, d = c.num_heads, c.kv_heads, c.dim_head
        past = 0
        if cache is not None:
            check_tensor("cache.k", cache.k, ndim=4, shape=(b, None, hkv, d), device=x.device)
            check_tensor("cache.v", cache.v, shape=tuple(cache.k.shape), device=x.device)
            past = cache.k.shape[1]
        valid = None
        if key_padding_mask is not None:
            check_tensor(
                "key_padding_mask",
                key_padding_mask,
                shape=(b, past + t),
                dtype=torch.bool,
                device=x.device,
            )
            valid = key_padding_mask[:, past:]
        q = self.wq(x).view(b, t, h, d)
        k = self.wk(x).view(b, t, hkv, d)
        v = self.wv(x).view(b, t, hkv, d)
        key_bias = habituation = None
        if self.habituation is not None:
            # habituation compares key content, which RoPE would make position-dependent
            key_bias, habituation = self.habituation.key_bias(
                k, None if cache is None else cache.habituation, valid
            )
            if cache is not None:
                if cache.key_bias is None:
                    raise ValueError("cache.key_bias is None but habituation is on")
                key_bias = torch.cat([cache.key_bias.to(key_bias.dtype), key_bias], 1)
        if rotary is not None:
            q, k = rotary(q, k)
        if cache is not None:
            k = torch.cat([cache.k.to(k.dtype), k], 1)
            v = torch.cat([cache.v.to(v.dtype), v], 1)
        beta = None if query_scale is None else query_scale.to(q.dtype)
        if self.memory is not None:
            beta = self._mul(beta, self.memory(x).to(q.dtype))
        if self.temperature is not None:
            if prev_entropy is None:
                raise ValueError("prev_entropy is required when adaptive_temperature is on")
            beta = self._mul(beta, self.temperature(prev_entropy).to(q.dtype))
        gain = None if head_gain is None else head_gain.to(q.dtype)
        if self.scaling is not None:
            gain = self._mul(gain, self.scaling.gain().to(q.dtype))
        input_sum = input_count = None
        if self.gates is not None:
            gates, input_sum, input_count = self.gates.continue_prefix(
                x,
                None if cache is None else cache.input_sum,
                None if cache is None else cache.input_count,
                valid,
            )
            gain = self._mul(gain, gates.to(q.dtype))
        pair = self.pair(q, k) if self.pair is not None else None
        want_entropy = c.return_entropy or self.entropy_vote is not None
        kwargs: dict[str, Any] = dict(
            window=c.window,
            query_scale=beta,
            key_bias=key_bias,
            pair_gate=pair,
            head_gain=gain,
            backend=c.backend,
            key_padding_mask=key_padding_mask,
        )
        entropy: torch.Tensor | None = None
        if want_entropy:
            heads, entropy = modulated_attention(q, k, v, return_entropy=True, **kwargs)
        else:
            heads = modulated_attention(q, k, v, **kwargs)
        if self.inhibition is not None:
            heads = self.inhibition(heads.reshape(b, t, hkv, (h // hkv) * d)).reshape(b, t, h, d)
        if self.population is not None:
            heads = self.population(heads)[0]
        if self.entropy_vote is not None:
            assert entropy is not None
            y = self.entropy_vote(heads, entropy)[0]
        elif self.confidence_vote is not None:
            y = self.confidence_vote(heads)[0]
        else:
            y = heads.reshape(b, t, h * d)
        new_cache = None
        if cache is not None:
            new_cache = NeuroAttentionCache(k, v, key_bias, habituation, input_sum, input_count)
        return NeuroAttentionOutput(self.wo(y), entropy if c.return_entropy else None, new_cache)

    @staticmethod
    def _mul(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
        return b if a is None else a * b


__all__ = ["NeuroAttention", "NeuroAttentionCache", "NeuroAttentionConfig", "NeuroAttentionOutput"]
