"""Multi-step LIF, the readable spec.

Discrete-time leaky integrate-and-fire (Gerstner et al. 2014, "Neuronal Dynamics", ch. 1.3;
Euler or exact-exponential discretisation of τ dv/dt = −(v − v_rest) + R·I), for t = 1..T:

    h_t = v_rest + β·(v_{t−1} − v_rest) + x_t          (charge; x_t is the voltage increment)
    s_t = H(h_t − θ)                                     (fire; surrogate derivative backward)
    v_t = h_t − (θ − v_reset)·s_t                        (reset="subtract")
    v_t = h_t·(1 − s_t) + v_reset·s_t                    (reset="hard")

With ``detach_reset`` the ``s_t`` inside the reset carries no gradient (snnTorch's default,
SpikingJelly's ``detach_reset=True``). ``β`` may be a tensor broadcast over the neuron dims and
receives a gradient (learnable time constants, Fang et al. 2021).

This form is exactly snnTorch's ``Leaky(beta=β, reset_delay=False)`` and SpikingJelly's
``LIFNode(tau=1/(1−β), decay_input=False, v_reset=None|0)`` (see ``tests/compat``).
"""

from __future__ import annotations

from typing import Literal

import torch

from neuro_spiking.surrogates import Surrogate, spike

Reset = Literal["subtract", "hard"]


def lif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    beta: torch.Tensor,
    v_rest: float,
    threshold: float,
    v_reset: float,
    reset: Reset,
    detach_reset: bool,
    surrogate: Surrogate,
    store_membrane: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Run the LIF recursion over the leading time dimension.

    Args:
        x: ``[T, B, ...]`` input voltage increments.
        v0: ``[B, ...]`` membrane before the first step.
        beta: decay factor in (0, 1], a scalar tensor or broadcastable to ``x.shape[2:]``.
        v_rest, threshold, v_reset: potentials (θ > v_reset).
        reset: ``"subtract"`` or ``"hard"``.
        detach_reset: stop the gradient through the spike inside the reset.
        surrogate: pseudo-derivative of the spike.
        store_membrane: also return the post-reset membrane trace.

    Returns:
        ``(spikes [T, B, ...], membrane [T, B, ...] or None, v_T [B, ...])``, all in ``x.dtype``.
    """
    v = v0
    spikes, trace = [], []
    for t in range(x.shape[0]):
        h = v_rest + beta * (v - v_rest) + x[t]
        s = spike(h - threshold, surrogate)
        s_r = s.detach() if detach_reset else s
        if reset == "subtract":
            v = h - (threshold - v_reset) * s_r
        else:
            v = h * (1 - s_r) + v_reset * s_r
        spikes.append(s)
        if store_membrane:
            trace.append(v)
    out_s = torch.stack(spikes) if spikes else x.new_zeros(x.shape)
    out_v = (torch.stack(trace) if trace else x.new_zeros(x.shape)) if store_membrane else None
    return out_s.to(x.dtype), None if out_v is None else out_v.to(x.dtype), v.to(x.dtype)
