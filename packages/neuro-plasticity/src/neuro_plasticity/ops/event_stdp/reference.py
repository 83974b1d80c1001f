"""The spec of event-driven STDP: the dense rule, called at every step.

:class:`DenseReplay` exposes a dense per-step rule (e.g. ``chain(pair_stdp(...), clip(...))``
bound to a CSR topology) through the event protocol ``on_spikes(step, pre, post, state, weight,
modulator) -> (index, value, state)``. At each call it first runs the rule on the silent steps
since the previous call (zero spikes: the traces decay), then on this step's spikes, and returns
every synapse with its new weight. Its cost is ``nnz`` per step, spiking or not; it exists to pin
the semantics of the event backend (tests compare them) and as a fallback for rules the event
backend does not support.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from neuro_plasticity.rule import Modulator, Rule


class DenseReplayState(NamedTuple):
    """``rule_state`` of the dense rule; ``next_step`` the first step not yet replayed."""

    rule_state: Any
    next_step: int


class DenseReplay:
    """A dense per-step :class:`~neuro_plasticity.rule.Rule` behind the event protocol."""

    def __init__(self, rule: Rule) -> None:
        if rule.topology is None:
            raise ValueError("rule must be bound to a topology (on_topology(rule, CSR(...)))")
        self.rule = rule
        self.topology = rule.topology

    def init(self, weight: torch.Tensor, batch: int = 1) -> DenseReplayState:
        return DenseReplayState(self.rule.init(weight, batch), 0)

    def on_spikes(
        self,
        step: int,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: DenseReplayState,
        weight: torch.Tensor,
        modulator: Modulator = None,
    ) -> tuple[torch.Tensor, torch.Tensor, DenseReplayState]:
        if step < state.next_step:
            raise ValueError(
                f"step must be ≥ {state.next_step} (steps only move forward), got {step}"
            )
        topo = self.topology
        w = weight.clone()
        st = state.rule_state
        zeros_pre = w.new_zeros(1, topo.n_pre)
        zeros_post = w.new_zeros(1, topo.n_post)
        for _ in range(state.next_step, step):
            dw, st = self.rule.update(zeros_pre, zeros_post, st, w, modulator)
            w = w + dw
        s_pre, s_post = zeros_pre.clone(), zeros_post.clone()
        s_pre[0, pre] = 1.0
        s_post[0, post] = 1.0
        dw, st = self.rule.update(s_pre, s_post, st, w, modulator)
        index = torch.arange(w.numel(), device=w.device)
        return index, w + dw, DenseReplayState(st, step + 1)


__all__ = ["DenseReplay", "DenseReplayState"]
