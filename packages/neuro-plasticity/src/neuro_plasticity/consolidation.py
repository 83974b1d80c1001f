"""Synaptic consolidation: synapses that switch from a fast to a slow plasticity regime.

HebLLM (reference-systems.md §2.1; ``Synapse.apply_stdp`` and ``check_consolidation`` at
03bbcba) marks a synapse "slow" after a sleep phase once it has been activated more than 50
times and is older than 1 s; a slow synapse learns with 0.2× the rates and 2× the STDP time
constants. Here a rule carries both regimes::

    rule = consolidating(fast_rule, slow_rule)       # e.g. from two_regime_stdp(...)
    state = rule.init(weight)
    state = rule.consolidate(state, mask)            # mark synapses slow (for good)

    Δw_ij = Δw^slow_ij  if slow_ij  else  Δw^fast_ij

Both rules are stepped at every update, so each keeps its own traces current (a synapse that
turns slow finds traces with the slow time constants). The ``consolidate`` method is the
``ConsolidationHook`` that ``neuro_spiking.sleep`` calls (published: ``activation_count`` was never
incremented, so no synapse ever became slow, §2.2 bug 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from neuro_core.validation import check_positive, check_tensor
from neuro_plasticity.rule import Modulator, Rule, Transform, chain, recipe
from neuro_plasticity.stdp import pair_stdp
from neuro_plasticity.topology import Topology


class ConsolidationState(NamedTuple):
    """The fast and slow rules' states and the ``slow`` mask (weight layout, bool)."""

    fast: Any
    slow: Any
    slow_mask: torch.Tensor


@dataclass(frozen=True)
class ConsolidatingRule(Rule):
    """A :class:`~neuro_plasticity.rule.Rule` with a fast and a slow regime per synapse (see the
    module docstring); built by :func:`consolidating`."""

    def consolidate(self, state: ConsolidationState, mask: torch.Tensor) -> ConsolidationState:
        """Mark the synapses of ``mask`` (weight layout, bool) slow; already slow ones stay slow.
        Returns a new state (``state`` is not modified)."""
        check_tensor("mask", mask, shape=tuple(state.slow_mask.shape), dtype=torch.bool)
        return state._replace(slow_mask=state.slow_mask | mask)


@recipe
def consolidating(fast: Rule, slow: Rule) -> ConsolidatingRule:
    """``Δw = where(slow, Δw_slow, Δw_fast)`` per synapse; no synapse is slow at ``init``."""
    for name, r in (("fast", fast), ("slow", slow)):
        if not isinstance(r, Rule):
            raise ValueError(f"{name} must be a Rule, got {type(r).__name__}")
        if r.topology is not None:
            raise ValueError(f"{name} is bound to a topology; bind the consolidating rule instead")

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> ConsolidationState:
        return ConsolidationState(
            fast.init_fn(topo, weight, batch),
            slow.init_fn(topo, weight, batch),
            torch.zeros_like(weight, dtype=torch.bool),
        )

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: ConsolidationState,
        weight: torch.Tensor,
        modulator: Modulator,
    ) -> tuple[torch.Tensor, ConsolidationState]:
        d_fast, s_fast = fast.update_fn(topo, pre, post, state.fast, weight, modulator)
        d_slow, s_slow = slow.update_fn(topo, pre, post, state.slow, weight, modulator)
        delta = torch.where(state.slow_mask, d_slow, d_fast)
        return delta, ConsolidationState(s_fast, s_slow, state.slow_mask)

    return ConsolidatingRule(
        f"consolidating({fast.name}, {slow.name})", init_fn, update_fn, parts=(fast, slow)
    )


@recipe
def two_regime_stdp(
    *,
    slow_rate: float = 0.2,
    slow_tau_factor: float = 2.0,
    transforms: tuple[Transform, ...] = (),
    lr: float = 1.0,
    tau_plus_ms: float = 20.0,
    tau_minus_ms: float = 20.0,
    **pair_kwargs: Any,
) -> ConsolidatingRule:
    """HebLLM's two regimes on pair STDP: fast ``chain(pair_stdp(lr, τ±, ...), *transforms)``
    and slow ``chain(pair_stdp(slow_rate·lr, slow_tau_factor·τ±, ...), *transforms)``.

    Defaults: 0.2× rates and 2× time constants (HebLLM ``Synapse.apply_stdp``). Other keyword
    arguments go to both :func:`~neuro_plasticity.stdp.pair_stdp`; ``transforms`` (e.g.
    ``modulate()``, ``clip(...)``) follow each of them.
    """
    check_positive("slow_rate", slow_rate, allow_zero=True)
    check_positive("slow_tau_factor", slow_tau_factor)
    fast = pair_stdp(lr=lr, tau_plus_ms=tau_plus_ms, tau_minus_ms=tau_minus_ms, **pair_kwargs)
    slow = pair_stdp(
        lr=slow_rate * lr,
        tau_plus_ms=slow_tau_factor * tau_plus_ms,
        tau_minus_ms=slow_tau_factor * tau_minus_ms,
        **pair_kwargs,
    )
    if transforms:
        return consolidating(chain(fast, *transforms), chain(slow, *transforms))
    return consolidating(fast, slow)


__all__ = ["ConsolidatingRule", "ConsolidationState", "consolidating", "two_regime_stdp"]
