"""Query gating from external per-token signals: Aura's prosody and memory, NCN's β and g.

Each module turns its signals into ``query_scale`` (β, an inverse temperature) or ``head_gain``
(g) ``[B, T, H]`` for :func:`neuro_attention.modulated_attention`.
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_core.validation import check_positive, check_tensor


class ProsodyQueryGate(nn.Module):
    """Aura's prosody/arousal/valence query scaling (reference-systems §3.1).

        β_th = (1 + σ(W p_t + b))_h · (1 + 0.2 tanh(arousal_t)) · (1 + 0.05 tanh(valence_t))

    with W: n_prosody → H; parameters n_prosody·H + H. Aura multiplies the query by this factor
    before SDPA, i.e. it is a per-token attention temperature, which is what β is. Coefficients
    0.2 and 0.05 are the published constants (fields ``arousal_gain``, ``valence_gain``).
    Changed: Aura's colab variant derives arousal/valence from a mean over the whole sequence and
    batch (non-causal); here they are per-token inputs supplied by the caller.
    """

    def __init__(
        self,
        num_heads: int,
        *,
        num_prosody: int = 4,
        arousal_gain: float = 0.2,
        valence_gain: float = 0.05,
    ) -> None:
        super().__init__()
        check_positive("num_heads", num_heads)
        check_positive("num_prosody", num_prosody)
        self.proj = nn.Linear(num_prosody, num_heads)
        self.arousal_gain = check_positive("arousal_gain", arousal_gain, allow_zero=True)
        self.valence_gain = check_positive("valence_gain", valence_gain, allow_zero=True)

    def forward(
        self, prosody: torch.Tensor, arousal: torch.Tensor, valence: torch.Tensor
    ) -> torch.Tensor:
        """``prosody [B, T, P]``, ``arousal [B, T]``, ``valence [B, T]`` → ``β [B, T, H]``."""
        check_tensor(
            "prosody", prosody, ndim=3, shape=(None, None, self.proj.in_features), finite=True
        )
        bt = tuple(prosody.shape[:2])
        check_tensor("arousal", arousal, shape=bt, finite=True)
        check_tensor("valence", valence, shape=bt, finite=True)
        emotion = (1 + self.arousal_gain * torch.tanh(arousal)) * (
            1 + self.valence_gain * torch.tanh(valence)
        )
        return (1 + torch.sigmoid(self.proj(prosody))) * emotion[..., None]


class MemoryTemperature(nn.Module):
    """Aura's "memory" query factor: ``β_t = 1 + 0.5 · σ(w · h_t + b)`` ∈ [1, 1.5] (d + 1 params).

    Despite its name it retrieves nothing (reference-systems §3.1): it is a per-token inverse
    temperature computed from the layer input, broadcast over heads.
    """

    def __init__(self, d_model: int, num_heads: int, *, strength: float = 0.5) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, 1)
        self.num_heads = int(check_positive("num_heads", num_heads))
        self.strength = check_positive("strength", strength, allow_zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, d] → β [B, T, H]``."""
        check_tensor("x", x, ndim=3, shape=(None, None, self.proj.in_features))
        beta = 1 + self.strength * torch.sigmoid(self.proj(x))
        return beta.expand(*x.shape[:2], self.num_heads)


class NeuromodulatorySignals(nn.Module):
    """Consumer side of NCN (reference-systems §4.1): per-token precision β and gain g of a layer.

    The control network emits ``beta, gain`` of shape ``[B, T, L]`` (one value per layer) or
    ``[B, T, L, H]``; this picks layer ``layer`` and broadcasts to heads. NCN applies
    ``q ← β q`` before SDPA's 1/√D and ``x ← x + g · Attn(x)``; with g as ``head_gain`` the op
    multiplies every head's output by g before W_o, which is the same since W_o is linear.
    0 parameters.
    """

    def __init__(self, layer: int, num_heads: int) -> None:
        super().__init__()
        if layer < 0:
            raise ValueError(f"layer must be ≥ 0, got {layer}")
        self.layer = int(layer)
        self.num_heads = int(check_positive("num_heads", num_heads))

    def _pick(self, name: str, x: torch.Tensor) -> torch.Tensor:
        check_tensor(name, x, ndim=(3, 4), floating=True, finite=True)
        if x.shape[2] <= self.layer:
            raise ValueError(f"{name} has {x.shape[2]} layers, layer {self.layer} requested")
        sel = x[:, :, self.layer]
        if sel.ndim == 2:
            return sel[..., None].expand(*sel.shape, self.num_heads)
        if sel.shape[-1] != self.num_heads:
            raise ValueError(
                f"{name} must have {self.num_heads} heads in its last dim, got {sel.shape[-1]}"
            )
        return sel

    def forward(self, beta: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``beta, gain [B, T, L(, H)] → (query_scale [B, T, H], head_gain [B, T, H])``."""
        return self._pick("beta", beta), self._pick("gain", gain)


__all__ = ["MemoryTemperature", "NeuromodulatorySignals", "ProsodyQueryGate"]
