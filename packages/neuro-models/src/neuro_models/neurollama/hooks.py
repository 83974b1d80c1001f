"""Inference-time hooks applied to an already-trained decoder, without retraining.

:func:`apply_hooks` returns a copy of a model whose ``"attention"`` mixers are replaced by
:class:`HookedAttention` (same weights), which computes, per head h, query i, key j ≤ i:

    ℓ_hij = q_hi·k_hj / √d_h  +  b_hj  +  η q_hi·H_{h,i−1} k_hjᵀ
    A = softmax_j(ℓ / T_hi),   o_hi = s_hi Σ_j A_hij v_hj

* **habituation** b_hj ≤ 0 (neuro-attention's stimulus-specific key habituation on the keys
  *before* RoPE: a key similar to keys seen earlier in the sequence is suppressed; causal).
* **Hebbian accumulator** (corteX ``HebbianAccumulator``: decay 0.99, strength 0.1) in its causal
  form: ``H_{h,i} = λ H_{h,i−1} + q_hiᵀ r_hi`` with ``r_hi = Σ_j A⁰_hij k_hj`` the key the plain
  attention read (neuro-plasticity's ``fast_weights``); the published accumulator carried H
  from one call to the next (state across prompts), which we do not.
* **adaptive head temperature** (corteX ``AdaptiveHeadTemperature``): T_hi = clamp(1 + 0.5·(E_hi
  − mean_h E_i)/std_h E_i, 0.5, 2) from the entropies E of the unmodified attention (std over
  heads, unbiased, clamped below at 1e-6: at position 0 every head has entropy 0).
* **entropy voting** (corteX ``PopulationWeightedVoting``, ours): s_hi = H · softmax_h(−E_hi/τ),
  a reweighting of the heads that keeps the trained output projection (the published voting
  sums heads into one d_h-vector, which a trained W_o cannot read).

Every term is causal and per sequence; the hooked model has no incremental decoding (generate
with ``use_cache=False``). The attention matrix is materialized: meant for models up to a few
thousand positions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.decoder import Attention, Decoder, SequenceContext
from neuro_models.decoder.functional import rotate


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """Which hooks to apply (all off by default) and their parameters (published defaults)."""

    habituation: bool = False
    habituation_rate: float = 0.1
    recovery_rate: float = 0.01
    max_habituation: float = 0.9
    hebbian_strength: float = 0.0
    hebbian_decay: float = 0.99
    adaptive_temperature: bool = False
    entropy_voting: bool = False
    voting_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.hebbian_strength < 0:
            raise ValueError(f"hebbian_strength must be ≥ 0, got {self.hebbian_strength}")
        if not 0 < self.hebbian_decay <= 1:
            raise ValueError(f"hebbian_decay must be in (0, 1], got {self.hebbian_decay}")
        if not self.voting_temperature > 0:
            raise ValueError(f"voting_temperature must be > 0, got {self.voting_temperature}")

    @property
    def active(self) -> bool:
        return (self.habituation or self.hebbian_strength > 0 or self.adaptive_temperature
                or self.entropy_voting)  # fmt: skip


def _shift(x: torch.Tensor) -> torch.Tensor:
    """``x`` moved one step later in time (position t holds t − 1, zeros at 0); ``[B, T, ...]``."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


class HookedAttention(nn.Module):
    """An ``"attention"`` mixer with the inference hooks (module docstring); shares its weights."""

    supports_cache = False

    def __init__(self, base: Attention, hooks: HookConfig) -> None:
        super().__init__()
        self.base, self.hooks = base, hooks
        self.habituation: nn.Module | None = None
        if hooks.habituation:
            from neuro_attention import HabituatingAttention

            self.habituation = HabituatingAttention(
                habituation_rate=hooks.habituation_rate,
                recovery_rate=hooks.recovery_rate,
                max_habituation=hooks.max_habituation,
            )

    def forward(
        self,
        x: torch.Tensor,
        ctx: SequenceContext,
        precision: torch.Tensor | None = None,
        gain: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if ctx.cache is not None or ctx.keys is not None or ctx.start != 0:
            raise ValueError("hooked attention runs whole unpadded sequences (use_cache=False)")
        a, hk = self.base, self.hooks
        B, T, _ = x.shape
        H, KV, hd = a.n_heads, a.n_kv_heads, a.head_dim
        q, k_pre, v = a.qkv(x).view(B, T, H + 2 * KV, hd).split([H, KV, KV], dim=2)
        q, k = q, k_pre
        q, k = rotate(ctx.rope, q, k)
        if precision is not None:
            q = q * precision[:, :, None, None].to(q.dtype)
        rep = H // KV
        kh = k.repeat_interleave(rep, 2).transpose(1, 2)  # [B, H, T, D]
        vh = v.repeat_interleave(rep, 2).transpose(1, 2)
        qh = q.transpose(1, 2)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        logits = (qh @ kh.transpose(-1, -2)) / math.sqrt(hd)
        if self.habituation is not None:
            kb, _ = self.habituation.key_bias(k_pre)  # type: ignore[operator]
            logits = logits + kb.repeat_interleave(rep, 2).transpose(1, 2)[:, :, None, :]
        if hk.hebbian_strength > 0:
            from neuro_plasticity.ops import fast_weights

            a0 = logits.masked_fill(~causal, -math.inf).softmax(-1)
            read = (a0 @ kh).transpose(1, 2)  # r_t [B, T, H, D]
            memory, _ = fast_weights(q, _shift(q), _shift(read), lr=1.0, decay=hk.hebbian_decay,
                                     backend="reference")  # fmt: skip
            logits = logits + hk.hebbian_strength * (memory.transpose(1, 2) @ kh.transpose(-1, -2))
        logits = logits.masked_fill(~causal, -math.inf)
        attn = logits.softmax(-1)
        if hk.adaptive_temperature or hk.entropy_voting:
            ent = -(attn * attn.clamp_min(1e-30).log()).sum(-1)  # [B, H, T]
            if hk.adaptive_temperature:
                z = (ent - ent.mean(1, keepdim=True)) / ent.std(1, keepdim=True).clamp_min(1e-6)
                temp = (1 + 0.5 * z).clamp(0.5, 2.0)
                attn = (logits / temp[..., None]).softmax(-1)
                ent = -(attn * attn.clamp_min(1e-30).log()).sum(-1)
        out = attn @ vh  # [B, H, T, D]
        if hk.entropy_voting:
            w = F.softmax(-ent / hk.voting_temperature, dim=1)
            out = out * (H * w)[..., None]
        out = out.transpose(1, 2)
        if gain is not None:
            out = out * gain[:, :, None, None].to(out.dtype)
        return a.out(out.reshape(B, T, H * hd))


def apply_hooks(model: Decoder, hooks: HookConfig) -> Decoder:
    """A deep copy of ``model`` (eval mode) with every ``"attention"`` mixer hooked.

    Raises:
        ValueError: a mixer that is not the ``"attention"`` mixer.
    """
    hooked = copy.deepcopy(model).eval()
    for i, block in enumerate(hooked.layers):
        if not isinstance(block.attn, Attention):
            raise ValueError(
                f"model: hooks need the 'attention' mixer; layer {i} has {type(block.attn).__name__}"
            )
        block.attn = HookedAttention(block.attn, hooks)
    return hooked
