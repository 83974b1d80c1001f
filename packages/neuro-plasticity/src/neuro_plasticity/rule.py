"""Plasticity rules as ``(init, update)`` pairs, the hook protocol, and the combinators.

A :class:`Rule` never mutates weights. It maps activity to a weight change::

    state = rule.init(weight, batch=B)
    delta_w, state = rule.update(pre, post, state, weight, modulator=None)
    weight = weight + delta_w            # the caller decides when and how to apply it

Shapes: ``pre`` is ``[n_pre]`` or ``[B, n_pre]``, ``post`` is ``[n_post]`` or ``[B, n_post]``
(spikes as 0/1 floats or rates), ``weight`` is in the layout of the rule's topology
(``[n_post, n_pre]`` when dense, see :mod:`neuro_plasticity.topology`), and ``delta_w`` has the
shape of ``weight``. Activity-driven terms are averaged over the batch, so a batch of B identical
rows gives the same ``delta_w`` as one row. Traces and other per-neuron state live in ``state``
(a NamedTuple, ``[B, n]`` per trace), never on the rule.

**Plasticity-hook protocol** (shared with ``neuro_spiking``'s simulator, which must not import
this package): any callable ``hook(pre, post, state, weight, modulator=None) -> (delta_w, state)``
with an ``init(weight, batch=1) -> state`` attribute. :class:`Rule` implements it (``rule(...)``
is ``rule.update(...)``); :class:`~neuro_core.protocols.PlasticityHook` states it once, in
``neuro_core.protocols``, as a ``typing.Protocol`` (re-exported here). ``modulator`` is a global
third factor (a Python float or 0-d tensor: dopamine-like reward, novelty or surprise, as in
Frémaux & Gerstner 2016); rules without a third factor do not read it, rules with one raise if
it is missing.

Combinators (:func:`chain`, :func:`weight_decay`, :func:`clip`, :func:`prune`, :func:`scale`,
:func:`modulate`, :func:`eligibility`) are :class:`Transform` objects that rewrite the weight
change produced so far, in the manner of optax; :func:`chain` composes rules and transforms and
:func:`on_topology` maps any of them onto sparse or local connectivity.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import torch

from neuro_core.protocols import EventPlasticityHook, Modulator, PlasticityHook
from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_plasticity.topology import Dense, Topology

InitFn = Callable[[Topology, torch.Tensor, int], Any]
UpdateFn = Callable[
    [Topology, torch.Tensor, torch.Tensor, Any, torch.Tensor, Modulator], tuple[torch.Tensor, Any]
]
TInitFn = Callable[[Topology, torch.Tensor], Any]
TUpdateFn = Callable[
    [Topology, torch.Tensor, Any, torch.Tensor, Modulator], tuple[torch.Tensor, Any]
]


class EmptyState(NamedTuple):
    """State of a rule that keeps none."""


def _topology(topology: Topology | None, weight: torch.Tensor) -> Topology:
    if topology is not None:
        topology.check_weight(weight)
        return topology
    check_tensor("weight", weight, ndim=2, floating=True)
    return Dense(int(weight.shape[0]), int(weight.shape[1]))


def _as_batch(name: str, x: torch.Tensor, n: int, weight: torch.Tensor) -> torch.Tensor:
    check_tensor(name, x, ndim=(1, 2), device=weight.device)
    if x.shape[-1] != n:
        side = "n_pre (weight columns)" if name == "pre" else "n_post (weight rows)"
        raise ValueError(f"{name} must have last dim {n} = {side}, got shape {tuple(x.shape)}")
    x = x if x.ndim == 2 else x[None]
    return x.to(weight.dtype)


def modulator_value(modulator: Modulator, weight: torch.Tensor, *, rule: str) -> torch.Tensor:
    """The third factor as a 0-d tensor; ``ValueError`` naming ``modulator`` if missing or not scalar."""
    if modulator is None:
        raise ValueError(f"{rule}: modulator is required (a scalar neuromodulatory signal)")
    m = torch.as_tensor(modulator, dtype=weight.dtype, device=weight.device)
    if m.ndim != 0:
        raise ValueError(f"modulator must be a scalar, got shape {tuple(m.shape)}")
    return m


@dataclass(frozen=True)
class Rule:
    """A plasticity rule: ``init(weight, batch) -> state``; ``update(...) -> (delta_w, state)``.

    Build rules with the constructors (:func:`~neuro_plasticity.hebbian.hebbian`,
    :func:`~neuro_plasticity.stdp.pair_stdp`, ...) rather than directly.

    Attributes:
        name: for error messages.
        init_fn: ``(topology, weight, batch) -> state``.
        update_fn: ``(topology, pre [B, n_pre], post [B, n_post], state, weight, modulator)
            -> (delta_w, state)``.
        topology: connectivity; ``None`` means dense, inferred from the weight shape.
        params: the constructor's parameters (e.g. :class:`~neuro_plasticity.stdp.PairSTDPParams`),
            for compilers such as :func:`~neuro_plasticity.ops.event_stdp.event_driven`.
        parts: the rules and transforms of a :func:`chain` (empty otherwise).
        recipe: ``(constructor, args, kwargs)`` that rebuild the rule, set by the library's
            constructors (:func:`recipe`): a rule pickles as its recipe, since its functions
            are closures over the parameters. None: the rule cannot be pickled.
    """

    name: str
    init_fn: InitFn
    update_fn: UpdateFn
    topology: Topology | None = None
    params: Any = None
    parts: tuple[Rule | Transform, ...] = ()
    recipe: Recipe | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self)

    def init(self, weight: torch.Tensor, batch: int = 1) -> Any:
        """Initial state (traces at zero) for this weight layout and batch size."""
        if int(batch) < 1:
            raise ValueError(f"batch must be ≥ 1, got {batch}")
        return self.init_fn(_topology(self.topology, weight), weight, int(batch))

    def update(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: Any,
        weight: torch.Tensor,
        modulator: Modulator = None,
    ) -> tuple[torch.Tensor, Any]:
        """Weight change for one time step (never modifies ``weight``); see module docstring."""
        topo = _topology(self.topology, weight)
        pre_b = _as_batch("pre", pre, topo.n_pre, weight)
        post_b = _as_batch("post", post, topo.n_post, weight)
        if pre_b.shape[0] != post_b.shape[0]:
            raise ValueError(
                f"pre and post must have the same batch size, got {pre_b.shape[0]} and {post_b.shape[0]}"
            )
        return self.update_fn(topo, pre_b, post_b, state, weight, modulator)

    __call__ = update


@dataclass(frozen=True)
class Transform:
    """Rewrites a weight change: ``update_fn(topology, delta, state, weight, modulator)``.

    ``sparse_safe`` marks stateless transforms that act on each synapse from its own change and
    weight only and leave a zero change at zero (for weights inside their bounds): an
    event-driven rule may apply them to the synapses it touches and skip the others
    (:func:`scale`, :func:`clip`, :func:`modulate`; not :func:`weight_decay`, which moves every
    weight every step).
    """

    name: str
    init_fn: TInitFn
    update_fn: TUpdateFn
    sparse_safe: bool = False
    params: Any = None
    recipe: Recipe | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self)


#: ``(constructor, args, kwargs)``: how a rule or transform is rebuilt (see :func:`recipe`).
Recipe = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_Built = TypeVar("_Built", bound="Rule | Transform")


def recipe(constructor: Callable[..., _Built]) -> Callable[..., _Built]:
    """Decorate a module-level constructor of rules or transforms so that what it returns
    records ``(constructor, args, kwargs)`` and pickles as that call (its ``init_fn`` and
    ``update_fn`` are closures, which pickle cannot store). Every constructor of this package
    is decorated; the same works for user constructors defined at module level."""

    @functools.wraps(constructor)
    def build(*args: Any, **kwargs: Any) -> _Built:
        out = constructor(*args, **kwargs)
        return dataclasses.replace(out, recipe=(build, args, kwargs))

    return build


def _rebuild(rec: Recipe) -> Rule | Transform:
    factory, args, kwargs = rec
    return factory(*args, **kwargs)


def _reduce(obj: Rule | Transform) -> tuple[Any, ...]:
    if obj.recipe is None:
        raise TypeError(
            f"{type(obj).__name__} {obj.name!r} cannot be pickled: it was not built by a "
            "constructor decorated with neuro_plasticity.rule.recipe (its functions are "
            "closures); build it with such a constructor"
        )
    return (_rebuild, (obj.recipe,))


@recipe
def chain(*parts: Rule | Transform) -> Rule:
    """Compose rules and transforms left to right.

    Rules add their weight change to the running total; transforms rewrite the running total
    (e.g. ``chain(pair_stdp(), weight_decay(1e-4), clip(w_min=0, w_max=1))``). The state is the
    tuple of the parts' states.
    """
    if not parts:
        raise ValueError("chain needs at least one rule or transform")
    for i, p in enumerate(parts):
        if not isinstance(p, Rule | Transform):
            raise ValueError(f"parts[{i}] must be a Rule or Transform, got {type(p).__name__}")
        if isinstance(p, Rule) and p.topology is not None:
            raise ValueError(f"parts[{i}] is bound to a topology; bind the chain instead")

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> tuple[Any, ...]:
        return tuple(
            p.init_fn(topo, weight, batch) if isinstance(p, Rule) else p.init_fn(topo, weight)
            for p in parts
        )

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: tuple[Any, ...],
        weight: torch.Tensor,
        modulator: Modulator,
    ) -> tuple[torch.Tensor, tuple[Any, ...]]:
        delta = torch.zeros_like(weight)
        new = []
        for p, s in zip(parts, state):
            if isinstance(p, Rule):
                d, s = p.update_fn(topo, pre, post, s, weight, modulator)
                delta = delta + d
            else:
                delta, s = p.update_fn(topo, delta, s, weight, modulator)
            new.append(s)
        return delta, tuple(new)

    name = "chain(" + ", ".join(p.name for p in parts) + ")"
    return Rule(name, init_fn, update_fn, parts=tuple(parts))


@recipe
def on_topology(rule: Rule, topology: Topology) -> Rule:
    """The same rule on another connectivity (:class:`~neuro_plasticity.topology.CSR`, local).

    Weights and weight changes then use the topology's layout (``[nnz]`` for CSR). Rules that need
    a product with the full matrix (Oja's subspace and Sanger variants) raise ``ValueError`` at
    ``init`` on topologies without ``supports_matmul``.
    """
    if not isinstance(topology, Topology):
        raise ValueError(f"topology must be a Topology, got {type(topology).__name__}")
    return dataclasses.replace(rule, topology=topology)


def _stateless(topo: Topology, weight: torch.Tensor) -> EmptyState:
    return EmptyState()


@recipe
def weight_decay(rate: float) -> Transform:
    """Add ``−rate · w`` to the weight change (``rate`` ≥ 0, per update)."""
    rate = check_positive("rate", rate, allow_zero=True)

    def update_fn(
        topo: Topology, delta: torch.Tensor, state: Any, weight: torch.Tensor, m: Modulator
    ) -> tuple[torch.Tensor, Any]:
        return delta - rate * weight, state

    return Transform(f"weight_decay({rate})", _stateless, update_fn)


@dataclass(frozen=True)
class ScaleParams:
    """The factor of a :func:`scale` transform."""

    factor: float


@dataclass(frozen=True)
class ModulateParams:
    """Marks a :func:`modulate` transform (it has no parameter)."""


@recipe
def scale(factor: float) -> Transform:
    """Multiply the weight change by ``factor`` (a learning rate; ≥ 0)."""
    factor = check_positive("factor", factor, allow_zero=True)

    def update_fn(
        topo: Topology, delta: torch.Tensor, state: Any, weight: torch.Tensor, m: Modulator
    ) -> tuple[torch.Tensor, Any]:
        return delta * factor, state

    return Transform(
        f"scale({factor})", _stateless, update_fn, sparse_safe=True, params=ScaleParams(factor)
    )


@dataclass(frozen=True, kw_only=True)
class ClipParams:
    """The bounds of a :func:`clip` transform (``None``: no bound)."""

    max_delta: float | None
    w_min: float | None
    w_max: float | None


@recipe
def clip(
    *, max_delta: float | None = None, w_min: float | None = None, w_max: float | None = None
) -> Transform:
    """Clip the change to ``|Δw| ≤ max_delta``, then so that ``w + Δw`` stays in ``[w_min, w_max]``."""
    if max_delta is not None:
        check_positive("max_delta", max_delta)
    if w_min is not None and w_max is not None and not w_min < w_max:
        raise ValueError(f"w_min must be < w_max, got {w_min} and {w_max}")
    if max_delta is None and w_min is None and w_max is None:
        raise ValueError("clip needs max_delta, w_min or w_max")

    def update_fn(
        topo: Topology, delta: torch.Tensor, state: Any, weight: torch.Tensor, m: Modulator
    ) -> tuple[torch.Tensor, Any]:
        if max_delta is not None:
            delta = delta.clamp(-max_delta, max_delta)
        if w_min is not None or w_max is not None:
            delta = (weight + delta).clamp(w_min, w_max) - weight
        return delta, state

    return Transform(
        f"clip({max_delta}, {w_min}, {w_max})",
        _stateless,
        update_fn,
        sparse_safe=True,
        params=ClipParams(max_delta=max_delta, w_min=w_min, w_max=w_max),
    )


class PruneState(NamedTuple):
    alive: torch.Tensor  # weight layout, bool: synapses not pruned yet


@recipe
def prune(threshold: float) -> Transform:
    """Remove synapses whose updated weight falls below ``threshold`` in magnitude, for good.

    A pruned synapse gets ``Δw = −w`` (its weight becomes exactly 0) on the step it is pruned and
    every step after; the state keeps the ``alive`` mask. The sleep phase of HebLLM prunes
    ``w < 0.01`` the same way (reference-systems §2.1).
    """
    threshold = check_positive("threshold", threshold, allow_zero=True)

    def init_fn(topo: Topology, weight: torch.Tensor) -> PruneState:
        return PruneState(torch.ones_like(weight, dtype=torch.bool))

    def update_fn(
        topo: Topology, delta: torch.Tensor, state: PruneState, weight: torch.Tensor, m: Modulator
    ) -> tuple[torch.Tensor, PruneState]:
        alive = state.alive & ((weight + delta).abs() >= threshold)
        return torch.where(alive, delta, -weight), PruneState(alive)

    return Transform(f"prune({threshold})", init_fn, update_fn)


@recipe
def modulate() -> Transform:
    """Multiply the weight change by the scalar third factor ``modulator`` (required)."""

    def update_fn(
        topo: Topology, delta: torch.Tensor, state: Any, weight: torch.Tensor, m: Modulator
    ) -> tuple[torch.Tensor, Any]:
        return delta * modulator_value(m, weight, rule="modulate"), state

    return Transform("modulate()", _stateless, update_fn, sparse_safe=True, params=ModulateParams())


class EligibilityState(NamedTuple):
    trace: torch.Tensor  # weight layout: the eligibility e_ij


@recipe
def eligibility(tau_e_ms: float, dt_ms: float = 1.0, lr: float = 1.0) -> Transform:
    """Turn a weight change into an eligibility trace gated by the third factor.

        e ← e · exp(−dt/τ_e) + Δw_inner,      Δw = lr · M · e

    (Frémaux & Gerstner 2016, "Neuromodulated STDP, and theory of three-factor learning rules",
    eq. 3–4, Euler step with ``dt`` folded into ``lr``). ``modulator`` M is required.
    """
    tau = check_positive("tau_e_ms", tau_e_ms)
    dt = check_positive("dt_ms", dt_ms)
    lr = check_positive("lr", lr, allow_zero=True)
    decay = math.exp(-dt / tau)

    def init_fn(topo: Topology, weight: torch.Tensor) -> EligibilityState:
        return EligibilityState(torch.zeros_like(weight))

    def update_fn(
        topo: Topology,
        delta: torch.Tensor,
        state: EligibilityState,
        weight: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, EligibilityState]:
        mod = modulator_value(m, weight, rule="eligibility")
        e = state.trace * decay + delta
        return lr * mod * e, EligibilityState(e)

    return Transform(f"eligibility({tau_e_ms})", init_fn, update_fn)


def check_decay(name: str, value: float) -> float:
    """A retention factor in (0, 1]."""
    return check_in_range(name, value, 0.0, 1.0, low_open=True)


__all__ = [
    "ClipParams",
    "EligibilityState",
    "EmptyState",
    "EventPlasticityHook",
    "ModulateParams",
    "PlasticityHook",
    "PruneState",
    "Rule",
    "ScaleParams",
    "Transform",
    "chain",
    "clip",
    "eligibility",
    "modulate",
    "on_topology",
    "prune",
    "scale",
    "weight_decay",
]
