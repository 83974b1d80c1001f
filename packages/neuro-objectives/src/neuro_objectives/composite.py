"""Weighted multi-objective loss with a phase schedule (NeuroLlama ``NeuroCompositeLoss``).

The loss at a training step is ::

    L(step) = Σ_k w_k(step) · L_k

where the weights ``w_k`` are piecewise constant over training phases. Two presets
(reference-systems §1.9):

* :func:`neurollama_phase_schedule` — the published three phases (the step where each starts
  is not published, so it is an argument):

  ============== ====== ======== ============== =========== ========== =========
  phase          lm     surprise specialization calibration efficiency coherence
  ============== ====== ======== ============== =========== ========== =========
  1              1      0.01     0.001          0           0          0
  2              1      0.1      0.01           0.01        0          0
  3              1      0.1      0.1            0.1         0.05       0.05
  ============== ====== ======== ============== =========== ========== =========

* :func:`neurollama_config_schedule` — the constant weights of ``TrainingObjectiveConfig``
  (prediction error 0.1, specialization 0.01, calibration 0.01, efficiency 0.05, coherence 0.05,
  contrastive 0.05), which differ from the phases.

:class:`CompositeLoss` returns ``(total, report)``; the report holds every term and its current
weight as detached tensors, keyed ``objective/<term>`` and ``weight/<term>``, ready for a
trainer's metrics row (``neuro_models.train`` logs the extra metrics its ``loss_fn`` returns).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_positive, check_tensor

#: Term names understood by the presets (any other name may be used in a custom schedule).
NEUROLLAMA_TERMS = (
    "lm",
    "surprise",
    "specialization",
    "calibration",
    "efficiency",
    "coherence",
    "contrastive",
)


@dataclass(frozen=True, kw_only=True)
class Phase:
    """Weights that apply from ``start_step`` until the next phase starts."""

    start_step: int
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.start_step) < 0:
            raise ValueError(f"start_step must be ≥ 0, got {self.start_step}")
        for name, w in self.weights.items():
            check_positive(f"weights[{name!r}]", w, allow_zero=True)


@dataclass(frozen=True)
class PhaseSchedule:
    """Phases ordered by ``start_step``, the first starting at 0. A term missing from a phase has
    weight 0 there."""

    phases: tuple[Phase, ...]

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("phases must hold at least one Phase")
        starts = [p.start_step for p in self.phases]
        if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError(f"phases must start at step 0 and strictly increase, got {starts}")

    @property
    def terms(self) -> tuple[str, ...]:
        """Every term named in any phase, in first-seen order."""
        seen: dict[str, None] = {}
        for p in self.phases:
            for name in p.weights:
                seen.setdefault(name, None)
        return tuple(seen)

    def phase_at(self, step: int) -> int:
        """Index of the phase in force at ``step``."""
        if int(step) < 0:
            raise ValueError(f"step must be ≥ 0, got {step}")
        idx = 0
        for i, p in enumerate(self.phases):
            if int(step) >= p.start_step:
                idx = i
        return idx

    def weights_at(self, step: int) -> dict[str, float]:
        """``{term: w_k(step)}`` for every term of the schedule."""
        current = self.phases[self.phase_at(step)].weights
        return {name: float(current.get(name, 0.0)) for name in self.terms}


def neurollama_phase_schedule(phase2_start: int, phase3_start: int) -> PhaseSchedule:
    """The published three-phase schedule; phases 2 and 3 start at the given steps."""
    if not 0 < int(phase2_start) < int(phase3_start):
        raise ValueError(
            f"need 0 < phase2_start < phase3_start, got {phase2_start}, {phase3_start}"
        )
    return PhaseSchedule(
        (
            Phase(start_step=0, weights={"lm": 1.0, "surprise": 0.01, "specialization": 0.001}),
            Phase(
                start_step=int(phase2_start),
                weights={"lm": 1.0, "surprise": 0.1, "specialization": 0.01, "calibration": 0.01},
            ),
            Phase(
                start_step=int(phase3_start),
                weights={
                    "lm": 1.0,
                    "surprise": 0.1,
                    "specialization": 0.1,
                    "calibration": 0.1,
                    "efficiency": 0.05,
                    "coherence": 0.05,
                },
            ),
        )
    )


def neurollama_config_schedule() -> PhaseSchedule:
    """The constant weights of NeuroLlama's ``TrainingObjectiveConfig`` defaults."""
    return PhaseSchedule(
        (
            Phase(
                start_step=0,
                weights={
                    "lm": 1.0,
                    "surprise": 0.1,
                    "specialization": 0.01,
                    "calibration": 0.01,
                    "efficiency": 0.05,
                    "coherence": 0.05,
                    "contrastive": 0.05,
                },
            ),
        )
    )


def schedule_preset(
    name: Literal["neurollama_phases", "neurollama_config"],
    *,
    phase2_start: int | None = None,
    phase3_start: int | None = None,
) -> PhaseSchedule:
    """A preset by name; ``"neurollama_phases"`` needs ``phase2_start`` and ``phase3_start``."""
    if name == "neurollama_phases":
        if phase2_start is None or phase3_start is None:
            raise ValueError("phase2_start and phase3_start are required for 'neurollama_phases'")
        return neurollama_phase_schedule(phase2_start, phase3_start)
    if name == "neurollama_config":
        if phase2_start is not None or phase3_start is not None:
            raise ValueError("'neurollama_config' has one phase: phase2_start/phase3_start unused")
        return neurollama_config_schedule()
    raise ValueError(f"name must be 'neurollama_phases' or 'neurollama_config', got {name!r}")


class CompositeLoss(nn.Module):
    """``Σ_k w_k(step) L_k`` over named scalar terms, reporting each one.

    Args:
        schedule: the weights per phase.

    ``forward(terms, step)``: ``terms`` maps names to scalar tensors. Every term with a non-zero
    weight at ``step`` must be present; names the schedule does not know raise (a typo would
    otherwise drop a term silently). Terms given with weight 0 are reported, not added.
    Returns ``(total, report)`` with ``objective/<name>`` (unweighted term), ``weight/<name>``,
    ``objective/total`` and ``objective/phase``, all detached.
    """

    def __init__(self, schedule: PhaseSchedule) -> None:
        super().__init__()
        if not isinstance(schedule, PhaseSchedule):
            raise ValueError(f"schedule must be a PhaseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def forward(
        self, terms: Mapping[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weights = self.schedule.weights_at(step)
        unknown = sorted(set(terms) - set(weights))
        if unknown:
            raise ValueError(f"terms has names the schedule does not know: {unknown}")
        missing = sorted(k for k, w in weights.items() if w > 0 and k not in terms)
        if missing:
            raise ValueError(f"terms lacks {missing}, weighted > 0 at step {step}")
        if not terms:
            raise ValueError("terms must hold at least one term")
        parts = []
        report: dict[str, torch.Tensor] = {}
        for name, value in terms.items():
            check_tensor(f"terms[{name!r}]", value, ndim=0, floating=True)
            w = weights[name]
            if w > 0:
                parts.append(w * value)
            report[f"objective/{name}"] = value.detach()
            report[f"weight/{name}"] = torch.tensor(w)
        first = next(iter(terms.values()))
        total = torch.stack(parts).sum() if parts else first * 0.0
        report["objective/total"] = total.detach()
        report["objective/phase"] = torch.tensor(float(self.schedule.phase_at(step)))
        return total, report

    def extra_repr(self) -> str:
        return f"phases={len(self.schedule.phases)}, terms={self.schedule.terms}"
