"""Leaky (LIF) and non-leaky (IF) integrate-and-fire neurons: pure step/scan functions + modules.

Equations (per step; :func:`neuro_spiking.ops.lif_scan.reference.lif_update` computes them):

    h_t = v_rest + β·(v_{t−1} − v_rest) + x_t,   β = 1 − dt/τ (Euler) or exp(−dt/τ)
    s_t = H(h_t − θ)·[not refractory]
    v_t = h_t − (θ − v_reset)·s_t  (subtract)   or   v_reset if s_t (hard)

``x_t`` is the voltage increment of one step (``dt·R·I/τ`` in the Euler form of
τ dv/dt = −(v − v_rest) + R·I). With an absolute refractory period of ``n = refractory_ms/dt``
steps, a neuron that fired is held at ``v_reset`` and cannot fire for the next ``n`` steps.
IF is the same with β = 1 (no leak).

Layout: inputs ``[T, B, ...]``, state ``[B, ...]``. Scans without a refractory period run on the
fused op :func:`neuro_spiking.ops.lif_scan.fused_lif_scan` (Triton on CUDA); with one they run
the step function.
"""

from __future__ import annotations

import math
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
    decay_tensor,
    refractory_countdown,
    steps,
)
from neuro_spiking.ops.lif_scan import fused_lif_scan
from neuro_spiking.ops.lif_scan.reference import LIFConstants, lif_update
from neuro_spiking.surrogates import ATan, Surrogate


@dataclass(frozen=True, kw_only=True)
class LIFParams:
    """LIF parameters.

    Attributes:
        tau_mem_ms: membrane time constant; 20 ms (HebLLM §2.1 and the Vogels & Abbott 2005
            network Brian2 benchmarks).
        dt_ms: step; 1 ms (HebLLM's Euler step).
        v_threshold: θ; 1.0 (normalized units of snnTorch/SpikingJelly).
        v_reset: potential after a hard reset, and θ − v_reset is what a subtractive reset
            removes; 0.0.
        v_rest: leak target; 0.0.
        reset: ``"subtract"`` (snnTorch's default; keeps the overshoot) or ``"hard"``.
        refractory_ms: absolute refractory period, a multiple of ``dt_ms``; 0.
        integrator: ``"euler"`` (β = 1 − dt/τ; requires dt ≤ τ) or ``"exponential"``
            (β = exp(−dt/τ)).
        detach_reset: no gradient through the reset (snnTorch's default); False as in
            SpikingJelly.
        surrogate: pseudo-derivative of the spike; ATan(slope=2) (snnTorch and SpikingJelly
            default).
    """

    tau_mem_ms: float = 20.0
    dt_ms: float = 1.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    v_rest: float = 0.0
    reset: Reset = "subtract"
    refractory_ms: float = 0.0
    integrator: Integrator = "euler"
    detach_reset: bool = False
    surrogate: Surrogate = field(default_factory=ATan)

    def __post_init__(self) -> None:
        check_time_constant("tau_mem_ms", self.tau_mem_ms, self.dt_ms, self.integrator)
        check_threshold(self.v_threshold, self.v_reset)
        check_reset(self.reset)
        steps("refractory_ms", self.refractory_ms, self.dt_ms)
        check_binary_surrogate(self.surrogate)

    @property
    def beta(self) -> float:
        """Per-step decay factor."""
        return decay(self.tau_mem_ms, self.dt_ms, self.integrator)

    @property
    def refractory_steps(self) -> int:
        return steps("refractory_ms", self.refractory_ms, self.dt_ms)


@dataclass(frozen=True, kw_only=True)
class IFParams:
    """Integrate-and-fire (no leak) parameters; fields as in :class:`LIFParams`."""

    dt_ms: float = 1.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    reset: Reset = "subtract"
    refractory_ms: float = 0.0
    detach_reset: bool = False
    surrogate: Surrogate = field(default_factory=ATan)

    def __post_init__(self) -> None:
        from neuro_core.validation import check_positive

        check_positive("dt_ms", self.dt_ms)
        check_threshold(self.v_threshold, self.v_reset)
        check_reset(self.reset)
        steps("refractory_ms", self.refractory_ms, self.dt_ms)
        check_binary_surrogate(self.surrogate)

    def as_lif(self) -> LIFParams:
        """The equivalent LIF: β = 1 (``integrator="exponential"``, τ = ∞)."""
        return LIFParams(
            tau_mem_ms=math.inf,
            dt_ms=self.dt_ms,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            v_rest=0.0,
            reset=self.reset,
            refractory_ms=self.refractory_ms,
            integrator="exponential",
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
        )


class LIFState(NamedTuple):
    """``v``: membrane ``[B, ...]``; ``refractory``: steps left in the refractory period
    (int32 ``[B, ...]``)."""

    v: torch.Tensor
    refractory: torch.Tensor


def lif_init(like: torch.Tensor, params: LIFParams | IFParams) -> LIFState:
    """Resting state shaped like one time step ``like [B, ...]``."""
    v_rest = params.v_rest if isinstance(params, LIFParams) else 0.0
    return LIFState(
        torch.full_like(like, v_rest),
        torch.zeros(like.shape, dtype=torch.int32, device=like.device),
    )


def _beta(params: LIFParams, tau_mem_ms: torch.Tensor | None) -> float | torch.Tensor:
    if tau_mem_ms is None:
        return params.beta
    return decay_tensor(tau_mem_ms, params.dt_ms, params.integrator)


def _lif(params: LIFParams | IFParams) -> LIFParams:
    return params.as_lif() if isinstance(params, IFParams) else params


def lif_step(
    x: torch.Tensor,
    state: LIFState,
    params: LIFParams | IFParams,
    *,
    tau_mem_ms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LIFState]:
    """One LIF step.

    Args:
        x: ``[B, ...]`` input of this step.
        state: :class:`LIFState` from :func:`lif_init` or a previous step.
        params: :class:`LIFParams` (or :class:`IFParams`).
        tau_mem_ms: optional tensor of (learnable) time constants broadcast over ``[...]``,
            overriding ``params.tau_mem_ms``.

    Returns:
        ``(spikes [B, ...], new state)``.
    """
    p = _lif(params)
    check_state_tensor("state.v", state.v, x)
    n_ref = p.refractory_steps
    c = LIFConstants(p.v_rest, p.v_threshold, p.v_reset, p.reset, p.detach_reset, p.surrogate)
    active = state.refractory <= 0 if n_ref > 0 else None
    s, v = c.update(state.v, x, _beta(p, tau_mem_ms), active=active)
    refractory = refractory_countdown(state.refractory, s, n_ref) if n_ref > 0 else state.refractory
    return s, LIFState(v, refractory)


def _scan(
    x: torch.Tensor,
    state: LIFState | None,
    params: LIFParams | IFParams,
    tau_mem_ms: torch.Tensor | None,
    store_membrane: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor | None, LIFState]:
    p = _lif(params)
    check_sequence(x)
    if state is None:
        state = lif_init(x[0] if x.shape[0] else x.new_zeros(x.shape[1:]), p)
    check_state_tensor("state.v", state.v, x[0] if x.shape[0] else state.v)
    if p.refractory_steps == 0:
        out = fused_lif_scan(
            x,
            state.v,
            beta=_beta(p, tau_mem_ms),
            v_rest=p.v_rest,
            threshold=p.v_threshold,
            v_reset=p.v_reset,
            reset=p.reset,
            detach_reset=p.detach_reset,
            surrogate=p.surrogate,
            store_membrane=store_membrane,
            backend=backend,
        )
        return out.spikes, out.membrane, LIFState(out.v, state.refractory)
    spikes, trace = [], []
    for t in range(x.shape[0]):
        s, state = lif_step(x[t], state, p, tau_mem_ms=tau_mem_ms)
        spikes.append(s)
        trace.append(state.v)
    s_all = torch.stack(spikes) if spikes else torch.zeros_like(x)
    m_all = (torch.stack(trace) if trace else torch.zeros_like(x)) if store_membrane else None
    return s_all, m_all, state


def lif_scan(
    x: torch.Tensor,
    state: LIFState | None,
    params: LIFParams | IFParams,
    *,
    tau_mem_ms: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, LIFState]:
    """LIF over ``x [T, B, ...]`` from ``state`` (rest if None).

    Returns:
        ``(spikes [T, B, ...], final state)``; identical to repeated :func:`lif_step`.
    """
    s, _, state = _scan(x, state, params, tau_mem_ms, False, backend)
    return s, state


def lif_trace(
    x: torch.Tensor,
    state: LIFState | None,
    params: LIFParams | IFParams,
    *,
    tau_mem_ms: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
    """Like :func:`lif_scan` but also returns the post-reset membrane ``[T, B, ...]``."""
    s, m, state = _scan(x, state, params, tau_mem_ms, True, backend)
    assert m is not None
    return s, m, state


class LIF(nn.Module):
    """LIF layer around :func:`lif_scan`; owns only the (optional) learnable time constants.

    Args:
        params: :class:`LIFParams` (or :class:`IFParams` for an IF layer).
        n_neurons: size of the last input dim when ``learn_tau`` gives one τ per neuron;
            None for a single shared τ.
        learn_tau: learn τ_mem (Fang et al. 2021, "PLIF"), parameterized as
            ``τ = dt + exp(w)`` so that the Euler step stays stable; needs τ_mem > dt.
        backend: passed to the fused op.

    ``forward(x [T, B, ..., N], state=None) -> (spikes, final state)``.
    """

    def __init__(
        self,
        params: LIFParams | IFParams | None = None,
        *,
        n_neurons: int | None = None,
        learn_tau: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.params = params if params is not None else LIFParams()
        self.backend = backend
        self.log_tau_excess: nn.Parameter | None = None
        if learn_tau:
            if not isinstance(self.params, LIFParams):
                raise ValueError("learn_tau needs LIFParams (an IF neuron has no time constant)")
            excess = self.params.tau_mem_ms - self.params.dt_ms
            if not excess > 0:
                raise ValueError("learn_tau needs tau_mem_ms > dt_ms")
            shape = () if n_neurons is None else (n_neurons,)
            self.log_tau_excess = nn.Parameter(torch.full(shape, math.log(excess)))
        elif n_neurons is not None:
            raise ValueError("n_neurons is only used with learn_tau=True")

    def tau_mem_ms(self) -> torch.Tensor | None:
        """The learnable time constants (None when τ is fixed)."""
        if self.log_tau_excess is None:
            return None
        return self.params.dt_ms + torch.exp(self.log_tau_excess)

    def forward(
        self, x: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState]:
        return lif_scan(x, state, self.params, tau_mem_ms=self.tau_mem_ms(), backend=self.backend)

    def extra_repr(self) -> str:
        return f"{self.params}, learn_tau={self.log_tau_excess is not None}"


def IF(params: IFParams | None = None, *, backend: str = "auto") -> LIF:
    """Integrate-and-fire layer: :class:`LIF` with β = 1."""
    return LIF(params if params is not None else IFParams(), backend=backend)


__all__ = [
    "IF",
    "LIF",
    "IFParams",
    "LIFParams",
    "LIFState",
    "lif_init",
    "lif_scan",
    "lif_step",
    "lif_trace",
    "lif_update",
]
