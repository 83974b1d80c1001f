"""Homeostatic plasticity: synaptic scaling (a weight rule) and threshold adaptation (a threshold rule).

Both keep a running estimate r̄ of each post-synaptic neuron's activity (the batch mean of
``post``), updated after the change is computed: r̄ ← r̄ + (⟨y⟩ − r̄) / τ_r.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuro_core.validation import check_positive, check_tensor
from neuro_plasticity.rule import Modulator, Rule, recipe
from neuro_plasticity.topology import Topology


class RateState(NamedTuple):
    rate: torch.Tensor  # [n_post] running mean activity r̄


def _check_tau(name: str, tau: float) -> float:
    tau = check_positive(name, tau)
    if tau < 1:
        raise ValueError(f"{name} must be ≥ 1 update step, got {tau}")
    return tau


@recipe
def synaptic_scaling(lr: float, target_rate: float, tau_rate_steps: float = 100.0) -> Rule:
    """Multiplicative synaptic scaling (Turrigiano et al. 1998; van Rossum et al. 2000, eq. 5).

        ΔW_ij = η (r_target − r̄_i) W_ij

    All synapses onto a neuron scale by the same factor, which preserves their ratios. r̄ starts at
    ``target_rate`` (no scaling until activity departs from it).

    Args:
        lr: η ≥ 0 per update.
        target_rate: r_target ≥ 0 in the units of ``post`` (e.g. spikes per step).
        tau_rate_steps: averaging time of r̄ in update steps (≥ 1).
    """
    lr = check_positive("lr", lr, allow_zero=True)
    target = check_positive("target_rate", target_rate, allow_zero=True)
    tau = _check_tau("tau_rate_steps", tau_rate_steps)

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> RateState:
        return RateState(
            torch.full((topo.n_post,), target, dtype=weight.dtype, device=weight.device)
        )

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        s: RateState,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, RateState]:
        rate = s.rate + (post.mean(0) - s.rate) / tau
        return lr * topo.at_post(target - rate) * w, RateState(rate)

    return Rule(f"synaptic_scaling({lr}, {target})", init_fn, update_fn)


class ThresholdState(NamedTuple):
    threshold: torch.Tensor  # [n] firing threshold offset θ
    rate: torch.Tensor  # [n] running mean activity r̄


@dataclass(frozen=True)
class ThresholdAdaptation:
    """Homeostatic threshold adaptation, an ``(init, update)`` pair on thresholds, not weights.

        r̄ ← r̄ + (⟨y⟩ − r̄)/τ_r,      Δθ = α (r̄ − r_target)

    (reference-systems §2.4; Földiák 1990 eq. 5 uses the instantaneous rate, i.e. τ_r = 1).
    A neuron firing above target raises its threshold. ``update(post, state) -> (Δθ, state)``,
    ``state.threshold`` holds θ after the change.
    """

    lr: float
    target_rate: float
    tau_rate_steps: float = 1.0
    threshold_init: float = 0.0

    def __post_init__(self) -> None:
        check_positive("lr", self.lr, allow_zero=True)
        check_positive("target_rate", self.target_rate, allow_zero=True)
        _check_tau("tau_rate_steps", self.tau_rate_steps)

    def init(
        self, n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
    ) -> ThresholdState:
        if int(n) < 1:
            raise ValueError(f"n must be ≥ 1, got {n}")
        theta = torch.full((n,), float(self.threshold_init), dtype=dtype, device=device)
        return ThresholdState(theta, torch.full_like(theta, self.target_rate))

    def update(
        self, post: torch.Tensor, state: ThresholdState
    ) -> tuple[torch.Tensor, ThresholdState]:
        n = state.threshold.shape[0]
        check_tensor("post", post, ndim=(1, 2), device=state.threshold.device)
        if post.shape[-1] != n:
            raise ValueError(f"post must have last dim {n}, got shape {tuple(post.shape)}")
        y = (post if post.ndim == 2 else post[None]).to(state.threshold.dtype)
        rate = state.rate + (y.mean(0) - state.rate) / self.tau_rate_steps
        delta = self.lr * (rate - self.target_rate)
        return delta, ThresholdState(state.threshold + delta, rate)


def threshold_adaptation(
    lr: float, target_rate: float, tau_rate_steps: float = 1.0, threshold_init: float = 0.0
) -> ThresholdAdaptation:
    """Build a :class:`ThresholdAdaptation`."""
    return ThresholdAdaptation(lr, target_rate, tau_rate_steps, threshold_init)


__all__ = [
    "RateState",
    "ThresholdAdaptation",
    "ThresholdState",
    "synaptic_scaling",
    "threshold_adaptation",
]
