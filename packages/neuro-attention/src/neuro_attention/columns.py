"""Cortical columns (NeuroLlama §1.5): GQA groups as columns, lateral inhibition, layer tiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from neuro_attention.ops.modulated_attention import (
    AttentionBackend,
    attention_probabilities_reference,
    modulated_attention,
)
from neuro_attention.ops.modulated_attention.blockwise import auto_block
from neuro_core.validation import check_positive, check_tensor


def js_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Jensen-Shannon divergence in nats, ½KL(P‖M) + ½KL(Q‖M) with M = (P+Q)/2; in [0, ln 2]."""
    m = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(
            a > 0, a * (a.clamp_min(1e-30).log() - m.clamp_min(1e-30).log()), 0.0
        ).sum(dim)

    return 0.5 * kl(p) + 0.5 * kl(q)


def column_attention_mass(
    q: torch.Tensor, k: torch.Tensor, *, causal: bool = True, block: int | None = None
) -> torch.Tensor:
    """Attention mass each key receives, averaged over queries, computed blockwise.

        m[b, h, j] = (1/T) Σ_i p[b, h, i, j]      (p of :func:`attention_probabilities_reference`)

    Query blocks of ``block`` rows are attended against the keys they can see and summed, so
    memory is O(B·H·block·T), never ``[B, H, T, T]``. Each row of p sums to 1, so ``m`` is a
    distribution over keys.

    Args:
        q: ``[B, T, H, D]``.
        k: ``[B, T, H_kv, D]``, ``H % H_kv == 0``.
        causal: causal attention (default True).
        block: query rows per step; None picks the blockwise path's automatic size.

    Returns:
        ``[B, H, T]`` in at least fp32.
    """
    check_tensor("q", q, ndim=4, floating=True)
    check_tensor("k", k, ndim=4, shape=(q.shape[0], q.shape[1], None, q.shape[3]), dtype=q.dtype)
    b, t, h, _ = q.shape
    if block is None:
        block = auto_block(b, h, t)
    check_positive("block", block)
    mass = torch.zeros(b, h, t, dtype=torch.promote_types(q.dtype, torch.float32), device=q.device)
    for i0 in range(0, t, block):
        i1 = min(t, i0 + block)
        # causal: queries i0:i1 are the last rows of the prefix 0:i1 (the decode layout);
        # non-causal: they see every key, and without masks or a gate position does not matter
        hi = i1 if causal else t
        p = attention_probabilities_reference(q[:, i0:i1], k[:, :hi], causal=causal)
        mass[..., :hi] += p.sum(2)
    return mass / t


def specialization_from_mass(mass: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean pairwise JS divergence between columns' mean attention distributions.

        Ā_g = mean over heads in g and batch of m[b, h, :]   (m from :func:`column_attention_mass`)
        div = mean_{g < g'} JS(Ā_g ‖ Ā_g')

    Args:
        mass: ``[B, H, T]`` query-averaged attention mass per key, heads grouped contiguously.
        num_groups: G; H must be divisible by G.

    Returns:
        0-d tensor in [0, ln 2] (0 when G = 1).
    """
    check_tensor("mass", mass, ndim=3, floating=True)
    b, h, t = mass.shape
    if num_groups < 1 or h % num_groups:
        raise ValueError(f"num_groups must divide H={h}, got {num_groups}")
    mean = mass.reshape(b, num_groups, h // num_groups, t).mean(dim=(0, 2))  # [G, T]
    pairs = [(i, j) for i in range(num_groups) for j in range(i + 1, num_groups)]
    if not pairs:
        return mass.new_zeros(())
    return torch.stack([js_divergence(mean[i], mean[j]) for i, j in pairs]).mean()


def column_specialization(probs: torch.Tensor, num_groups: int) -> torch.Tensor:
    """:func:`specialization_from_mass` of materialized probabilities ``[B, H, T, T]``.

        Ā_g = mean over heads in g, batch and queries of p[b, h, i, :]   (a distribution over keys)
        div = mean_{g < g'} JS(Ā_g ‖ Ā_g')

    Args:
        probs: ``[B, H, T, T]`` attention probabilities, heads grouped contiguously.
        num_groups: G; H must be divisible by G.

    Returns:
        0-d tensor in [0, ln 2] (0 when G = 1).
    """
    check_tensor("probs", probs, ndim=4, floating=True)
    return specialization_from_mass(probs.mean(2), num_groups)


class ColumnAttentionOutput(NamedTuple):
    """``out [B, T, d]`` and the 0-d column specialization (None when not requested)."""

    out: torch.Tensor
    specialization: torch.Tensor | None


class CorticalColumnAttention(nn.Module):
    """Grouped-query attention whose G key/value groups are the columns.

        out = W_o · concat_h modulated_attention(W_q x, W_k x, W_v x)   (H = G · heads_per_group)
        specialization = specialization_from_mass(column_attention_mass(q, k), G)

    Parameters d·(H·d_h) + 2·d·(G·d_h) + (H·d_h)·d (no biases). Source: reference-systems §1.5.
    The output uses the fused op (SDPA where it applies), which never builds ``[B, H, T, T]``.
    The specialization diagnostic needs only the query-averaged attention mass per key, computed
    blockwise without gradients (O(B·H·block·T) memory): it is a measurement, as in the published
    module, not a loss term. It averages over the batch, so it is a batch statistic; the output
    stays per item. ``forward(x, specialization=False)`` skips it (the output alone).
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

    def forward(self, x: torch.Tensor, *, specialization: bool = True) -> ColumnAttentionOutput:
        """``x [B, T, d] → ColumnAttentionOutput(out [B, T, d], specialization 0-d or None)``."""
        check_tensor("x", x, ndim=3, shape=(None, None, self.wq.in_features), floating=True)
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.g * self.hpg, self.dh)
        k = self.wk(x).view(b, t, self.g, self.dh)
        v = self.wv(x).view(b, t, self.g, self.dh)
        out = self.wo(modulated_attention(q, k, v, backend=self.backend).reshape(b, t, -1))
        if not specialization:
            return ColumnAttentionOutput(out, None)
        with torch.no_grad():
            div = specialization_from_mass(column_attention_mass(q, k), self.g)
        return ColumnAttentionOutput(out, div)


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
    "ColumnAttentionOutput",
    "CorticalColumnAttention",
    "HierarchicalColumnOrganizer",
    "LateralInhibition",
    "column_attention_mass",
    "column_specialization",
    "js_divergence",
    "specialization_from_mass",
]
