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

import torch

from neuro_spiking.ops.lif_scan.reference import LIFConstants


def alif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    a0: torch.Tensor,
    beta: torch.Tensor,
    rho: float,
    adapt_increment: float,
    c: LIFConstants,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recursion over ``x [T, B, ...]`` from ``v0, a0 [B, ...]``; ``c`` holds θ₀ and
    the membrane settings of :func:`~neuro_spiking.ops.lif_scan.reference.lif_update`.

    Returns:
        ``(spikes [T, B, ...], v_T, a_T)`` in ``x.dtype``.
    """
    v, a = v0, a0
    spikes = []
    for t in range(x.shape[0]):
        s, v_new = c.update(v, x[t], beta, adaptation=a)
        v, a = v_new, rho * a + adapt_increment * s
        spikes.append(s)
    out = torch.stack(spikes) if spikes else torch.zeros_like(x)
    return out.to(x.dtype), v.to(x.dtype), a.to(x.dtype)
