"""Multi-step multi-bit GIF (Aura), the readable spec; one step is :func:`gif_update`.

For t = 1..T, with L levels, clamp factor c, adaptation rate α and resting threshold θ₀:

    p_t = β·v_{t−1} + x_t
    v'_t = clamp(p_t, −c·L·θ_{t−1}, c·L·θ_{t−1})
    s_t = clamp(floor(v'_t / θ_{t−1}), 0, L)        (MultiBit surrogate on u = v'/θ backward)
    v_t = v'_t − s_t·θ_{t−1}
    θ_t = θ_{t−1} + α·s_t − α·(θ_{t−1} − θ₀)

Gradients flow into θ through the division, the reset and the clamp bound (as autograd does
for Aura's code).
"""

from __future__ import annotations

import torch

from neuro_spiking.surrogates import MultiBit, spike


def gif_update(
    v: torch.Tensor,
    theta: torch.Tensor,
    x: torch.Tensor,
    beta: float,
    theta_rest: float,
    adapt_rate: float,
    clamp_factor: float,
    surrogate: MultiBit,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the recursion above (``L = surrogate.levels``); returns ``(s, v_t, θ_t)``."""
    bound = clamp_factor * surrogate.levels * theta
    v = torch.minimum(torch.maximum(beta * v + x, -bound), bound)
    s = spike(v / theta, surrogate)
    v = v - s * theta
    return s, v, theta + adapt_rate * s - adapt_rate * (theta - theta_rest)


def gif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    theta0: torch.Tensor,
    beta: float,
    theta_rest: float,
    levels: int,
    adapt_rate: float,
    clamp_factor: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recursion over ``x [T, B, ...]`` from ``v0``, ``theta0 [B, ...]``.

    Returns:
        ``(spikes [T, B, ...] in [0, L], v_T, θ_T)``.
    """
    surrogate = MultiBit(levels=levels)
    v, theta = v0, theta0
    out = []
    for t in range(x.shape[0]):
        s, v, theta = gif_update(
            v, theta, x[t], beta, theta_rest, adapt_rate, clamp_factor, surrogate
        )
        out.append(s)
    spikes = torch.stack(out) if out else torch.zeros_like(x)
    return spikes.to(x.dtype), v.to(x.dtype), theta.to(x.dtype)
