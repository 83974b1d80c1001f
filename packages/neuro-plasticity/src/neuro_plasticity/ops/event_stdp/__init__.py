"""Event-driven STDP: ``event_driven(rule, topology)`` turns a dense per-step STDP rule into a
rule whose cost follows the spikes.

The result implements the event protocol (``neuro_spiking.network.EventPlasticityHook``)::

    ev = event_driven(chain(pair_stdp(dt_ms=0.1), clip(w_min=0.0, w_max=1.0)), CSR(...))
    state = ev.init(weight)
    index, value, state = ev.on_spikes(step, pre_idx, post_idx, state, weight)
    weight[index] = value          # only the synapses of the neurons that spiked

and gives the weights of the dense rule called at every step (``w ← w + Δw``) up to float
rounding of the traces (tests compare them).

Backends: ``"events"`` (:class:`~.events.EventPairSTDP`: lazy traces, only the synapses of
spiking neurons; supports :func:`~neuro_plasticity.stdp.pair_stdp`, additive or soft bounds,
all-to-all or nearest pairing, optionally chained with ``scale``, ``modulate`` and ``clip``),
``"reference"`` (:class:`~.reference.DenseReplay`: the dense rule at every step, the spec; any
rule) and ``"auto"`` (``"events"`` when the rule is supported, else ``"reference"``).
"""

from __future__ import annotations

from typing import Literal

from neuro_plasticity.ops.event_stdp.events import REBASE_EXPONENT, EventPairSTDP, EventSTDPState
from neuro_plasticity.ops.event_stdp.reference import DenseReplay, DenseReplayState
from neuro_plasticity.rule import Rule, Transform, on_topology
from neuro_plasticity.stdp import PairSTDPParams
from neuro_plasticity.topology import CSR, Topology

EventBackend = Literal["auto", "events", "reference"]


def _event_form(rule: Rule) -> tuple[PairSTDPParams, tuple[Transform, ...]] | str:
    """The pair-STDP parameters and transforms of ``rule``, or why it has no event form."""
    parts = rule.parts or (rule,)
    first, rest = parts[0], parts[1:]
    if not isinstance(first, Rule) or not isinstance(first.params, PairSTDPParams):
        return f"the first part must be pair_stdp(...), got {first.name}"
    transforms = []
    for part in rest:
        if not isinstance(part, Transform) or not part.sparse_safe:
            return (
                f"{part.name} is not sparse-safe (only scale, modulate and clip may follow "
                "pair_stdp: they leave untouched synapses untouched)"
            )
        transforms.append(part)
    return first.params, tuple(transforms)


def event_driven(
    rule: Rule, topology: Topology | None = None, *, backend: EventBackend = "auto"
) -> EventPairSTDP | DenseReplay:
    """Event-driven form of ``rule`` on a CSR ``topology`` (default: the rule's own).

    Args:
        rule: ``pair_stdp(...)`` or ``chain(pair_stdp(...), *transforms)`` with transforms among
            ``scale``, ``modulate``, ``clip`` (``"events"``); any rule (``"reference"``).
        topology: a :class:`~neuro_plasticity.topology.CSR` (rows = post, columns = pre), e.g.
            the projection's ``CSR(proj.crow_indices, proj.col_indices, n_pre)``.
        backend: see the module docstring.

    Raises:
        ValueError: naming ``rule`` when ``backend="events"`` cannot run it, naming
            ``topology`` when it is not CSR.
    """
    if backend not in ("auto", "events", "reference"):
        raise ValueError(f"backend must be 'auto', 'events' or 'reference', got {backend!r}")
    if not isinstance(rule, Rule):
        raise ValueError(f"rule must be a Rule, got {type(rule).__name__}")
    topo = topology if topology is not None else rule.topology
    if not isinstance(topo, CSR):
        raise ValueError(f"topology must be a CSR topology, got {type(topo).__name__}")
    form = _event_form(rule) if backend != "reference" else "reference requested"
    if isinstance(form, str):
        if backend == "events":
            raise ValueError(f"rule {rule.name} has no event-driven form: {form}")
        return DenseReplay(on_topology(rule, topo))
    params, transforms = form
    return EventPairSTDP(params, transforms, topo)


__all__ = [
    "REBASE_EXPONENT",
    "DenseReplay",
    "DenseReplayState",
    "EventBackend",
    "EventPairSTDP",
    "EventSTDPState",
    "event_driven",
]
