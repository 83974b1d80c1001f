"""Habituation (NeuroLlama §1.8): content-based adaptation, cross-layer decay, novelty boost."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_attention.ops.modulated_attention import AttentionBackend, modulated_attention
from neuro_core.validation import check_in_range, check_positive, check_tensor


class HabituationState(NamedTuple):
    """Explicit inference state: the decayed sum of past normalized keys ``[B, H_kv, D]``."""

    trace: torch.Tensor


def habituation_exposure(
    k: torch.Tensor, decay: float, trace: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal, content-based exposure of each key to similar earlier keys.

        k̂_j = k_j / ‖k_j‖,   m_j = Σ_{j' < j} λ^{j−1−j'} k̂_{j'} (+ λ^j m₀),   C_j = max(0, k̂_j · m_j)

    Args:
        k: ``[B, T, H_kv, D]`` keys.
        decay: λ = 1 − recovery rate, in [0, 1).
        trace: ``[B, H_kv, D]`` m₀ carried from a previous chunk (stateful inference), or None.

    Returns:
        ``(C [B, T, H_kv], m_T [B, H_kv, D])``; m_T continues the sequence in the next call.
    """
    t = k.shape[1]
    kn = F.normalize(k.float(), dim=-1)
    pos = torch.arange(t, device=k.device, dtype=torch.float32)
    # L_jj' = λ^{j−1−j'} for j' < j: a [T, T] decay matrix shared by every batch item and head
    lag = pos[:, None] - pos[None, :] - 1
    lmat = torch.where(lag >= 0, torch.pow(torch.tensor(decay), lag.clamp_min(0)), 0.0)
    m = torch.einsum("js,bshd->bjhd", lmat, kn)
    if trace is not None:
        m = m + torch.pow(torch.tensor(decay), pos)[None, :, None, None] * trace.float()[:, None]
    exposure = (kn * m).sum(-1).clamp_min(0.0)
    last = torch.einsum("s,bshd->bhd", torch.pow(torch.tensor(decay), t - 1 - pos), kn)
    if trace is not None:
        last = last + decay**t * trace.float()
    return exposure.to(k.dtype), last


class HabituatingAttention(nn.Module):
    """Stimulus-specific adaptation: keys similar to recent keys lose attention weight.

        c_j = −log(1 + r · C_j),  floored at log(1 − max_habituation)
        out = modulated_attention(q, k, v, key_bias=c)

    with C_j from :func:`habituation_exposure`. Multiplying a key's probability by
    1/(1 + r·C) and renormalizing (the published A ⊙ 1/(1 + r·C)) is adding c_j to its logit.
    Defaults: r = 0.1 (habituation_rate), λ = 1 − 0.01 (recovery_rate), max_habituation 0.9
    (published config). 0 parameters.

    Changed from the published module: its count C is indexed by **position pair** (i, j),
    accumulated across calls in a ``[H, T_max, T_max]`` buffer, so it suppresses positions rather
    than content and leaks state across batches. Ours is driven by key content, causal (key j's
    exposure uses keys < j only) and stateless unless the caller passes the returned
    :class:`HabituationState` back in (stateful inference over chunks).
    """

    def __init__(
        self,
        *,
        habituation_rate: float = 0.1,
        recovery_rate: float = 0.01,
        max_habituation: float = 0.9,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        self.rate = check_positive("habituation_rate", habituation_rate)
        self.decay = 1.0 - check_in_range("recovery_rate", recovery_rate, 0.0, 1.0, low_open=True)
        self.floor = float(
            torch.log(
                torch.tensor(
                    1.0
                    - check_in_range("max_habituation", max_habituation, 0.0, 1.0, high_open=True)
                )
            )
        )
        self.backend: AttentionBackend = backend

    def key_bias(
        self, k: torch.Tensor, state: HabituationState | None = None
    ) -> tuple[torch.Tensor, HabituationState]:
        """``k [B, T, H_kv, D] → (key_bias [B, T, H_kv], state)``."""
        check_tensor("k", k, ndim=4, floating=True)
        trace = None if state is None else state.trace
        if trace is not None:
            check_tensor("state.trace", trace, shape=(k.shape[0], k.shape[2], k.shape[3]))
        exposure, last = habituation_exposure(k, self.decay, trace)
        bias = (-torch.log1p(self.rate * exposure.float())).clamp_min(self.floor)
        return bias.to(k.dtype), HabituationState(last)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        state: HabituationState | None = None,
    ) -> tuple[torch.Tensor, HabituationState]:
        """``q [B, T, H, D]``, ``k, v [B, T, H_kv, D]`` → ``(out [B, T, H, D], state)``."""
        bias, new_state = self.key_bias(k, state)
        return modulated_attention(q, k, v, key_bias=bias, backend=self.backend), new_state


def attention_decay_step(
    probs: torch.Tensor, count: torch.Tensor | None, decay_rate: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of cross-layer decay on materialized probabilities.

        A' = normalize_rows(A / (1 + r · C)),   C ← C + A'

    Args:
        probs: ``[B, H, T, T]`` attention probabilities of this layer (rows sum to 1).
        count: ``[B, H, T, T]`` accumulated attention of earlier layers, or None at the first.
        decay_rate: r (published default 0.05).

    Returns:
        ``(A', C)``. Causal when ``probs`` is causal (zeros stay zeros).
    """
    if count is None:
        return probs, probs
    scaled = probs / (1.0 + decay_rate * count)
    out = scaled / scaled.sum(-1, keepdim=True).clamp_min(1e-30)
    return out, count + out


class AttentionDecay(nn.Module):
    """Cross-layer cumulative decay (published default r = 0.05; 0 parameters).

    Within one forward pass, a pair attended by earlier layers gets less weight in later layers.
    The count is per position pair by definition, so this operates on materialized ``[B, H, T, T]``
    probabilities (O(T²) memory) and cannot run inside the fused kernel. The count is passed in and
    returned, never stored on the module (the published version keeps it across calls).
    """

    def __init__(self, decay_rate: float = 0.05) -> None:
        super().__init__()
        self.decay_rate = check_positive("decay_rate", decay_rate, allow_zero=True)

    def forward(
        self, probs: torch.Tensor, count: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_tensor("probs", probs, ndim=4, floating=True)
        if count is not None:
            check_tensor("count", count, shape=tuple(probs.shape), device=probs.device)
        return attention_decay_step(probs, count, self.decay_rate)


class NoveltyDetector(nn.Module):
    """Dishabituation boost in [1, 2] when a signal exceeds its habituated expectation.

        e_t = causal EMA of x over steps < t (e_0 = x_0),   r_t = x_t / (e_t + ε)
        novel_t = r_t > θ,   boost_t = 1 + σ(κ · (r_t − θ)) ∈ (1, 2)

    ``x [B, T, H]`` is any non-negative per-head signal (e.g. the attention a head pays to the
    newest key, or its entropy); the boost is meant as ``head_gain``. Defaults: θ = 2
    (published surprise_threshold), EMA decay 0.9, κ = 4. 0 parameters.
    Changed from the published reading: a hard 2× mask becomes a smooth, bounded boost (the mask
    is still returned) and the expectation is causal.
    """

    def __init__(
        self,
        surprise_threshold: float = 2.0,
        *,
        ema_decay: float = 0.9,
        sharpness: float = 4.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.threshold = check_positive("surprise_threshold", surprise_threshold)
        self.decay = check_in_range("ema_decay", ema_decay, 0.0, 1.0, high_open=True)
        self.sharpness = check_positive("sharpness", sharpness)
        self.eps = check_positive("eps", eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, H] → (boost [B, T, H] in [1, 2], novel [B, T, H] bool)``."""
        check_tensor("x", x, ndim=3, floating=True, finite=True)
        t = x.shape[1]
        pos = torch.arange(t, device=x.device, dtype=torch.float32)
        lag = pos[:, None] - pos[None, :] - 1
        w = torch.where(
            lag >= 0, (1 - self.decay) * torch.pow(torch.tensor(self.decay), lag.clamp_min(0)), 0.0
        )
        # e_t = Σ_{s<t} (1−λ)λ^{t−1−s} x_s + λ^t x_0: a normalized EMA started at x_0
        w[:, 0] += torch.pow(torch.tensor(self.decay), pos)
        w[0, 0] = 1.0
        expected = torch.einsum("ts,bsh->bth", w.to(x.dtype), x)
        ratio = x / (expected.abs() + self.eps)
        boost = 1.0 + torch.sigmoid(self.sharpness * (ratio - self.threshold))
        return boost, ratio > self.threshold


__all__ = [
    "AttentionDecay",
    "HabituatingAttention",
    "HabituationState",
    "NoveltyDetector",
    "attention_decay_step",
    "habituation_exposure",
]
