"""Multi-step multi-bit GIF (Aura), the readable spec; one step is :meth:`GIFConstants.update`.

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

from typing import NamedTuple

import torch

from neuro_spiking.surrogates import MultiBit, spike


class GIFConstants(NamedTuple):
    """The scalar settings of a GIF scan that every backend takes: β, θ₀, L, α, c."""

    beta: float
    theta_rest: float
    levels: int
    adapt_rate: float
    clamp_factor: float

    def update(
        self, v: torch.Tensor, theta: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the recursion above; returns ``(s, v_t, θ_t)``."""
        bound = self.clamp_factor * self.levels * theta
        v = torch.minimum(torch.maximum(self.beta * v + x, -bound), bound)
        s = spike(v / theta, MultiBit(levels=self.levels))
        v = v - s * theta
        return s, v, theta + self.adapt_rate * s - self.adapt_rate * (theta - self.theta_rest)


def gif_scan_reference(
    x: torch.Tensor, v0: torch.Tensor, theta0: torch.Tensor, c: GIFConstants
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recursion over ``x [T, B, ...]`` from ``v0``, ``theta0 [B, ...]``.

    Returns:
        ``(spikes [T, B, ...] in [0, L], v_T, θ_T)``.
    """
    v, theta = v0, theta0
    out = []
    for t in range(x.shape[0]):
        s, v, theta = c.update(v, theta, x[t])
        out.append(s)
    spikes = torch.stack(out) if out else torch.zeros_like(x)
    return spikes.to(x.dtype), v.to(x.dtype), theta.to(x.dtype)
