"""Rate-based Hebbian rules: Hebb with decay, Oja, BCM, Földiák anti-Hebbian, reward-modulated Hebb.

Notation: x = ``pre`` ``[B, n_pre]``, y = ``post`` ``[B, n_post]``, W ``[n_post, n_pre]``,
⟨·⟩ = mean over the batch. Every rule returns ΔW and leaves W alone (see :mod:`neuro_plasticity.rule`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch

from neuro_core.validation import check_positive
from neuro_plasticity.rule import (
    EmptyState,
    InitFn,
    Modulator,
    Rule,
    chain,
    check_decay,
    modulate,
    recipe,
)
from neuro_plasticity.topology import Topology


def _empty(topo: Topology, weight: torch.Tensor, batch: int) -> EmptyState:
    return EmptyState()


DeltaFn = Callable[[Topology, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _stateless(name: str, delta: DeltaFn, init_fn: InitFn = _empty) -> Rule:
    """A rule without state or third factor: ``ΔW = delta(topology, pre, post, W)``."""

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: Any,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, Any]:
        return delta(topo, pre, post, w), state

    return Rule(name, init_fn, update_fn)


@recipe
def hebbian(lr: float, decay: float = 1.0) -> Rule:
    """Plain Hebb with multiplicative forgetting (Hebb 1949; the fast-weight update of Ba et al. 2016).

        ΔW = η ⟨y xᵀ⟩ − (1 − λ) W        (so W + ΔW = λ W + η ⟨y xᵀ⟩)

    Args:
        lr: η ≥ 0.
        decay: retention λ ∈ (0, 1]; 1 means no forgetting.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    decay = check_decay("decay", decay)

    def delta(
        topo: Topology, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        return lr * topo.outer(post, pre) - (1.0 - decay) * w

    return _stateless(f"hebbian({lr}, decay={decay})", delta)


OjaVariant = Literal["single", "subspace", "sanger"]


@recipe
def oja(lr: float, variant: OjaVariant = "single") -> Rule:
    """Oja's normalised Hebbian rule and its multi-output generalisations.

        single   (Oja 1982):   ΔW = η ⟨y xᵀ − diag(y²) W⟩        each row → first PC, ‖w_i‖ → 1
        subspace (Oja 1989):   ΔW = η ⟨y xᵀ − y yᵀ W⟩           rows span the top-n_post subspace
        sanger   (Sanger 1989, GHA): ΔW = η ⟨y xᵀ − LT(y yᵀ) W⟩  rows → the first n_post PCs in order

    ``post`` must be the neuron's linear response y = W x (the caller computes it). ``subspace``
    and ``sanger`` need a product with the full matrix and run on dense topologies only.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    if variant not in ("single", "subspace", "sanger"):
        raise ValueError(f"variant must be 'single', 'subspace' or 'sanger', got {variant!r}")

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> EmptyState:
        if variant != "single" and not topo.supports_matmul:
            raise ValueError(f"oja variant={variant!r} needs a dense topology")
        return EmptyState()

    def delta(
        topo: Topology, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        hebb = topo.outer(post, pre)
        if variant == "single":
            return lr * (hebb - topo.at_post(post.pow(2).mean(0)) * w)
        yy = post.transpose(0, 1) @ post / post.shape[0]
        if variant == "sanger":
            yy = torch.tril(yy)
        return lr * (hebb - yy @ w)

    return _stateless(f"oja({lr}, {variant})", delta, init_fn)


class BCMState(NamedTuple):
    theta: torch.Tensor  # [n_post] sliding modification threshold


@recipe
def bcm(lr: float, tau_theta_steps: float = 100.0, theta_init: float = 0.0) -> Rule:
    """Bienenstock–Cooper–Munro rule with a sliding threshold (BCM 1982; Intrator & Cooper 1992).

        ΔW = η ⟨y (y − θ) xᵀ⟩,        θ ← θ + (⟨y²⟩ − θ) / τ_θ

    The threshold is the running mean of y², so it tracks post-synaptic activity; it is updated
    after the weight change.

    Args:
        lr: η ≥ 0.
        tau_theta_steps: averaging time of θ in update steps (≥ 1).
        theta_init: θ at ``init``.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    tau = check_positive("tau_theta_steps", tau_theta_steps)
    if tau < 1:
        raise ValueError(f"tau_theta_steps must be ≥ 1 update step, got {tau_theta_steps}")

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> BCMState:
        return BCMState(
            torch.full((topo.n_post,), float(theta_init), dtype=weight.dtype, device=weight.device)
        )

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: BCMState,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, BCMState]:
        phi = post * (post - state.theta)
        theta = state.theta + (post.pow(2).mean(0) - state.theta) / tau
        return lr * topo.outer(phi, pre), BCMState(theta)

    return Rule(f"bcm({lr}, tau_theta_steps={tau})", init_fn, update_fn)


@recipe
def foldiak(lr: float, target_rate: float) -> Rule:
    """Földiák's anti-Hebbian rule for lateral decorrelating weights (Földiák 1990, eq. 4).

        ΔW = −η (⟨y_post y_preᵀ⟩ − p²)

    Units that fire together more often than chance (p² for target rate p) inhibit each other more.
    For lateral connections pass the same population as ``pre`` and ``post`` and keep the diagonal
    out of the topology (or zero it). Földiák's threshold adaptation is
    :func:`neuro_plasticity.homeostasis.threshold_adaptation`.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    p = float(target_rate)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"target_rate must be in [0, 1], got {target_rate}")

    def delta(
        topo: Topology, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        return -lr * (topo.outer(post, pre) - p * p)

    return _stateless(f"foldiak({lr}, p={p})", delta)


@recipe
def reward_modulated_hebbian(lr: float, decay: float = 1.0) -> Rule:
    """Hebb gated by a scalar reward (the third factor): ΔW = M · (η ⟨y xᵀ⟩ − (1 − λ) W).

    ``modulator`` is required; a baseline-subtracted reward M = R − R̄ gives the covariance form
    (Frémaux & Gerstner 2016, §3); subtracting the baseline is the caller's choice.
    """
    return chain(hebbian(lr, decay), modulate())


__all__ = ["BCMState", "OjaVariant", "bcm", "foldiak", "hebbian", "oja", "reward_modulated_hebbian"]
