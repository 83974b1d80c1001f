"""The hook protocols between the spiking simulator and the plasticity rules.

``neuro_spiking.network.Network`` calls plasticity rules and neuromodulators that
``neuro_plasticity`` implements, and component packages never import each other, so the
protocols are declared once here and both packages use these classes (each re-exports them
under the same names). They are ``typing.Protocol`` classes checked structurally:
``isinstance(rule, PlasticityHook)`` is true for any object with the right methods, and
implementing one never requires importing this module.

``modulator`` is a global third factor (a Python float or 0-d tensor: dopamine-like reward,
novelty or surprise, as in Frémaux & Gerstner 2016); rules without a third factor do not read
it, rules with one raise if it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

Modulator = float | torch.Tensor | None
"""Type of the third factor handed to a plasticity hook (``None``: none this step)."""


@runtime_checkable
class PlasticityHook(Protocol):
    """A dense plasticity rule, called once per step: ``hook(pre, post, state, weight,
    modulator) -> (delta_w, state)``, with ``init(weight, batch=1) -> state``.

    ``pre`` is ``[n_pre]`` or ``[B, n_pre]``, ``post`` is ``[n_post]`` or ``[B, n_post]``
    (spikes as 0/1 floats or rates), ``weight`` is in the layout of the rule's topology
    (``[n_post, n_pre]`` dense, ``[nnz]`` CSR magnitudes in the simulator), and ``delta_w`` has
    the shape of ``weight``. The hook never modifies ``weight``; the caller applies ``delta_w``.
    ``neuro_plasticity.Rule`` implements it (``rule(...)`` is ``rule.update(...)``).
    """

    def init(self, weight: torch.Tensor, batch: int = 1) -> Any: ...

    def __call__(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: Any,
        weight: torch.Tensor,
        modulator: Modulator = None,
    ) -> tuple[torch.Tensor, Any]: ...


@runtime_checkable
class EventPlasticityHook(Protocol):
    """An event-driven plasticity rule on a CSR projection.

    ``on_spikes(step, pre, post, state, weight, modulator) -> (index, value, state)`` is called
    at the steps where the projection's presynaptic or postsynaptic population spiked, with
    ``pre [p]`` / ``post [q]`` the int64 local indices of the neurons that spiked at ``step``
    (an absolute step count) and ``weight`` the projection's ``[nnz]`` magnitudes before this
    step's update. It returns the synapses it changed and their new values (``weight[index] =
    value``; an index may repeat only with equal values). Steps without spikes are skipped, so
    the rule must account for the time in between itself (lazy traces). It may update ``state``
    in place: the simulator hands it a private copy. ``neuro_plasticity.ops.event_stdp`` builds
    one from a dense STDP rule.
    """

    def init(self, weight: torch.Tensor, batch: int = 1) -> Any: ...

    def on_spikes(
        self,
        step: int,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: Any,
        weight: torch.Tensor,
        modulator: Modulator = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]: ...


@runtime_checkable
class NeuromodulatorHook(Protocol):
    """A neuromodulator computed from the network's activity.

    ``init(n_neurons) -> state``; ``update(step, spikes, state, inputs) -> (m, state)`` is called
    once per step, in order, with ``spikes [p]`` the ascending int64 global indices of the neurons
    that spiked at ``step`` and ``inputs`` the row ``step`` of each tensor given to
    ``Network.run(modulator_inputs=...)`` (e.g. a reward or a predicted output activity); ``m``
    is passed to every plasticity hook at that step (the third factor). It must not modify
    ``state`` in place (``neuro_plasticity.ActivityModulator`` implements it).
    """

    def init(self, n_neurons: int) -> Any: ...

    def update(
        self, step: int, spikes: torch.Tensor, state: Any, inputs: Mapping[str, torch.Tensor]
    ) -> tuple[float, Any]: ...


__all__ = ["EventPlasticityHook", "Modulator", "NeuromodulatorHook", "PlasticityHook"]
