"""Population coding over heads (NeuroLlama §1.8): tuning curves, voting, decoding, temperature.

Heads are a population of units; these modules weight or combine per-head outputs
``heads [B, T, H, D]`` per token, so they are causal whenever the heads are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_in_range, check_positive, check_tensor


class PopulationCodedAttention(nn.Module):
    """Per-head tuning to a learnable preferred direction (von Mises-style tuning curve).

        s_th = cos(o_th, p_h),   a_th = exp(κ_h · (s_th − 1)) ∈ (0, 1],   o_th ← a_th · o_th

    Parameters H·D (p) + H (log κ). Source: reference-systems §1.8; tuning curve after
    Georgopoulos et al. 1986. Changed from the published module: its Gaussian exp(−s²/2σ²) peaks
    at s = 0, i.e. when the context is *orthogonal* to the preferred direction (a bug); ours peaks
    at alignment (s = 1) and decreases monotonically with the angle. The published module also
    sums heads into one D-vector (shrinking W_o); we keep the heads separate so the output
    projection, and hence the parameter count, matches the baseline.
    """

    def __init__(self, num_heads: int, head_dim: int, *, kappa: float = 1.0) -> None:
        super().__init__()
        check_positive("num_heads", num_heads)
        check_positive("head_dim", head_dim)
        self.preferred = nn.Parameter(torch.randn(num_heads, head_dim) / head_dim**0.5)
        self.log_kappa = nn.Parameter(
            torch.full((num_heads,), math.log(check_positive("kappa", kappa)))
        )

    def activation(self, heads: torch.Tensor) -> torch.Tensor:
        """``heads [B, T, H, D] → a [B, T, H]`` in (0, 1]."""
        check_tensor("heads", heads, ndim=4, shape=(None, None, *self.preferred.shape))
        cos = F.cosine_similarity(heads, self.preferred.to(heads.dtype)[None, None], dim=-1)
        return torch.exp(self.log_kappa.exp().to(heads.dtype) * (cos - 1.0))

    def forward(self, heads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``heads → (a · heads [B, T, H, D], a [B, T, H])``."""
        a = self.activation(heads)
        return heads * a[..., None], a


def _weighted_sum(heads: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bthd,bth->btd", heads, weights)


class ConfidenceWeightedVoting(nn.Module):
    """Heads vote with a learned confidence; heads below a threshold abstain.

        c_th = σ(w_h · o_th + b_h),   keep_th = c_th ≥ θ (the most confident head always votes)
        w_th = softmax_h(log c_th / τ over kept heads),   out_t = Σ_h w_th o_th

    Parameters H·D + H. Defaults θ = 0.1, τ = 1 (published). Changed: the published output is one
    vector per sequence ``[B, D]``; ours is per token ``[B, T, D]`` (causal), and a token whose
    heads all fall below θ keeps its most confident head instead of dividing by zero.
    """

    def __init__(
        self, num_heads: int, head_dim: int, *, threshold: float = 0.1, temperature: float = 1.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_heads, head_dim))
        self.bias = nn.Parameter(torch.zeros(num_heads))
        self.threshold = check_in_range("threshold", threshold, 0.0, 1.0)
        self.temperature = check_positive("temperature", temperature)

    def forward(self, heads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``heads [B, T, H, D] → (out [B, T, D], weights [B, T, H])``."""
        check_tensor("heads", heads, ndim=4, shape=(None, None, *self.weight.shape))
        logit = (heads * self.weight.to(heads.dtype)).sum(-1) + self.bias.to(heads.dtype)
        log_c = F.logsigmoid(logit)
        keep = (log_c.exp() >= self.threshold) | (logit == logit.amax(-1, keepdim=True))
        weights = torch.softmax(
            (log_c / self.temperature).masked_fill(~keep, float("-inf")), dim=-1
        )
        return _weighted_sum(heads, weights), weights


class EntropyBasedVoting(nn.Module):
    """Heads with sharper attention get more weight: ``w = softmax_h(−E_h / τ)`` (0 parameters).

    ``E`` is the per-head attention entropy from ``modulated_attention(return_entropy=True)``
    (computed inside the kernel; the published version materializes the probabilities).
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)

    def forward(
        self, heads: torch.Tensor, entropy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``heads [B, T, H, D]``, ``entropy [B, T, H]`` → ``(out [B, T, D], weights [B, T, H])``."""
        check_tensor("heads", heads, ndim=4)
        check_tensor("entropy", entropy, shape=tuple(heads.shape[:3]), finite=True)
        weights = torch.softmax(-entropy / self.temperature, dim=-1)
        return _weighted_sum(heads, weights), weights


class PopulationVectorDecoder(nn.Module):
    """Linear read-out to vocabulary logits with a confidence (d·V + V parameters).

    ``confidence`` is the probability mass of the ``top_k`` most likely tokens (published
    ``decode_with_confidence(top_k=8)``; the published aggregation over heads is unspecified, so
    we define it on the decoded distribution).
    """

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, d] → logits [B, T, V]``."""
        check_tensor("x", x, ndim=3, shape=(None, None, self.proj.in_features))
        return self.proj(x)

    def decode_with_confidence(
        self, x: torch.Tensor, top_k: int = 8
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x → (logits [B, T, V], confidence [B, T] in (0, 1])``."""
        logits = self.forward(x)
        k = min(int(check_positive("top_k", top_k)), logits.shape[-1])
        conf = torch.softmax(logits.float(), -1).topk(k, dim=-1).values.sum(-1)
        return logits, conf.to(logits.dtype)


class AdaptiveHeadTemperature(nn.Module):
    """Per-token head temperatures from entropy z-scores across heads (0 parameters).

        T_th = clamp(1 + γ · (E_th − mean_h E_t) / std_h E_t, T_min, T_max),   β_th = 1 / T_th

    Returns β for ``modulated_attention(query_scale=...)``. Defaults γ = 0.5, T in [0.5, 2]
    (published hook). Feed it the entropy of the previous layer or of a first pass: the entropy of
    the attention it rescales is only known after that attention runs.
    """

    def __init__(
        self,
        *,
        gain: float = 0.5,
        min_temperature: float = 0.5,
        max_temperature: float = 2.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.gain = check_positive("gain", gain, allow_zero=True)
        self.t_min = check_positive("min_temperature", min_temperature)
        self.t_max = check_positive("max_temperature", max_temperature)
        if self.t_max < self.t_min:
            raise ValueError(
                f"max_temperature must be ≥ min_temperature, got {max_temperature} < {min_temperature}"
            )
        self.eps = check_positive("eps", eps)

    def forward(self, entropy: torch.Tensor) -> torch.Tensor:
        """``entropy [B, T, H] → β [B, T, H]`` in [1/T_max, 1/T_min]."""
        check_tensor("entropy", entropy, ndim=3, floating=True, finite=True)
        z = (entropy - entropy.mean(-1, keepdim=True)) / (
            entropy.std(-1, keepdim=True, unbiased=False) + self.eps
        )
        return 1.0 / (1.0 + self.gain * z).clamp(self.t_min, self.t_max)


__all__ = [
    "AdaptiveHeadTemperature",
    "ConfidenceWeightedVoting",
    "EntropyBasedVoting",
    "PopulationCodedAttention",
    "PopulationVectorDecoder",
]
