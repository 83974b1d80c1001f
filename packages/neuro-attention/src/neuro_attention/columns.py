"""Cortical columns (NeuroLlama §1.5): GQA groups as columns, lateral inhibition, layer tiers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neuro_attention.ops.modulated_attention import (
    AttentionBackend,
    attention_probabilities_reference,
    modulated_attention,
)
from neuro_core.validation import check_positive, check_tensor


def js_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Jensen-Shannon divergence in nats, ½KL(P‖M) + ½KL(Q‖M) with M = (P+Q)/2; in [0, ln 2]."""
    m = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(
            a > 0, a * (a.clamp_min(1e-30).log() - m.clamp_min(1e-30).log()), 0.0
        ).sum(dim)

    return 0.5 * kl(p) + 0.5 * kl(q)


def column_specialization(probs: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean pairwise JS divergence between columns' mean attention distributions.

        Ā_g = mean over heads in g, batch and queries of p[b, h, i, :]   (a distribution over keys)
        div = mean_{g < g'} JS(Ā_g ‖ Ā_g')

    Args:
        probs: ``[B, H, T, T]`` attention probabilities, heads grouped contiguously.
        num_groups: G; H must be divisible by G.

    Returns:
        0-d tensor in [0, ln 2] (0 when G = 1).
    """
    b, h, t, _ = probs.shape
    mean = probs.reshape(b, num_groups, h // num_groups, t, t).mean(dim=(0, 2, 3))  # [G, T]
    pairs = [(i, j) for i in range(num_groups) for j in range(i + 1, num_groups)]
    if not pairs:
        return probs.new_zeros(())
    return torch.stack([js_divergence(mean[i], mean[j]) for i, j in pairs]).mean()


class CorticalColumnAttention(nn.Module):
    """Grouped-query attention whose G key/value groups are the columns.

        out = W_o · concat_h modulated_attention(W_q x, W_k x, W_v x)   (H = G · heads_per_group)
        specialization = column_specialization(p, G)

    Parameters d·(H·d_h) + 2·d·(G·d_h) + (H·d_h)·d (no biases). Source: reference-systems §1.5.
    The output uses the fused op. The specialization diagnostic needs the column-mean attention
    maps, so it materializes ``[B, H, T, T]`` probabilities (with the reference, without
    gradients): it is a measurement, as in the published module, not a loss term. It averages over
    the batch, so it is a batch statistic; the output stays per item.
    """

    def __init__(
        self,
        d_model: int,
        num_groups: int,
        heads_per_group: int,
        head_dim: int,
        *,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        for name, v in (
            ("d_model", d_model),
            ("num_groups", num_groups),
            ("heads_per_group", heads_per_group),
            ("head_dim", head_dim),
        ):
            check_positive(name, v)
        self.g, self.hpg, self.dh = num_groups, heads_per_group, head_dim
        h = num_groups * heads_per_group
        self.backend: AttentionBackend = backend
        self.wq = nn.Linear(d_model, h * head_dim, bias=False)
        self.wk = nn.Linear(d_model, num_groups * head_dim, bias=False)
        self.wv = nn.Linear(d_model, num_groups * head_dim, bias=False)
        self.wo = nn.Linear(h * head_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d] → (out [B, T, d], specialization 0-d)``."""
        check_tensor("x", x, ndim=3, shape=(None, None, self.wq.in_features), floating=True)
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.g * self.hpg, self.dh)
        k = self.wk(x).view(b, t, self.g, self.dh)
        v = self.wv(x).view(b, t, self.g, self.dh)
        out = modulated_attention(q, k, v, backend=self.backend)
        with torch.no_grad():
            probs = attention_probabilities_reference(q, k)
        return self.wo(out.reshape(b, t, -1)), column_specialization(probs, self.g)


class LateralInhibition(nn.Module):
    """Columns inhibit each other: ``y_g = x_g − Σ_{g'≠g} σ(L_gg') · x_g'`` (G² parameters).

    L starts at ``init_logit = -10`` (σ ≈ 4.5e-5), so the layer starts as the identity up to
    4.5e-5 and can learn inhibition by gradient or through :meth:`anti_hebbian_delta` (Földiák
    1990: ΔL_gg' = η · mean(a_g · a_g')). Changed from the published sketch: its einsum
    ``bg...,gg->bg...`` reads the diagonal (set to 1), so it is a no-op, and it fills the diagonal
    in place on a sigmoid output, which breaks autograd; we mask the diagonal out of place.
    """

    def __init__(self, num_groups: int, *, init_logit: float = -10.0) -> None:
        super().__init__()
        check_positive("num_groups", num_groups)
        self.logits = nn.Parameter(torch.full((num_groups, num_groups), float(init_logit)))

    def inhibition(self) -> torch.Tensor:
        """``[G, G]`` weights σ(L) with a zero diagonal."""
        return torch.sigmoid(self.logits) * self._off_diagonal()

    def _off_diagonal(self) -> torch.Tensor:
        g = self.logits.shape[0]
        return 1.0 - torch.eye(g, dtype=self.logits.dtype, device=self.logits.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, G, ...] → [B, T, G, ...]``."""
        g = self.logits.shape[0]
        check_tensor("x", x, floating=True)
        if x.ndim < 3 or x.shape[2] != g:
            raise ValueError(f"x must have shape [B, T, {g}, ...], got {tuple(x.shape)}")
        w = self.inhibition().to(x.dtype)
        return x - torch.einsum("gh,bth...->btg...", w, x)

    @torch.no_grad()
    def anti_hebbian_delta(self, activity: torch.Tensor, lr: float = 0.01) -> torch.Tensor:
        """ΔL = lr · mean_{b,t}(a_g a_g') for ``activity [B, T, G]`` (returned, never applied)."""
        check_tensor("activity", activity, ndim=3, shape=(None, None, self.logits.shape[0]))
        a = activity.reshape(-1, activity.shape[-1]).to(self.logits.dtype)
        return lr * (a.T @ a) / a.shape[0] * self._off_diagonal()


@dataclass(frozen=True, kw_only=True)
class HierarchicalColumnOrganizer:
    """Layer tiers: layers < 10 "syntactic", < 20 "semantic", else "abstract" (published split).

    Pure bookkeeping with no parameters and no effect on the forward pass. The target
    distribution over the three tiers puts 0.7 on the layer's own tier, 0.2 on the adjacent tier
    (the one above; for "abstract", the one below) and 0.1 on the farthest; this reproduces the
    published example for layer 15, [0.1, 0.7, 0.2].
    """

    num_layers: int
    boundaries: tuple[int, int] = (10, 20)

    TIERS = ("syntactic", "semantic", "abstract")

    def __post_init__(self) -> None:
        check_positive("num_layers", self.num_layers)
        if not 0 <= self.boundaries[0] <= self.boundaries[1]:
            raise ValueError(f"boundaries must be increasing and ≥ 0, got {self.boundaries}")

    def tier(self, layer: int) -> int:
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}), got {layer}")
        return 0 if layer < self.boundaries[0] else (1 if layer < self.boundaries[1] else 2)

    def specialization_targets(self, layer: int) -> torch.Tensor:
        """``[3]`` target distribution over (syntactic, semantic, abstract)."""
        table = ((0.7, 0.2, 0.1), (0.1, 0.7, 0.2), (0.1, 0.2, 0.7))
        return torch.tensor(table[self.tier(layer)])


__all__ = [
    "CorticalColumnAttention",
    "HierarchicalColumnOrganizer",
    "LateralInhibition",
    "column_specialization",
    "js_divergence",
]
