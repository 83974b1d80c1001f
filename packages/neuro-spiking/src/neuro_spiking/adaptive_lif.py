"""Adaptive-threshold LIF: HebLLM's "associative" neuron (reference-systems.md §2.1).

Per step (Bellec et al. 2018 "LSNN" form with an additive threshold adaptation; the membrane
lines are :func:`neuro_spiking.ops.lif_scan.reference.lif_update` with ``adaptation=a``):

    h_t = v_rest + β·(v_{t−1} − v_rest) + x_t
    s_t = H(h_t − θ₀ − a_{t−1})·[not refractory]
    v_t = v_reset if s_t (hard)   or   h_t − (θ₀ + a_{t−1} − v_reset)·s_t (subtract)
    a_t = ρ·a_{t−1} + Δθ·s_t,     ρ = 1 − dt/τ_adapt (Euler) or exp(−dt/τ_adapt)

Defaults are HebLLM's associative population: θ₀ = 0.6, v_rest = v_reset = −0.1, τ_m = 20 ms,
refractory 4 ms, Δθ = +0.1 per spike decaying with τ = 500 ms, hard reset to v_rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from neuro_spiking._common import (
    Integrator,
    Reset,
    check_binary_surrogate,
    check_reset,
    check_sequence,
    check_state_tensor,
    check_threshold,
    check_time_constant,
    decay,
    refractory_countdown,
    steps,
)
from neuro_spiking.ops.alif_scan import fused_alif_scan
from neuro_spiking.ops.lif_scan.reference import LIFConstants
from neuro_spiking.surrogates import ATan, Surrogate


@dataclass(frozen=True, kw_only=True)
class AdaptiveLIFParams:
    """Adaptive LIF parameters (defaults: HebLLM associative neuron, §2.1 of the spec).

    Attributes:
        tau_mem_ms: 20 ms. dt_ms: 1 ms. v_threshold: θ₀ = 0.6. v_rest: −0.1. v_reset: −0.1.
        reset: ``"hard"`` (HebLLM resets to v_rest). refractory_ms: 4 ms.
        tau_adapt_ms: 500 ms. adapt_increment: Δθ = 0.1 per spike.
        integrator: ``"euler"`` or ``"exponential"``. detach_reset: False.
        surrogate: ATan(slope=2).
    """

    tau_mem_ms: float = 20.0
    dt_ms: float = 1.0
    v_threshold: float = 0.6
    v_rest: float = -0.1
    v_reset: float = -0.1
    reset: Reset = "hard"
    refractory_ms: float = 4.0
    tau_adapt_ms: float = 500.0
    adapt_increment: float = 0.1
    integrator: Integrator = "euler"
    detach_reset: bool = False
    surrogate: Surrogate = field(default_factory=ATan)

    def __post_init__(self) -> None:
        check_time_constant("tau_mem_ms", self.tau_mem_ms, self.dt_ms, self.integrator)
        check_time_constant("tau_adapt_ms", self.tau_adapt_ms, self.dt_ms, self.integrator)
        check_threshold(self.v_threshold, self.v_reset)
        check_reset(self.reset)
        steps("refractory_ms", self.refractory_ms, self.dt_ms)
        if not self.adapt_increment >= 0:
            raise ValueError(f"adapt_increment must be ≥ 0, got {self.adapt_increment}")
        check_binary_surrogate(self.surrogate)


class AdaptiveLIFState(NamedTuple):
    """``v`` membrane, ``a`` threshold adaptation, ``refractory`` steps left (all ``[B, ...]``)."""

    v: torch.Tensor
    a: torch.Tensor
    refractory: torch.Tensor


def adaptive_lif_init(like: torch.Tensor, params: AdaptiveLIFParams) -> AdaptiveLIFState:
    """Resting state shaped like ``like [B, ...]``."""
    return AdaptiveLIFState(
        torch.full_like(like, params.v_rest),
        torch.zeros_like(like),
        torch.zeros(like.shape, dtype=torch.int32, device=like.device),
    )


def adaptive_lif_step(
    x: torch.Tensor, state: AdaptiveLIFState, params: AdaptiveLIFParams
) -> tuple[torch.Tensor, AdaptiveLIFState]:
    """One step; ``x [B, ...]``. Returns ``(spikes, new state)``."""
    p = params
    check_state_tensor("state.v", state.v, x)
    rho = decay(p.tau_adapt_ms, p.dt_ms, p.integrator)
    n_ref = steps("refractory_ms", p.refractory_ms, p.dt_ms)
    c = LIFConstants(p.v_rest, p.v_threshold, p.v_reset, p.reset, p.detach_reset, p.surrogate)
    beta = decay(p.tau_mem_ms, p.dt_ms, p.integrator)
    active = state.refractory <= 0 if n_ref > 0 else None
    s, v = c.update(state.v, x, beta, adaptation=state.a, active=active)
    a = rho * state.a + p.adapt_increment * s
    refractory = refractory_countdown(state.refractory, s, n_ref) if n_ref > 0 else state.refractory
    return s, AdaptiveLIFState(v, a, refractory)


def adaptive_lif_scan(
    x: torch.Tensor,
    state: AdaptiveLIFState | None,
    params: AdaptiveLIFParams,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, AdaptiveLIFState]:
    """Steps over ``x [T, B, ...]`` from ``state`` (rest if None); returns ``(spikes, state)``.

    Without a refractory period this runs the fused op
    :func:`~neuro_spiking.ops.alif_scan.fused_alif_scan` (Triton on CUDA); with one, the step
    function.
    """
    check_sequence(x)
    if state is None:
        state = adaptive_lif_init(x.new_zeros(x.shape[1:]), params)
    p = params
    if steps("refractory_ms", p.refractory_ms, p.dt_ms) == 0:
        check_state_tensor("state.v", state.v, x[0] if x.shape[0] else state.v)
        s, v, a = fused_alif_scan(
            x,
            state.v,
            state.a,
            beta=decay(p.tau_mem_ms, p.dt_ms, p.integrator),
            rho=decay(p.tau_adapt_ms, p.dt_ms, p.integrator),
            adapt_increment=p.adapt_increment,
            v_rest=p.v_rest,
            threshold=p.v_threshold,
            v_reset=p.v_reset,
            reset=p.reset,
            detach_reset=p.detach_reset,
            surrogate=p.surrogate,
            backend=backend,
        )
        return s, AdaptiveLIFState(v, a, state.refractory)
    out = []
    for t in range(x.shape[0]):
        s, state = adaptive_lif_step(x[t], state, params)
        out.append(s)
    return (torch.stack(out) if out else torch.zeros_like(x)), state


class AdaptiveLIF(nn.Module):
    """Module around :func:`adaptive_lif_scan` (no learnable tensors, no stored state)."""

    def __init__(self, params: AdaptiveLIFParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else AdaptiveLIFParams()

    def forward(
        self, x: torch.Tensor, state: AdaptiveLIFState | None = None
    ) -> tuple[torch.Tensor, AdaptiveLIFState]:
        return adaptive_lif_scan(x, state, self.params)


__all__ = [
    "AdaptiveLIF",
    "AdaptiveLIFParams",
    "AdaptiveLIFState",
    "adaptive_lif_init",
    "adaptive_lif_scan",
    "adaptive_lif_step",
]
