"""What a reproduction declares: its arms, its scales, its comparisons.

A reproduction folder holds an ``experiment.py`` whose ``experiment(scale: str) -> Experiment``
returns one of these; :mod:`neuro_models.experiment.runner` does the rest (data, floors, tuning,
training, curves, statistics, verdicts, report). Everything here is a frozen dataclass of plain
values, so it hashes into the run cache and travels to worker processes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from neuro_models.params import count_parameters

__all__ = ["Arm", "Comparison", "Experiment", "Scale", "smoke_scale"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise ValueError(f"an arm's config must be a dataclass or have to_dict(), got {type(config)}")


@dataclass(frozen=True, kw_only=True)
class Arm:
    """One model of a comparison.

    Attributes:
        name: short label (``"A"``, ``"B"``); unique within the experiment.
        description: one line for the report.
        config: the model config (``LlamaConfig``, ``NCNConfig``, …); hashed into the run cache.
        build: ``config -> nn.Module``, called after seeding.
        loss: ``(model, inputs, targets) -> (loss, metrics)`` for training; ``None`` is plain
            next-token cross-entropy. Evaluation always uses plain held-out NLL.
        keep_weights: save seed 0's final weights as a bundle (False for models that are no
            bundle kind, e.g. a spiking network whose weights are buffers; the report says so).
    """

    name: str
    description: str
    config: Any
    build: Callable[[Any], nn.Module]
    loss: LossFn | None = None
    keep_weights: bool = True

    def config_dict(self) -> dict[str, Any]:
        return {"type": type(self.config).__name__, **_config_dict(self.config)}

    def n_params(self) -> int:
        """Parameter count (tied weights once), from a model built on the meta device."""
        with torch.device("meta"):
            return count_parameters(self.build(self.config)).total


@dataclass(frozen=True, kw_only=True)
class Scale:
    """Budgets and protocol of one scale; identical for every arm.

    Attributes:
        name: ``"smoke"``, ``"cpu"`` or ``"gpu"``.
        steps, batch_size, seq_len: each main run trains ``steps · batch_size · seq_len`` tokens.
        seeds: seeds of the main runs (data order + init); ≥ 3 for a verdict.
        lr_grid: initial peak learning rates of the sweep (ascending, geometric).
        sweep_fraction: each sweep run trains this fraction of the main budget (≥ 1/4), with the
            schedule compressed to its length, on seed ``seeds[0]``; scored on the dev tokens.
        max_grid_extensions: how often the grid may grow past an edge minimum.
        warmup_fraction, min_lr_ratio: linear warmup, then cosine to ``min_lr_ratio · lr``.
        weight_decay, grad_clip: AdamW decay and gradient-norm clip.
        dev_tokens: tokens cut from the end of the train stream for every choice (LR, smoothing).
        eval_tokens: evaluated tokens of the validation split (``None``: all of it).
        curve_points: held-out evaluations along each main run, log-spaced in tokens (≥ 5).
        curve_tokens: tokens of each curve evaluation (a prefix of the evaluated tokens).
        informative_margin: the reference arm must beat the bigram floor by this many nats for a
            verdict to be written.
        max_passes: the runner refuses a budget of more passes over the train tokens than this
            (a small corpus would be memorized, and the comparison would measure that).
        precision: ``"fp32"`` or ``"auto"`` (bf16 autocast where the hardware has it).
        note: one sentence the report prints about this scale (e.g. what it cannot show).
    """

    name: str
    steps: int
    batch_size: int
    seq_len: int
    seeds: tuple[int, ...]
    lr_grid: tuple[float, ...]
    sweep_fraction: float = 0.25
    max_grid_extensions: int = 3
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dev_tokens: int = 32_768
    eval_tokens: int | None = 65_536
    curve_points: int = 6
    curve_tokens: int | None = 16_384
    informative_margin: float = 0.3
    max_passes: float = 4.0
    precision: Literal["fp32", "auto"] = "fp32"
    note: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.seq_len < 1:
            raise ValueError("steps, batch_size and seq_len must be >= 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        g = self.lr_grid
        if len(g) < 3 or g[0] <= 0 or any(b <= a for a, b in itertools.pairwise(g)):
            raise ValueError(f"lr_grid must hold >= 3 positive, strictly ascending rates, got {g}")
        if not 0.25 <= self.sweep_fraction <= 1.0:
            raise ValueError(f"sweep_fraction must be in [0.25, 1], got {self.sweep_fraction}")
        if self.curve_points < 5:
            raise ValueError(f"curve_points must be >= 5, got {self.curve_points}")
        if self.steps < self.curve_points:
            raise ValueError(f"steps ({self.steps}) must be >= curve_points ({self.curve_points})")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def tokens_per_run(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def sweep_steps(self) -> int:
        return max(1, math.ceil(self.steps * self.sweep_fraction))

    def curve_steps(self, steps: int | None = None) -> list[int]:
        """``curve_points`` distinct optimizer steps, log-spaced from ``total/32`` to ``total``
        (rounding collisions at short runs are filled with the nearest free steps)."""
        total = steps or self.steps
        n = min(self.curve_points, total)
        first = max(1, total // 32)
        pts: set[int] = set()
        for i in range(n):
            want = round(first * (total / first) ** (i / (n - 1))) if n > 1 else total
            step = min(max(1, want), total)
            while step in pts and step < total:
                step += 1
            while step in pts:
                step -= 1
            pts.add(step)
        return sorted(pts | {total})

    def grid_ratio(self) -> float:
        g = self.lr_grid
        return (g[-1] / g[0]) ** (1 / (len(g) - 1))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def smoke_scale(**overrides: Any) -> Scale:
    """The CI code-path check every reproduction shares: 12 steps of 8 × 64 tokens, 3 seeds, a
    3-point grid that may grow once. Its numbers mean nothing and it is never informative."""
    fields: dict[str, Any] = dict(
        name="smoke", steps=12, batch_size=8, seq_len=64, seeds=(0, 1, 2),
        lr_grid=(1e-3, 3e-3, 9e-3), max_grid_extensions=1, dev_tokens=4096, eval_tokens=4096,
        curve_points=5, curve_tokens=1024, note="a code-path check: no verdict can come from it.",
    )  # fmt: skip
    fields.update(overrides)
    return Scale(**fields)


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A headline comparison of held-out NLL, ``arm − reference`` paired by seed.

    Attributes:
        claim: the claim id/title in CLAIM.md this comparison judges.
        arm, reference: arm names.
        claimed: the claimed improvement (nats, > 0).
        smallest_of_interest: the smallest improvement that would matter (nats, > 0).
        what: one line on what the difference isolates.
        headline: whether the MDE requirement (≤ half the claimed effect) applies.
    """

    claim: str
    arm: str
    reference: str
    claimed: float
    smallest_of_interest: float
    what: str = ""
    headline: bool = True


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A reproduction at one scale.

    Attributes:
        name: folder name (``ncn-tinystories``).
        title: report title.
        corpus: corpus name of :data:`neuro_models.data.CORPORA`.
        substitute: corpus used when ``corpus`` is not in the data directory (``None``: the
            reproduction is skipped there, with the command to get the data).
        tokenizer, vocab_size: as :func:`neuro_models.data.prepare_data`.
        arms: every arm; parameter counts are asserted within ``tolerance`` of ``reference``'s.
        reference: the baseline arm (its floor gap decides whether the scale is informative).
        comparisons: the paired comparisons judged by :func:`~neuro_models.experiment.stats.verdict`.
        scale: budgets of this scale.
        tolerance: parameter-count tolerance (0.02).
        analyze: optional ``(arm, model, context) -> dict`` run after each main run (e.g. leak
            probes); its output lands in the run's result under ``"analysis"``.
        report: optional ``(summary, main runs) -> (markdown, verdicts)``: a section appended to
            the generated report and its verdicts ``{"claim", "outcome", "reason"}`` (claims that
            are not NLL comparisons, computed from the results, never hard-coded); the text
            ``{results}`` in the markdown becomes the results folder relative to the report.
        plots: optional ``(summary, main runs, results folder) -> None`` writing figures (PNG)
            into the results folder, referenced from the report section as ``{results}/NAME``.
        extra: free JSON-able description hashed into the cache (e.g. regularizer weights).
    """

    name: str
    title: str
    corpus: str
    substitute: str | None
    tokenizer: Literal["bpe", "byte", "char"]
    vocab_size: int
    arms: Sequence[Arm]
    reference: str
    comparisons: Sequence[Comparison]
    scale: Scale
    tolerance: float = 0.02
    analyze: Callable[[Arm, nn.Module, Mapping[str, Any]], dict[str, Any]] | None = None
    report: Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]],
                     tuple[str, list[dict[str, str]]]] | None = None  # fmt: skip
    plots: Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]], Path], None] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not an arm of {names}")
        for c in self.comparisons:
            if c.arm not in names or c.reference not in names:
                raise ValueError(f"comparison {c.claim!r} names an unknown arm: {c}")
            if c.claimed <= 0 or c.smallest_of_interest <= 0:
                raise ValueError(f"comparison {c.claim!r}: effects must be > 0")

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ValueError(f"no arm {name!r}; arms are {[a.name for a in self.arms]}")

    def parameter_counts(self) -> dict[str, int]:
        return {a.name: a.n_params() for a in self.arms}

    def check_matched(self) -> dict[str, int]:
        """Every arm's parameter count; ``AssertionError`` if one is off by > ``tolerance``."""
        counts = self.parameter_counts()
        target = counts[self.reference]
        for name, n in counts.items():
            rel = abs(n - target) / target
            if rel > self.tolerance:
                raise AssertionError(
                    f"arm {name} has {n:,} parameters, {rel:.2%} from the reference arm "
                    f"{self.reference}'s {target:,} (limit {self.tolerance:.0%})"
                )
        return counts
