"""Multi-step adaptive-threshold LIF, the readable spec (Bellec et al. 2018, "LSNN").

For t = 1..T (the refractory-free form of :mod:`neuro_spiking.adaptive_lif`; all but the last
line are :func:`~neuro_spiking.ops.lif_scan.reference.lif_update` with ``adaptation=a``):

    h_t = v_rest + β·(v_{t−1} − v_rest) + x_t
    s_t = H(h_t − θ₀ − a_{t−1})                     (surrogate derivative backward)
    v_t = h_t − (θ₀ + a_{t−1} − v_reset)·s_t          (reset="subtract")
    v_t = h_t·(1 − s_t) + v_reset·s_t                  (reset="hard")
    a_t = ρ·a_{t−1} + Δθ·s_t

``detach_reset`` stops the gradient through ``s_t`` inside the reset only; the adaptation keeps it.
"""

from __future__ import annotations

from typing import Literal

import torch

from neuro_spiking.ops.lif_scan.reference import lif_update
from neuro_spiking.surrogates import Surrogate


def alif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    a0: torch.Tensor,
    beta: torch.Tensor,
    rho: float,
    adapt_increment: float,
    v_rest: float,
    threshold: float,
    v_reset: float,
    reset: Literal["subtract", "hard"],
    detach_reset: bool,
    surrogate: Surrogate,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recursion over ``x [T, B, ...]`` from ``v0, a0 [B, ...]``.

    Returns:
        ``(spikes [T, B, ...], v_T, a_T)`` in ``x.dtype``.
    """
    v, a = v0, a0
    spikes = []
    for t in range(x.shape[0]):
        s, v_new = lif_update(
            v,
            x[t],
            beta=beta,
            threshold=threshold,
            v_reset=v_reset,
            v_rest=v_rest,
            reset=reset,
            adaptation=a,
            surrogate=surrogate,
            detach_reset=detach_reset,
        )
        v, a = v_new, rho * a + adapt_increment * s
        spikes.append(s)
    out = torch.stack(spikes) if spikes else torch.zeros_like(x)
    return out.to(x.dtype), v.to(x.dtype), a.to(x.dtype)
