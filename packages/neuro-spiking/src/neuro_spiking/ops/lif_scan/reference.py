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

One step of it is :func:`lif_update`, the single LIF membrane update of the library: this scan,
the adaptive-LIF spec (:mod:`neuro_spiking.ops.alif_scan.reference`) and the step functions
:func:`neuro_spiking.lif.lif_step` and :func:`neuro_spiking.adaptive_lif.adaptive_lif_step` all
call it; the fused CPU and Triton backends are tested against it.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import torch

from neuro_spiking.surrogates import Surrogate, spike

Reset = Literal["subtract", "hard"]
#: A torch tensor or a numpy array (:func:`lif_update` runs the same float ops on either).
Array = TypeVar("Array", torch.Tensor, np.ndarray)


def lif_update(
    v: Array,
    x: Array,
    *,
    beta: float | Array,
    threshold: float | Array,
    v_reset: float | Array,
    v_rest: float = 0.0,
    reset: Reset = "subtract",
    adaptation: Array | None = None,
    active: Array | None = None,
    surrogate: Surrogate | None = None,
    detach_reset: bool = False,
) -> tuple[Array, Array]:
    """One leaky integrate-and-fire step: the LIF update every non-kernel path calls.

    With θ the threshold, ``a`` the threshold adaptation (0 unless given) and ``r`` the
    refractory mask (``active`` False), elementwise:

        h  = v_rest + β·(v − v_rest) + x          (``β·v + x`` when v_rest = 0)
        h  = v_reset                              where r (held during the refractory period)
        s  = H(h − θ − a)·[not r]                  (H(0) = 1; surrogate derivative backward)
        v' = h − (θ + a − v_reset)·s              reset="subtract"
        v' = h·(1 − s) + v_reset·s                reset="hard"

    Each line is evaluated in this order with one rounding per operation (no fused
    multiply-add), so every caller gets the same bits for the same inputs. ``v_rest = 0`` skips
    the two additions of zero (the result differs at most in the sign of a zero).

    Args:
        v: membrane before the step, any shape.
        x: input (voltage increment) of the step, broadcastable with ``v``.
        beta: decay in (0, 1], a float or an array broadcastable with ``v`` (receives a gradient
            when it is a tensor that requires one).
        threshold: θ, float or array; v_reset: the hard-reset potential and θ − v_reset the
            amount a subtractive reset removes.
        v_rest: leak target, a float.
        reset: ``"subtract"`` or ``"hard"``.
        adaptation: ``a``, added to θ (adaptive LIF, Bellec et al. 2018); None for 0.
        active: bool mask, False where the neuron is refractory; None for all active.
        surrogate: torch only: the spike's pseudo-derivative
            (:func:`neuro_spiking.surrogates.spike`). None: the plain Heaviside without a
            gradient, evaluated with comparisons and selects (the same values for finite ``h``;
            the form the numpy simulator needs).
        detach_reset: stop the gradient through ``s`` inside the reset (torch only).

    Returns:
        ``(s, v')``: spikes in {0, 1} in the dtype of ``h``, and the membrane after the step.
        On numpy arrays (``surrogate=None``) the same float operations run in numpy.
    """
    if v_rest == 0.0:
        h = beta * v + x
    else:
        h = v_rest + beta * (v - v_rest) + x
    return _fire_and_reset(
        h, threshold, v_reset, reset, adaptation, active, surrogate, detach_reset
    )


def _fire_and_reset(
    h: Any,
    threshold: Any,
    v_reset: Any,
    reset: Reset,
    adaptation: Any,
    active: Any,
    surrogate: Surrogate | None,
    detach_reset: bool,
) -> tuple[Any, Any]:
    """The spike and reset of :func:`lif_update` from the charged membrane ``h``.

    Without a surrogate (torch or numpy, no gradient) ``keep`` marks the neurons whose membrane
    stays ``h`` (active and below threshold): ``h < θ`` and ``h − θ < a`` are exactly
    ``not H(h − θ − a)`` for finite ``h``. With one (torch), the spike's surrogate derivative
    flows through the reset (``∂v'/∂s``) unless ``detach_reset``; ``θ + a`` is formed after the
    spike because autograd adds the parts of ``∂L/∂a`` in node-creation order, which fixes their
    last bit."""
    if surrogate is None:
        keep = h < threshold if adaptation is None else h - threshold < adaptation
        if active is not None:
            keep &= active
        fired = ~keep if active is None else active ^ keep
        xp = np if isinstance(h, np.ndarray) else torch
        s = fired.astype(h.dtype) if xp is np else fired.to(h.dtype)
        if reset == "hard":
            return s, xp.where(keep, h, v_reset)
        if active is not None:
            h = xp.where(active, h, v_reset)
        return s, h - (_level(threshold, adaptation) - v_reset) * s
    if active is not None:
        h = torch.where(active, h, v_reset)
    u = h - threshold
    if adaptation is not None:
        u = u - adaptation
    s = spike(u, surrogate)
    if active is not None:
        s = s * active
    s_r = s.detach() if detach_reset else s
    if reset == "subtract":
        return s, h - (_level(threshold, adaptation) - v_reset) * s_r
    return s, h * (1 - s_r) + v_reset * s_r


def _level(threshold: Any, adaptation: Any) -> Any:
    """The effective threshold ``θ + a`` a subtractive reset removes (less ``v_reset``)."""
    return threshold if adaptation is None else threshold + adaptation


class LIFConstants(NamedTuple):
    """The scalar settings of a LIF scan that every backend takes (fields as in
    :func:`lif_update`)."""

    v_rest: float
    threshold: float
    v_reset: float
    reset: Reset
    detach_reset: bool
    surrogate: Surrogate

    def update(
        self,
        v: torch.Tensor,
        x: torch.Tensor,
        beta: float | torch.Tensor,
        adaptation: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`lif_update` with these settings."""
        return lif_update(
            v,
            x,
            beta=beta,
            threshold=self.threshold,
            v_reset=self.v_reset,
            v_rest=self.v_rest,
            reset=self.reset,
            adaptation=adaptation,
            active=active,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
        )


def lif_scan_reference(
    x: torch.Tensor,
    v0: torch.Tensor,
    beta: torch.Tensor,
    c: LIFConstants,
    store_membrane: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Run the LIF recursion over the leading time dimension.

    Args:
        x: ``[T, B, ...]`` input voltage increments.
        v0: ``[B, ...]`` membrane before the first step.
        beta: decay factor in (0, 1], a scalar tensor or broadcastable to ``x.shape[2:]``.
        c: potentials (θ > v_reset), reset, detach_reset and surrogate.
        store_membrane: also return the post-reset membrane trace.

    Returns:
        ``(spikes [T, B, ...], membrane [T, B, ...] or None, v_T [B, ...])``, all in ``x.dtype``.
    """
    v = v0
    spikes, trace = [], []
    for t in range(x.shape[0]):
        s, v = c.update(v, x[t], beta)
        spikes.append(s)
        if store_membrane:
            trace.append(v)
    out_s = torch.stack(spikes) if spikes else x.new_zeros(x.shape)
    out_v = (torch.stack(trace) if trace else x.new_zeros(x.shape)) if store_membrane else None
    return out_s.to(x.dtype), None if out_v is None else out_v.to(x.dtype), v.to(x.dtype)
