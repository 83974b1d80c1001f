"""Neuromodulation computed from spiking activity: HebLLM's novelty, surprise and reward.

One update per simulation step t, on the set S_t of neurons that spiked (HebLLM,
reference-systems.md §2.1, ``hebbianllm/core/neuromodulation.py`` at 03bbcba):

1. decay: ``n ← 0.95·n``, ``s ← 0.9·s``, ``r ← 0.8·r``;
2. novelty, when S_t is not empty:
   ``n = 1 − (1/K) Σ_k J(S_t, S_{(k)})`` over the last K ≤ 10 non-empty sets before it, with the
   Jaccard similarity ``J(A, B) = |A ∩ B| / |A ∪ B|`` (1 when both are empty); ``n = 0.5`` while
   fewer than 5 sets have been seen (this one included);
3. surprise, when a predicted output activity p is given: ``s = mean_i |a_i − p_i|`` with a the
   output neurons' spikes at t (0/1);
4. reward, when given: ``r = clip(reward, 0, 1)``;
5. ``m = clip(1.5 + 8·n + 3·s + 2·r, 0.1, 5)``: the third factor handed to the plasticity rules
   at step t (e.g. :func:`~neuro_plasticity.stdp.three_factor_stdp`, or ``modulate()``).

Published behaviours and our defaults:

* Published, ``update`` only ran at steps with spikes, so the decays applied per *spiking*
  step, and since novelty is recomputed at every such step its decay never acted
  (``decay_on="spiking_steps"``). Default here: the decays act at every step and a silent step
  keeps the novelty measure of the last set decaying (``decay_on="every_step"``), so m relaxes
  toward baseline during silence.
* Published, surprise was never computed (the network never passed a prediction) and the reward
  setter was never called. Here both come in per step (``inputs["predicted"]``,
  ``inputs["reward"]``; NaN means "not given at this step").
* Empty sets are never compared (published: they never reached the update).

:class:`ActivityModulator` implements ``neuro_spiking.network.NeuromodulatorHook``, so a
``Network(neuromodulator=ActivityModulator(...))`` recomputes m every step from its own spikes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from neuro_core.validation import check_in_range, check_positive, check_tensor

DecayOn = Literal["every_step", "spiking_steps"]


@dataclass(frozen=True, kw_only=True)
class ActivityModulatorParams:
    """Parameters of the activity-driven modulator; defaults are HebLLM's (03bbcba).

    Attributes:
        baseline: 1.5. novelty_gain: 8. surprise_gain: 3. reward_gain: 2.
        m_min, m_max: the clip of m, [0.1, 5].
        novelty_decay, surprise_decay, reward_decay: retention per update, 0.95 / 0.9 / 0.8.
        history: number of past non-empty spike sets compared, 10.
        warmup: novelty is ``warmup_novelty`` (0.5) while fewer than ``warmup`` (5) sets have
            been seen, this one included.
        initial_novelty: novelty before any update, 0.2 (published "start with some novelty").
        decay_on: ``"every_step"`` (default) or ``"spiking_steps"`` (published), see the module
            docstring.
    """

    baseline: float = 1.5
    novelty_gain: float = 8.0
    surprise_gain: float = 3.0
    reward_gain: float = 2.0
    m_min: float = 0.1
    m_max: float = 5.0
    novelty_decay: float = 0.95
    surprise_decay: float = 0.9
    reward_decay: float = 0.8
    history: int = 10
    warmup: int = 5
    warmup_novelty: float = 0.5
    initial_novelty: float = 0.2
    decay_on: DecayOn = "every_step"

    def __post_init__(self) -> None:
        for name in ("novelty_gain", "surprise_gain", "reward_gain", "m_min"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if not self.m_min < self.m_max:
            raise ValueError(f"m_min must be < m_max, got {self.m_min} and {self.m_max}")
        for name in ("novelty_decay", "surprise_decay", "reward_decay"):
            check_in_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("warmup_novelty", "initial_novelty"):
            check_in_range(name, getattr(self, name), 0.0, 1.0)
        if int(self.history) != self.history or self.history < 1:
            raise ValueError(f"history must be an integer ≥ 1, got {self.history!r}")
        if int(self.warmup) != self.warmup or self.warmup < 1:
            raise ValueError(f"warmup must be an integer ≥ 1, got {self.warmup!r}")
        if self.decay_on not in ("every_step", "spiking_steps"):
            raise ValueError(
                f"decay_on must be 'every_step' or 'spiking_steps', got {self.decay_on!r}"
            )


class ActivityModulatorState(NamedTuple):
    """``history``: the last ≤ ``params.history`` non-empty spike sets (sorted int64 arrays,
    oldest first, never modified); ``n_sets``: non-empty sets seen; the three signals; ``m``."""

    history: tuple[np.ndarray, ...]
    n_sets: int
    novelty: float
    surprise: float
    reward: float
    m: float


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two sets of distinct integers (1.0 when both are empty)."""
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return 1.0 if union == 0 else inter / union


def modulation(
    novelty: float, surprise: float, reward: float, params: ActivityModulatorParams
) -> float:
    """``m = clip(baseline + g_n·novelty + g_s·surprise + g_r·reward, m_min, m_max)``."""
    p = params
    raw = (
        p.baseline + p.novelty_gain * novelty + p.surprise_gain * surprise + p.reward_gain * reward
    )
    return min(max(raw, p.m_min), p.m_max)


def activity_modulator_init(params: ActivityModulatorParams) -> ActivityModulatorState:
    """No sets seen; novelty at ``initial_novelty``, surprise and reward 0."""
    n = params.initial_novelty
    return ActivityModulatorState((), 0, n, 0.0, 0.0, modulation(n, 0.0, 0.0, params))


def activity_modulator_step(
    spikes: np.ndarray,
    state: ActivityModulatorState,
    params: ActivityModulatorParams,
    *,
    output_activity: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
    reward: float | None = None,
) -> tuple[float, ActivityModulatorState]:
    """One update (module docstring) on the spike set ``spikes`` (distinct int neuron ids).

    Args:
        spikes: the neurons that spiked at this step.
        state: from :func:`activity_modulator_init` or the previous step.
        output_activity, predicted: ``[n_out]`` actual (0/1) and predicted output activity;
            surprise is updated when ``predicted`` is given (then both are required).
        reward: the reward at this step, or None.

    Returns:
        ``(m, new state)``; ``state`` is not modified.
    """
    p = params
    current = np.unique(np.asarray(spikes, dtype=np.int64))
    history, n_sets = state.history, state.n_sets
    novelty, surprise, rew = state.novelty, state.surprise, state.reward
    silent = current.size == 0
    if silent and p.decay_on == "spiking_steps":
        if reward is not None:
            rew = min(max(float(reward), 0.0), 1.0)
        return state.m, state._replace(reward=rew)
    novelty *= p.novelty_decay
    surprise *= p.surprise_decay
    rew *= p.reward_decay
    if not silent:
        n_sets += 1
        if n_sets < p.warmup or not history:
            novelty = p.warmup_novelty
        else:
            novelty = 1.0 - sum(jaccard(current, h) for h in history) / len(history)
        history = (*history, current)[-p.history :]
    if predicted is not None:
        if output_activity is None:
            raise ValueError("output_activity is required with predicted")
        if np.shape(predicted) != np.shape(output_activity):
            raise ValueError(
                f"predicted must have the shape of the output activity {np.shape(output_activity)}, "
                f"got {np.shape(predicted)}"
            )
        surprise = float(np.mean(np.abs(np.asarray(output_activity, float) - predicted)))
    if reward is not None:
        rew = min(max(float(reward), 0.0), 1.0)
    m = modulation(novelty, surprise, rew, p)
    return m, ActivityModulatorState(history, n_sets, novelty, surprise, rew, m)


class ActivityModulator:
    """The modulator as a network neuromodulator (``neuro_spiking``'s ``NeuromodulatorHook``).

    Args:
        params: :class:`ActivityModulatorParams` (HebLLM defaults).
        output: global indices of the output neurons, a ``slice`` (e.g. ``net.slice("out")``)
            or an int64 tensor; needed for surprise.
        neurons: global indices whose spikes form the sets compared for novelty (default all,
            as published).

    ``update(step, spikes, state, inputs)`` reads ``inputs["reward"]`` (a 0-d row, NaN: none)
    and ``inputs["predicted"]`` (``[n_out]``, NaN: none); other keys raise ``ValueError``.
    """

    def __init__(
        self,
        params: ActivityModulatorParams | None = None,
        *,
        output: slice | torch.Tensor | None = None,
        neurons: slice | torch.Tensor | None = None,
    ) -> None:
        self.params = params if params is not None else ActivityModulatorParams()
        self.output = None if output is None else _index(output, "output")
        self.neurons = None if neurons is None else _index(neurons, "neurons")

    def init(self, n_neurons: int) -> ActivityModulatorState:
        for name, idx in (("output", self.output), ("neurons", self.neurons)):
            if idx is not None and idx.size and (idx.min() < 0 or idx.max() >= n_neurons):
                raise ValueError(f"{name} indices must lie in [0, {n_neurons})")
        return activity_modulator_init(self.params)

    def update(
        self,
        step: int,
        spikes: torch.Tensor,
        state: ActivityModulatorState,
        inputs: Mapping[str, torch.Tensor],
    ) -> tuple[float, ActivityModulatorState]:
        unknown = set(inputs) - {"reward", "predicted"}
        if unknown:
            raise ValueError(f"inputs: unknown keys {sorted(unknown)} (known: reward, predicted)")
        fired = spikes.numpy()
        if self.neurons is not None:
            fired = fired[np.isin(fired, self.neurons)]
        reward = None
        if "reward" in inputs:
            r = float(inputs["reward"])
            reward = None if math.isnan(r) else r
        predicted, actual = None, None
        if "predicted" in inputs:
            if self.output is None:
                raise ValueError("inputs['predicted'] needs the output neurons (output=...)")
            row = check_tensor(
                "inputs['predicted']", inputs["predicted"], shape=(self.output.size,)
            )
            if not bool(row.isnan().any()):
                predicted = row.double().numpy()
                actual = np.isin(self.output, spikes.numpy()).astype(np.float64)
        return activity_modulator_step(
            fired, state, self.params, output_activity=actual, predicted=predicted, reward=reward
        )


def _index(idx: slice | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(idx, slice):
        if idx.start is None or idx.stop is None or idx.step not in (None, 1):
            raise ValueError(f"{name} must be a slice with start and stop (step 1)")
        return np.arange(idx.start, idx.stop, dtype=np.int64)
    check_tensor(name, idx, ndim=1, dtype=torch.int64)
    return idx.numpy().copy()


__all__ = [
    "ActivityModulator",
    "ActivityModulatorParams",
    "ActivityModulatorState",
    "DecayOn",
    "activity_modulator_init",
    "activity_modulator_step",
    "jaccard",
    "modulation",
]
