"""Consolidation: a short-term buffer whose strong memories move to long-term memory, both decaying.

Two episodic stores (:mod:`neuro_memory.episodic`): a small, fast-decaying short-term buffer
``S`` and a large, slowly decaying long-term store ``L``. Memories are written to ``S`` with their
importance as strength. One call of :func:`consolidate`, every ``C`` steps, does::

    moved = { i ∈ S filled : strength_i ≥ θ }                (in write order)
    L ← write(L, keys[moved], values[moved], strength = strength[moved])
    S.strength[moved] ← 0                                   (consumed: evicted first by "weakest",
                                                             never moved twice)
    S ← decay(S, steps);  L ← decay(L, steps)

With decay rates ``r_S > r_L``, a memory of importance ``I`` written ``a`` decay steps before a
consolidation is moved iff ``I (1 − r_S)^a ≥ θ``: important memories are kept, the rest fade
from the buffer (and are overwritten by later writes). In ``L`` a memory's strength is then
``I (1 − r_S)^a (1 − r_L)^b`` after ``b`` further steps, which is what retrieval ranks by.

Source: Aura's design document lists "no separate long-term memory store" and hand-tuned decay
(0.03) among the open issues of its memory system (shared/seeds, Aura mission, §3 and §6); its
``HippocampalFormation`` has one bank with one decay. The two-store scheme is the standard
complementary-learning-systems picture (McClelland, McNaughton & O'Reilly 1995): fast
hippocampal storage, selective transfer to a slow store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuro_core.validation import check_positive
from neuro_memory.episodic import EpisodicParams, EpisodicState, _check_state, decay, write

#: Default short-term buffer: 1024 slots, decay 0.1 per step, weakest-first replacement.
DEFAULT_SHORT = EpisodicParams(capacity=1024, decay_rate=0.1, replacement="weakest")
#: Default long-term store: 100 000 slots (Aura's bank size), decay 0.001, weakest-first.
DEFAULT_LONG = EpisodicParams(capacity=100_000, decay_rate=0.001, replacement="weakest")


@dataclass(frozen=True, kw_only=True)
class ConsolidationParams:
    """Options of :func:`consolidate`.

    Attributes:
        short: :class:`~neuro_memory.EpisodicParams` of the short-term buffer. Default capacity
            1024, decay 0.1 per step, ``"weakest"`` replacement (ours: a buffer much smaller and
            faster than the long-term store; consumed slots are reused first).
        long: :class:`~neuro_memory.EpisodicParams` of the long-term store. Default capacity
            100 000, decay 0.001, ``"weakest"``.
        threshold: ``θ > 0``, the strength a buffered memory needs to be moved. Default 0.5 (ours:
            half of the largest importance, 1).
    """

    short: EpisodicParams = DEFAULT_SHORT
    long: EpisodicParams = DEFAULT_LONG
    threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("short", "long"):
            if not isinstance(getattr(self, name), EpisodicParams):
                raise ValueError(f"{name} must be an EpisodicParams")
        check_positive("threshold", self.threshold)


class Consolidated(NamedTuple):
    """Result of :func:`consolidate`.

    Attributes:
        short: the buffer after consumption and decay.
        long: the long-term store after the writes and decay.
        moved: ``[M]`` long, the buffer slots that were moved, in write order.
    """

    short: EpisodicState
    long: EpisodicState
    moved: torch.Tensor


def consolidate(
    short: EpisodicState,
    long: EpisodicState,
    params: ConsolidationParams,
    *,
    steps: int = 1,
) -> Consolidated:
    """Move strong buffered memories to long-term memory, then decay both by ``steps``.

    Pure: returns new states. Keys and values must have the same sizes in both stores.

    Raises:
        ValueError: a state that does not match its params, or mismatched key/value sizes.
    """
    _check_state(short, params.short)
    _check_state(long, params.long)
    if (
        short.keys.shape[1:] != long.keys.shape[1:]
        or short.values.shape[1:] != long.values.shape[1:]
    ):
        raise ValueError(
            "short and long must hold keys/values of the same sizes, got "
            f"{tuple(short.keys.shape[1:])}/{tuple(short.values.shape[1:])} and "
            f"{tuple(long.keys.shape[1:])}/{tuple(long.values.shape[1:])}"
        )
    selected = (short.stamp >= 0) & (short.strength >= params.threshold)
    slots = torch.nonzero(selected).squeeze(1)
    moved = slots[torch.argsort(short.stamp[slots])]
    if moved.numel():
        long = write(
            long,
            short.keys[moved],
            short.values[moved].to(long.values.dtype),
            params.long,
            strength=short.strength[moved].to(long.strength.dtype),
        )
        short = short._replace(strength=short.strength.index_fill(0, moved, 0.0))
    return Consolidated(
        decay(short, params.short, steps=steps), decay(long, params.long, steps=steps), moved
    )
