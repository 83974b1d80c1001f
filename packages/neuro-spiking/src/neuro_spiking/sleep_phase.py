"""Spiking sleep: offline replay at reduced plasticity, consolidation into slow synapses, pruning.

HebLLM's sleep phase (reference-systems.md §2.1; ``HebSNN._sleep_consolidation`` at 03bbcba),
applied to a :class:`~neuro_spiking.network.Network` state:

1. **Replay**: the stored spike patterns ``replay [T, N]`` are played back through
   :meth:`Network.replay <neuro_spiking.network.Network.replay>`: every neuron spikes as stored,
   and the plasticity hooks run at every step with the third factor ``0.3 · m_t`` (m_t from the
   network's neuromodulator on the replayed spikes, or the constant ``modulator``).
2. **Pruning**: every synapse with ``w < 0.01`` is removed for good (``alive`` False, weight
   held at 0 by later runs; all projections, as published).
3. **Consolidation**: a surviving synapse whose presynaptic neuron has emitted more than 50
   spikes (every spike activates all its synapses) and that is older than 1000 ms becomes slow:
   its projection's hook, if it has ``consolidate(state, mask) -> state`` (e.g.
   ``neuro_plasticity.consolidating``), switches it to its slow regime.

The report gives the synapse counts before and after, measured on the ``alive`` masks.

Differences from the published sleep: the replayed steps keep their stored timing (published:
the last 100 non-empty spike sets back to back; :func:`last_spike_sets` builds that buffer);
the replay modulation is 0.3·m_t with m_t the neuromodulator's value on the replayed spikes,
and no prediction or reward comes in during the replay, so surprise and reward only decay from
their waking values (published: novelty and surprise were zeroed before each replayed update,
which then recomputed novelty, so only surprise was forced to 0); activations are counted
(published: never incremented, so nothing became slow); pruning removes the synapses it marks
(published: index shift while deleting). All synapses exist from step 0, so a synapse's age is
the simulated time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from neuro_core.validation import check_positive, check_tensor
from neuro_spiking.network import Network, NetworkState


@runtime_checkable
class ConsolidationHook(Protocol):
    """A plasticity hook with a slow regime: ``consolidate(state, mask) -> state`` marks the
    ``[nnz]`` synapses of ``mask`` slow (``neuro_plasticity.ConsolidatingRule``)."""

    def consolidate(self, state: Any, mask: torch.Tensor) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class SleepParams:
    """Sleep parameters; defaults are HebLLM's (03bbcba).

    Attributes:
        modulation_scale: factor on the third factor during replay, 0.3.
        prune_below: synapses with ``w < prune_below`` are pruned after the replay, 0.01.
        consolidate_after: a synapse turns slow after *more than* this many activations, 50.
        min_age_ms: ... and when older than this, 1000 ms.
    """

    modulation_scale: float = 0.3
    prune_below: float = 0.01
    consolidate_after: int = 50
    min_age_ms: float = 1000.0

    def __post_init__(self) -> None:
        check_positive("modulation_scale", self.modulation_scale, allow_zero=True)
        check_positive("prune_below", self.prune_below, allow_zero=True)
        check_positive("min_age_ms", self.min_age_ms, allow_zero=True)
        if int(self.consolidate_after) != self.consolidate_after or self.consolidate_after < 0:
            raise ValueError(
                f"consolidate_after must be an integer ≥ 0, got {self.consolidate_after!r}"
            )


class SleepReport(NamedTuple):
    """Per projection: ``synapses_before`` / ``synapses_after`` (alive synapses), ``pruned``
    (removed by this sleep), ``slow`` (marked slow by this sleep); ``replayed_steps``;
    ``modulation [T]`` the third factor the hooks received at each replayed step."""

    synapses_before: tuple[int, ...]
    synapses_after: tuple[int, ...]
    pruned: tuple[int, ...]
    slow: tuple[int, ...]
    replayed_steps: int
    modulation: torch.Tensor


def sleep(
    network: Network,
    state: NetworkState,
    replay: torch.Tensor,
    params: SleepParams | None = None,
    *,
    modulator: float | torch.Tensor | None = None,
) -> tuple[NetworkState, SleepReport]:
    """One sleep phase (module docstring): replay, prune, consolidate.

    Args:
        network: the network.
        state: its state after waking activity (``state`` is not modified).
        replay: ``[T, N]`` bool spike patterns to replay (e.g. :func:`raster` of a run).
        params: :class:`SleepParams` (HebLLM defaults).
        modulator: constant third factor for networks without a neuromodulator.

    Returns:
        ``(state after sleep, SleepReport)``.
    """
    p = params if params is not None else SleepParams()
    before = tuple(int(a.sum()) for a in state.alive)
    state, res = network.replay(
        replay, state, modulation_scale=p.modulation_scale, modulator=modulator
    )
    alive, weights = [], []
    for a, w in zip(state.alive, state.weights):
        keep = a & (w >= p.prune_below)
        alive.append(keep)
        weights.append(torch.where(keep, w, torch.zeros_like(w)))
    hook_states = list(state.hook_states)
    slow = [0] * len(network.projections)
    old_enough = state.step * network.dt_ms > p.min_age_ms
    for i, pr in enumerate(network.projections):
        hook = network.plasticity.get(i)
        if not old_enough or not isinstance(hook, ConsolidationHook):
            continue
        pre_global = pr.col_indices + network.offsets[pr.pre]
        activations = state.spike_count.index_select(0, pre_global)
        mask = (activations > p.consolidate_after) & alive[i]
        hook_states[i] = hook.consolidate(hook_states[i], mask)
        slow[i] = int(mask.sum())
    after = tuple(int(a.sum()) for a in alive)
    new_state = state._replace(
        weights=tuple(weights), alive=tuple(alive), hook_states=tuple(hook_states)
    )
    report = SleepReport(
        before,
        after,
        tuple(b - a for b, a in zip(before, after)),
        tuple(slow),
        int(replay.shape[0]),
        res.modulation,
    )
    return new_state, report


def raster(network: Network, spikes: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[T, N]`` bool raster of a run's ``RunResult.spikes`` (every population recorded)."""
    missing = [n for n in network.offsets if n not in spikes]
    if missing:
        raise ValueError(f"spikes must hold every population; missing {missing}")
    return torch.cat([spikes[n] for n in network.offsets], dim=1)


def last_spike_sets(raster: torch.Tensor, n: int = 100) -> torch.Tensor:
    """HebLLM's replay buffer: the last ``n`` non-empty steps of ``raster [T, N]``, back to
    back (published: 100 sets, replayed without the silent steps between them)."""
    check_tensor("raster", raster, ndim=2, dtype=torch.bool)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    return raster[raster.any(1)][-n:]


__all__ = [
    "ConsolidationHook",
    "SleepParams",
    "SleepReport",
    "last_spike_sets",
    "raster",
    "sleep",
]
