"""Izhikevich neuron (Izhikevich 2003, "Simple model of spiking neurons", IEEE TNN 14(6)).

    dv/dt = 0.04·v² + 5·v + 140 − u + I      (mV, ms)
    du/dt = a·(b·v − u)
    if v ≥ v_peak: v ← c, u ← u + d

Forward Euler with step ``dt_ms``; the spike uses the surrogate on ``v − v_peak`` (mV). The
published code integrates v in two 0.5 ms half-steps per 1 ms; our default ``dt_ms = 0.5`` is the
same resolution. Defaults (a, b, c, d) = (0.02, 0.2, −65, 8): regular spiking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_positive
from neuro_spiking._common import check_binary_surrogate, check_sequence, check_state_tensor
from neuro_spiking.surrogates import FastSigmoid, Surrogate, spike


@dataclass(frozen=True, kw_only=True)
class IzhikevichParams:
    """Izhikevich parameters (regular spiking defaults, Izhikevich 2003 Fig. 2).

    Attributes:
        a: recovery rate 1/ms (0.02; τ_u = 1/a must exceed dt). b: 0.2. c: reset −65 mV.
        d: recovery jump 8. v_peak: 30 mV. dt_ms: 0.5 ms.
        surrogate: FastSigmoid(slope=1) (mV scale: derivative ≈ 1 within a few mV of the peak).
    """

    a: float = 0.02
    b: float = 0.2
    c: float = -65.0
    d: float = 8.0
    v_peak: float = 30.0
    dt_ms: float = 0.5
    surrogate: Surrogate = field(default_factory=lambda: FastSigmoid(slope=1.0))

    def __post_init__(self) -> None:
        check_positive("a", self.a)
        check_positive("dt_ms", self.dt_ms)
        if self.dt_ms > 1.0 / self.a:
            raise ValueError(f"dt_ms={self.dt_ms} is larger than the recovery time constant 1/a")
        if not self.v_peak > self.c:
            raise ValueError(f"v_peak must be > c (the reset), got {self.v_peak} ≤ {self.c}")
        check_binary_surrogate(self.surrogate)


class IzhikevichState(NamedTuple):
    """``v`` membrane (mV) and ``u`` recovery variable, both ``[B, ...]``."""

    v: torch.Tensor
    u: torch.Tensor


def izhikevich_init(like: torch.Tensor, params: IzhikevichParams) -> IzhikevichState:
    """``v = c``, ``u = b·c`` (Izhikevich's initial condition), shaped like ``like``."""
    v = torch.full_like(like, params.c)
    return IzhikevichState(v, params.b * v)


def izhikevich_step(
    x: torch.Tensor, state: IzhikevichState, params: IzhikevichParams
) -> tuple[torch.Tensor, IzhikevichState]:
    """One Euler step with input current ``x [B, ...]``; returns ``(spikes, new state)``."""
    p = params
    check_state_tensor("state.v", state.v, x)
    v, u = state
    v_new = v + p.dt_ms * (0.04 * v * v + 5.0 * v + 140.0 - u + x)
    u_new = u + p.dt_ms * p.a * (p.b * v - u)
    s = spike(v_new - p.v_peak, p.surrogate)
    v_new = v_new * (1 - s) + p.c * s
    u_new = u_new + p.d * s
    return s, IzhikevichState(v_new, u_new)


def izhikevich_scan(
    x: torch.Tensor, state: IzhikevichState | None, params: IzhikevichParams
) -> tuple[torch.Tensor, IzhikevichState]:
    """Steps over ``x [T, B, ...]``; returns ``(spikes, final state)``."""
    check_sequence(x)
    if state is None:
        state = izhikevich_init(x.new_zeros(x.shape[1:]), params)
    out = []
    for t in range(x.shape[0]):
        s, state = izhikevich_step(x[t], state, params)
        out.append(s)
    return (torch.stack(out) if out else torch.zeros_like(x)), state


class Izhikevich(nn.Module):
    """Module around :func:`izhikevich_scan`."""

    def __init__(self, params: IzhikevichParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else IzhikevichParams()

    def forward(
        self, x: torch.Tensor, state: IzhikevichState | None = None
    ) -> tuple[torch.Tensor, IzhikevichState]:
        return izhikevich_scan(x, state, self.params)


__all__ = [
    "Izhikevich",
    "IzhikevichParams",
    "IzhikevichState",
    "izhikevich_init",
    "izhikevich_scan",
    "izhikevich_step",
]
