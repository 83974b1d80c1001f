"""Multi-bit generalized integrate-and-fire (GIF) neuron with an adaptive threshold (Aura).

Aura ``gif_neuron.py`` (reference-systems.md §3.2), per step:

    v ← β·v + x_t,                 β = exp(−dt/τ) (Aura: 0.905 = exp(−1/10))
    v ← clamp(v, −c·L·θ, c·L·θ)    (c = 2)
    s_t = clamp(floor(v/θ), 0, L)   (an integer "multi-bit" spike count, L levels)
    v ← v − s_t·θ
    θ ← θ + α·s_t − α·(θ − θ₀)      (α = 0.01)

The backward of ``s_t`` uses Aura's multi-bit surrogate
:class:`~neuro_spiking.surrogates.MultiBit` on ``u = v/θ``. The threshold gradient is kept (as
in Aura, where θ is a tensor in the graph). The adaptive-threshold form follows Mensi et al. 2012
/ Pozzorini et al. 2015; the multi-bit spike resembles integer-LIF networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_in_range, check_positive
from neuro_spiking._common import (
    Integrator,
    check_sequence,
    check_state_tensor,
    check_time_constant,
    decay,
)
from neuro_spiking.ops.gif_scan import fused_gif_scan
from neuro_spiking.ops.gif_scan.reference import GIFConstants
from neuro_spiking.surrogates import MultiBit


@dataclass(frozen=True, kw_only=True)
class GIFParams:
    """GIF parameters; defaults from Aura's ``GIFNeuron``.

    Attributes:
        tau_mem_ms: 10 ms (Aura τ = 10). dt_ms: 1 ms.
        integrator: ``"exponential"`` (Aura's 0.905 ≈ exp(−1/10)).
        v_threshold: θ₀ = 1.0. levels: L = 16 (Aura's default; its SNN FFN uses 8).
        adapt_rate: α = 0.01. clamp_factor: c = 2 (membrane clamp ±c·L·θ).
    """

    tau_mem_ms: float = 10.0
    dt_ms: float = 1.0
    integrator: Integrator = "exponential"
    v_threshold: float = 1.0
    levels: int = 16
    adapt_rate: float = 0.01
    clamp_factor: float = 2.0

    def __post_init__(self) -> None:
        check_time_constant("tau_mem_ms", self.tau_mem_ms, self.dt_ms, self.integrator)
        check_positive("v_threshold", self.v_threshold)
        if int(self.levels) != self.levels or self.levels < 1:
            raise ValueError(f"levels must be an integer ≥ 1, got {self.levels!r}")
        check_in_range("adapt_rate", self.adapt_rate, 0.0, 1.0)
        check_positive("clamp_factor", self.clamp_factor)

    @property
    def surrogate(self) -> MultiBit:
        return MultiBit(levels=self.levels)


class GIFState(NamedTuple):
    """``v`` membrane and ``theta`` adaptive threshold, both ``[B, ...]``."""

    v: torch.Tensor
    theta: torch.Tensor


def gif_init(like: torch.Tensor, params: GIFParams) -> GIFState:
    """Rest (v = 0, θ = θ₀) shaped like ``like [B, ...]``."""
    return GIFState(torch.zeros_like(like), torch.full_like(like, params.v_threshold))


def gif_step(x: torch.Tensor, state: GIFState, params: GIFParams) -> tuple[torch.Tensor, GIFState]:
    """One GIF step; ``x [B, ...]``. Returns ``(multi-bit spikes in [0, L], new state)``."""
    p = params
    check_state_tensor("state.v", state.v, x)
    beta = decay(p.tau_mem_ms, p.dt_ms, p.integrator)
    c = GIFConstants(beta, p.v_threshold, p.levels, p.adapt_rate, p.clamp_factor)
    s, v, theta = c.update(state.v, state.theta, x)
    return s, GIFState(v, theta)


def gif_scan(
    x: torch.Tensor, state: GIFState | None, params: GIFParams, *, backend: str = "auto"
) -> tuple[torch.Tensor, GIFState]:
    """GIF over ``x [T, B, ...]`` from ``state`` (rest if None); returns ``(spikes, state)``.

    Runs the fused op :func:`~neuro_spiking.ops.gif_scan.fused_gif_scan` (Triton on CUDA);
    identical to repeated :func:`gif_step`.
    """
    check_sequence(x)
    if state is None:
        state = gif_init(x.new_zeros(x.shape[1:]), params)
    check_state_tensor("state.v", state.v, x[0] if x.shape[0] else state.v)
    p = params
    s, v, theta = fused_gif_scan(
        x,
        state.v,
        state.theta,
        beta=decay(p.tau_mem_ms, p.dt_ms, p.integrator),
        theta_rest=p.v_threshold,
        levels=p.levels,
        adapt_rate=p.adapt_rate,
        clamp_factor=p.clamp_factor,
        backend=backend,
    )
    return s, GIFState(v, theta)


class GIF(nn.Module):
    """Module around :func:`gif_scan` (no learnable tensors, no stored state)."""

    def __init__(self, params: GIFParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else GIFParams()

    def forward(
        self, x: torch.Tensor, state: GIFState | None = None
    ) -> tuple[torch.Tensor, GIFState]:
        return gif_scan(x, state, self.params)


__all__ = ["GIF", "GIFParams", "GIFState", "gif_init", "gif_scan", "gif_step"]
