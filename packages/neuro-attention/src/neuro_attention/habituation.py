"""Habituation (NeuroLlama §1.8): content-based adaptation, cross-layer decay, novelty boost."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_attention.ops.modulated_attention import (
    AttentionBackend,
    attention_probabilities_reference,
    modulated_attention,
)
from neuro_core.validation import check_in_range, check_positive, check_tensor

#: Keys per step of the chunked scan in :func:`habituation_exposure`: memory is
#: O(T·D + B·H_kv·(chunk² + D²)), linear in T; the result does not depend on it.
_CHUNK = 64

#: Pseudo-observations of the isotropic value 1/D in the typical-similarity baseline ĝ, so that
#: ĝ is defined from the first position on (one observation: forgotten after a few keys).
_BASELINE_PRIOR = 1.0


class HabituationState(NamedTuple):
    """Explicit inference state of :func:`habituation_exposure` after a chunk of keys.

    Attributes:
        trace: ``[B, H_kv, D, D]`` P, the λ-decayed sum of ``u uᵀ`` over past centered keys.
        key_sum: ``[B, H_kv, D]`` the γ-decayed sum of past keys (running mean numerator).
        key_weight: ``[B, H_kv]`` its weight (running mean denominator).
        baseline_sum: ``[B, H_kv]`` the γ-decayed sum of past similarity ratios A/N.
        baseline_weight: ``[B, H_kv]`` its weight.
    """

    trace: torch.Tensor
    key_sum: torch.Tensor
    key_weight: torch.Tensor
    baseline_sum: torch.Tensor
    baseline_weight: torch.Tensor


def _decay_matrix(n: int, rate: float, like: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` with entry ``rate^(p − 1 − p')`` for ``p' < p`` and 0 elsewhere."""
    pos = torch.arange(n, device=like.device, dtype=like.dtype)
    lag = pos[:, None] - pos[None, :] - 1
    return torch.where(lag >= 0, torch.pow(rate, lag.clamp_min(0)), 0.0)


def _zero_state(b: int, hkv: int, d: int, like: torch.Tensor) -> HabituationState:
    z = like.new_zeros
    return HabituationState(z(b, hkv, d, d), z(b, hkv, d), z(b, hkv), z(b, hkv), z(b, hkv))


def habituation_exposure(
    k: torch.Tensor,
    decay: float,
    state: HabituationState | None = None,
    *,
    mean_decay: float = 1.0,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, HabituationState]:
    """Causal, stimulus-specific exposure of each key to repeats among earlier keys.

    Keys are centered on their running mean (trained keys share a mean direction, which would
    make every key look familiar) and compared by squared cosine, against the similarity that is
    typical of this sequence:

        μ_j = Σ_{j'<j} γ^{j−1−j'} k_{j'} / Σ_{j'<j} γ^{j−1−j'}      running key mean (γ = mean_decay)
        u_j = (k_j − μ_j) / ‖k_j − μ_j‖       (u_0 = 0: no mean yet)
        A_j = Σ_{j'<j} λ^{j−1−j'} (u_j·u_{j'})² = u_jᵀ P_j u_j        recent similarity, λ = decay
        N_j = Σ_{j'<j} λ^{j−1−j'} ‖u_{j'}‖² = tr P_j                  recent mass
        ĝ_j = (1/D + Σ_{j'<j} γ^{j−1−j'} A_{j'}/N_{j'}) / (1 + Σ_{j'<j} γ^{j−1−j'})   typical
        C_j = max(0, A_j − N_j ĝ_j) / (1 − ĝ_j)

    A repeat of key j' adds λ^{j−1−j'} to C_j (its squared cosine is 1 instead of the typical ĝ);
    unrelated keys add ≈ 0 on average. C_j is a decayed count of recent repeats of key j, the
    content-based version of the published per-position-pair count. Everything is a causal
    linear recurrence in j, computed in chunks of ``_CHUNK`` keys, so memory is linear in T (no
    ``[T, T]`` matrix) and the state ``(P, Σγk, Σγ, Σγ·A/N, Σγ)`` continues the sequence.

    Args:
        k: ``[B, T, H_kv, D]`` keys (before any rotary embedding: RoPE would make the same key
            at two positions look different).
        decay: λ = 1 − recovery rate, in [0, 1).
        state: :class:`HabituationState` carried from a previous chunk, or None (fresh sequence).
        mean_decay: γ ∈ (0, 1] of the running key mean and of the baseline ĝ (1 = the mean over
            the whole prefix).
        valid: ``[B, T]`` bool, False for padding keys, which then take no part in the mean, the
            trace or the baseline and get C = 0 (decays still count their positions), or None.

    Returns:
        ``(C [B, T, H_kv] in k.dtype, state)``; ``state`` continues the sequence in the next call.
    """
    check_tensor("k", k, ndim=4, floating=True)
    check_in_range("decay", decay, 0.0, 1.0, high_open=True)
    check_in_range("mean_decay", mean_decay, 0.0, 1.0, low_open=True)
    b, t, hkv, d = k.shape
    dt = torch.promote_types(k.dtype, torch.float32)
    x = k.to(dt).permute(0, 2, 1, 3)  # [B, H_kv, T, D]
    if valid is not None:
        check_tensor("valid", valid, shape=(b, t), dtype=torch.bool, device=k.device)
    real = x.new_ones(b, 1, t) if valid is None else valid[:, None].to(dt)  # [B, 1, T]
    if state is None:
        st = _zero_state(b, hkv, d, x)
    else:
        st = HabituationState(*(s.to(dt) for s in state))
    p_tr, k_sum, k_w, g_sum, g_w = st
    chunks = []
    for c0 in range(0, t, _CHUNK):
        xc = x[:, :, c0 : c0 + _CHUNK]
        rc = real[..., c0 : c0 + _CHUNK]
        n = xc.shape[2]
        pos = torch.arange(n, device=x.device, dtype=dt)
        lg, ll = _decay_matrix(n, mean_decay, x), _decay_matrix(n, decay, x)
        gp, lp = torch.pow(mean_decay, pos), torch.pow(decay, pos)
        # running mean of the keys before each position
        ksum = gp[:, None] * k_sum[..., None, :] + lg @ (xc * rc[..., None])
        kw = gp * k_w[..., None] + rc @ lg.T
        has_mean = kw > 0
        mu = ksum / torch.where(has_mean, kw, 1.0)[..., None]
        u = F.normalize(xc - mu, dim=-1) * (has_mean * rc)[..., None]
        sq = (u @ u.transpose(-1, -2)).square()  # (u_p·u_p')²
        a = lp * ((u @ p_tr) * u).sum(-1) + (sq * ll).sum(-1)
        mass = lp * torch.diagonal(p_tr, dim1=-2, dim2=-1).sum(-1)[..., None]
        mass = mass + u.square().sum(-1) @ ll.T
        seen = (mass > 0) & (rc > 0)
        ratio = torch.where(seen, a / torch.where(seen, mass, 1.0), 0.0)
        seen_f = seen.to(dt)
        g_num = gp * g_sum[..., None] + (ratio * seen_f) @ lg.T + _BASELINE_PRIOR / d
        g_den = gp * g_w[..., None] + seen_f @ lg.T + _BASELINE_PRIOR
        g = g_num / g_den
        chunks.append(rc * (a - mass * g).clamp_min(0.0) / (1.0 - g).clamp_min(1e-6))
        # carry the sums past the chunk
        wl = torch.pow(decay, n - 1 - pos)
        wg = torch.pow(mean_decay, n - 1 - pos)
        p_tr = decay**n * p_tr + (u * wl[:, None]).transpose(-1, -2) @ u
        k_sum = mean_decay**n * k_sum + (xc * (rc * wg)[..., None]).sum(-2)
        k_w = mean_decay**n * k_w + (rc * wg).sum(-1)
        g_sum = mean_decay**n * g_sum + (ratio * seen_f * wg).sum(-1)
        g_w = mean_decay**n * g_w + (seen_f * wg).sum(-1)
    exposure = torch.cat(chunks, 2) if chunks else x.new_zeros(b, hkv, 0)
    return exposure.transpose(1, 2).to(k.dtype), HabituationState(p_tr, k_sum, k_w, g_sum, g_w)


HabituationMode = Literal["content", "position_pair"]


class HabituatingAttention(nn.Module):
    """Stimulus-specific adaptation: keys that repeat recent keys lose attention weight.

        c_j = −log(1 + r · C_j),  floored at log(1 − max_habituation)
        out = modulated_attention(q, k, v, key_bias=c)

    with C_j from :func:`habituation_exposure` (computed on the keys given, which should be the
    keys before RoPE). Multiplying a key's probability by 1/(1 + r·C) and renormalizing (the
    published A ⊙ 1/(1 + r·C)) is adding c_j to its logit. Defaults: r = 0.1
    (habituation_rate), λ = 1 − 0.01 (recovery_rate), max_habituation 0.9 (published config);
    γ = 1 (mean_decay). 0 parameters.

    ``mode="content"`` (default, ours): causal, content-based, memory linear in T, and stateless
    unless the caller passes the returned :class:`HabituationState` back in.

    ``mode="position_pair"`` (published: NeuroLlama's ``HabituatingAttention``,
    reference-systems §1.8): a count ``C [H, max_seq_len, max_seq_len]`` per head and **position
    pair**, kept in a module buffer that persists across calls and batches:
    ``A' = normalize_rows(A ⊙ 1/(1 + r·C))`` (floored like ours), then
    ``C ← (1 − recovery_rate)·C + 1[mean_b A' > attention_threshold]`` after every forward. It
    suppresses positions, not content, materializes ``[B, H, T, T]``, and leaks state between
    calls and batches (registered in the contract catalogue as an expected failure). Kept only
    to reproduce the published behaviour; ``reset()`` zeroes the buffer.
    """

    def __init__(
        self,
        *,
        habituation_rate: float = 0.1,
        recovery_rate: float = 0.01,
        max_habituation: float = 0.9,
        mean_decay: float = 1.0,
        mode: HabituationMode = "content",
        num_heads: int | None = None,
        max_seq_len: int = 4096,
        attention_threshold: float = 0.1,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        self.rate = check_positive("habituation_rate", habituation_rate)
        self.recovery = check_in_range("recovery_rate", recovery_rate, 0.0, 1.0, low_open=True)
        self.decay = 1.0 - self.recovery
        self.mean_decay = check_in_range("mean_decay", mean_decay, 0.0, 1.0, low_open=True)
        # math, not torch: the module must build on the meta device (exact parameter counts)
        self.floor = math.log(
            1.0 - check_in_range("max_habituation", max_habituation, 0.0, 1.0, high_open=True)
        )
        if mode not in ("content", "position_pair"):
            raise ValueError(f"mode must be 'content' or 'position_pair', got {mode!r}")
        self.mode: HabituationMode = mode
        self.backend: AttentionBackend = backend
        self.threshold = check_in_range(
            "attention_threshold", attention_threshold, 0.0, 1.0, low_open=True
        )
        self.count: torch.Tensor | None
        if mode == "position_pair":
            if num_heads is None:
                raise ValueError("num_heads is required with mode='position_pair'")
            check_positive("num_heads", num_heads)
            check_positive("max_seq_len", max_seq_len)
            self.register_buffer("count", torch.zeros(num_heads, max_seq_len, max_seq_len))
        else:
            self.count = None

    def key_bias(
        self,
        k: torch.Tensor,
        state: HabituationState | None = None,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, HabituationState]:
        """``k [B, T, H_kv, D]`` (pre-RoPE) → ``(key_bias [B, T, H_kv], state)``.

        ``valid [B, T]`` bool marks real (unpadded) keys; see :func:`habituation_exposure`.
        """
        check_tensor("k", k, ndim=4, floating=True)
        if self.mode != "content":
            raise ValueError("key_bias needs mode='content' (the published count is per pair)")
        if state is not None:
            b, _, hkv, d = k.shape
            shapes = ((b, hkv, d, d), (b, hkv, d), (b, hkv), (b, hkv), (b, hkv))
            for name, x, shape in zip(state._fields, state, shapes):
                check_tensor(f"state.{name}", x, shape=shape, device=k.device)
        exposure, new_state = habituation_exposure(
            k, self.decay, state, mean_decay=self.mean_decay, valid=valid
        )
        bias = (-torch.log1p(self.rate * exposure.float())).clamp_min(self.floor)
        return bias.to(k.dtype), new_state

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        state: HabituationState | None = None,
    ) -> tuple[torch.Tensor, HabituationState | None]:
        """``q [B, T, H, D]``, ``k, v [B, T, H_kv, D]`` → ``(out [B, T, H, D], state)``.

        ``k`` is used both for the habituation (so pass keys without RoPE here, or use
        :meth:`key_bias` on pre-RoPE keys and :func:`modulated_attention` yourself). The state is
        None in ``mode="position_pair"``, whose state lives in the module buffer.
        """
        if self.mode == "position_pair":
            return self._published(q, k, v), None
        bias, new_state = self.key_bias(k, state)
        return modulated_attention(q, k, v, key_bias=bias, backend=self.backend), new_state

    def _published(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        check_tensor("q", q, ndim=4, floating=True)
        assert self.count is not None
        t, h = q.shape[1:3]
        if h != self.count.shape[0] or t > self.count.shape[1]:
            raise ValueError(
                f"q: mode='position_pair' was built for {self.count.shape[0]} heads and "
                f"max_seq_len {self.count.shape[1]}, got H={h}, T={t}"
            )
        count = self.count[:, :t, :t]
        bias = (-torch.log1p(self.rate * count)).clamp_min(self.floor)
        probs = attention_probabilities_reference(q, k)  # [B, H, T, T]
        p = probs * bias.exp()
        p = p / p.sum(-1, keepdim=True)
        group = h // k.shape[2]
        out = torch.einsum("bhij,bjhd->bihd", p, v.float().repeat_interleave(group, 2))
        with torch.no_grad():
            hit = (p.mean(0) > self.threshold).float()
            self.count[:, :t, :t] = self.decay * count + hit
        return out.to(q.dtype)

    def reset(self) -> None:
        """Zero the published position-pair count (``mode="position_pair"``)."""
        if self.count is not None:
            self.count.zero_()


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
    "HabituationMode",
    "HabituationState",
    "NoveltyDetector",
    "attention_decay_step",
    "habituation_exposure",
]
