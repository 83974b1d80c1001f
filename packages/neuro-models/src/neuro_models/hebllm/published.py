"""HebLLM's initial learning rule (``HebSNN._apply_stdp`` at 03bbcba), ported as published.

For every neuron i that spikes at a step and every excitatory presynaptic neuron j of a synapse
j → i (reference-systems.md §2.1):

    if x_j > 0.1:   w_ij ← clip(w_ij + 0.05 · g_ij · m, 0, 1)

with ``g_ij = 2`` for sensory → output synapses (else 1), m the neuromodulator and x_j the
presynaptic neuron's trace, which decays as ``x_j ← x_j · exp(−dt/20 ms)`` every step.
**Published**, ``x_j`` is only incremented inside ``Synapse.transmit_spike``, which the network
never calls, so ``x_j ≡ 0``, the gate is never open and the weights never change
(``increment_trace=False``, the default here because this module is the port of the published
rule). ``increment_trace=True`` adds 1 to ``x_j`` on every presynaptic spike, the obvious fix;
the rule then potentiates on co-activity but stays order-blind and has no depression (it is
not STDP: a presynaptic spike *after* the postsynaptic one within the trace's reach potentiates
just the same, as long as the trace is still above 0.1 at the next postsynaptic spike).

Not ported: the published inhibitory branch (when an inhibitory neuron spikes, ``w ← w + 0.02·m``
on its synapses onto neurons whose membrane exceeds half their threshold). It reads membranes,
which a plasticity hook does not see; the inhibitory projections of the published arm are
static here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuro_core.validation import check_positive
from neuro_plasticity import Rule, chain, clip
from neuro_plasticity.rule import Modulator, modulator_value, recipe
from neuro_plasticity.topology import Topology

__all__ = ["PublishedRuleParams", "PublishedTrace", "published_hebbian_rule"]


class PublishedTrace(NamedTuple):
    x_pre: torch.Tensor  # [B, n_pre]


@dataclass(frozen=True, kw_only=True)
class PublishedRuleParams:
    """Defaults are the published constants (03bbcba).

    Attributes:
        potentiation: 0.05 per spike and unit of m.
        gate: 0.1, the trace level above which a presynaptic neuron counts as "recently fired".
        boost: 2.0 on sensory → output synapses (pass ``boost=1`` for other projections).
        tau_ms: 20 ms trace time constant; dt_ms: 1 ms.
        increment_trace: False (published: the trace is never incremented), True (fixed).
    """

    potentiation: float = 0.05
    gate: float = 0.1
    boost: float = 1.0
    tau_ms: float = 20.0
    dt_ms: float = 1.0
    increment_trace: bool = False

    def __post_init__(self) -> None:
        for name in ("potentiation", "gate", "boost"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_positive("tau_ms", self.tau_ms)
        check_positive("dt_ms", self.dt_ms)


@recipe
def published_hebbian_rule(params: PublishedRuleParams | None = None) -> Rule:
    """The published rule (module docstring) as a :class:`~neuro_plasticity.Rule`, chained with
    ``clip(0, 1)``; it needs a modulator.

        Δw_ij = potentiation · boost · m · s_i^post · [x_j > gate]
    """
    p = params if params is not None else PublishedRuleParams()
    decay = math.exp(-p.dt_ms / p.tau_ms)

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> PublishedTrace:
        return PublishedTrace(weight.new_zeros(batch, topo.n_pre))

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        tr: PublishedTrace,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, PublishedTrace]:
        mod = modulator_value(m, w, rule="published_hebbian_rule")
        x = tr.x_pre * decay
        open_ = (x > p.gate).to(w.dtype)
        dw = topo.outer(post, open_) * (p.potentiation * p.boost) * mod
        if p.increment_trace:
            x = x + pre
        return dw, PublishedTrace(x)

    rule = Rule("published_hebbian", init_fn, update_fn, params=p)
    return chain(rule, clip(w_min=0.0, w_max=1.0))
