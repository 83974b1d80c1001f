"""Helpers shared by the neuron modules: decay factors, the refractory counter, input checks."""

from __future__ import annotations

import math
from typing import Literal

import torch

from neuro_core.validation import check_positive, check_tensor
from neuro_spiking.surrogates import MultiBit, Surrogate

Integrator = Literal["euler", "exponential"]
Reset = Literal["subtract", "hard"]


def check_time_constant(name: str, tau_ms: float, dt_ms: float, integrator: Integrator) -> None:
    """``tau_ms > 0`` (``math.inf``: no leak); for the Euler integrator also ``dt_ms ≤ tau_ms``."""
    if not (isinstance(tau_ms, int | float) and tau_ms == math.inf):
        check_positive(name, tau_ms)
    check_positive("dt_ms", dt_ms)
    if integrator not in ("euler", "exponential"):
        raise ValueError(f"integrator must be 'euler' or 'exponential', got {integrator!r}")
    if integrator == "euler" and dt_ms > tau_ms:
        raise ValueError(
            f"dt_ms={dt_ms} is larger than {name}={tau_ms}: the Euler step is unstable "
            "(use a smaller dt_ms or integrator='exponential')"
        )


def decay(tau_ms: float, dt_ms: float, integrator: Integrator) -> float:
    """Per-step decay factor: ``1 − dt/τ`` (Euler) or ``exp(−dt/τ)`` (exact)."""
    return 1.0 - dt_ms / tau_ms if integrator == "euler" else math.exp(-dt_ms / tau_ms)


def decay_tensor(tau_ms: torch.Tensor, dt_ms: float, integrator: Integrator) -> torch.Tensor:
    """:func:`decay` for a tensor of (learnable) time constants."""
    return 1.0 - dt_ms / tau_ms if integrator == "euler" else torch.exp(-dt_ms / tau_ms)


def refractory_countdown(counter: torch.Tensor, s: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Steps each neuron stays refractory after a step with spikes ``s``: ``n_steps`` where it
    fired, else ``max(counter − 1, 0)`` (the mask :func:`~neuro_spiking.ops.lif_scan.reference.
    lif_update` takes is ``counter ≤ 0``)."""
    return torch.where(
        s.detach() > 0, torch.full_like(counter, n_steps), (counter - 1).clamp_min(0)
    )


def reduce_like(g: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum a ``[B, ...]`` gradient down to the (broadcast) shape of ``target`` (a per-neuron or
    scalar parameter such as β), in ``target.dtype``."""
    while g.ndim > target.ndim:
        g = g.sum(0)
    for dim, size in enumerate(target.shape):
        if size == 1 and g.shape[dim] != 1:
            g = g.sum(dim, keepdim=True)
    return g.to(target.dtype)


def steps(name: str, duration_ms: float, dt_ms: float) -> int:
    """``duration_ms`` as a whole number of ``dt_ms`` steps (ValueError if it is not one)."""
    check_positive(name, duration_ms, allow_zero=True)
    n = round(duration_ms / dt_ms)
    if abs(n * dt_ms - duration_ms) > 1e-6 * max(1.0, duration_ms):
        raise ValueError(f"{name}={duration_ms} must be a multiple of dt_ms={dt_ms}")
    return n


def check_sequence(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """A floating ``[T, B, ...]`` tensor."""
    check_tensor(name, x, floating=True)
    if x.ndim < 2:
        raise ValueError(
            f"{name} must be shaped [T, B, ...] (≥ 2 dims), got shape {tuple(x.shape)}"
        )
    return x


def check_state_tensor(name: str, v: torch.Tensor, x_step: torch.Tensor) -> None:
    """A state tensor must match one time step of the input."""
    check_tensor(name, v, shape=tuple(x_step.shape), device=x_step.device)


def check_threshold(threshold: float, v_reset: float) -> None:
    if not float(threshold) > float(v_reset):
        raise ValueError(f"v_threshold must be > v_reset, got {threshold} ≤ {v_reset}")


def check_binary_surrogate(surrogate: object) -> None:
    """A :class:`~neuro_spiking.surrogates.Surrogate` instance whose spike is binary (not
    :class:`~neuro_spiking.surrogates.MultiBit`)."""
    if not isinstance(surrogate, Surrogate) or isinstance(surrogate, MultiBit):
        raise ValueError(f"surrogate must be a binary Surrogate, got {surrogate!r}")


def check_reset(reset: str) -> None:
    if reset not in ("subtract", "hard"):
        raise ValueError(f"reset must be 'subtract' or 'hard', got {reset!r}")
