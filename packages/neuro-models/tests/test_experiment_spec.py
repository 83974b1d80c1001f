"""Declarations of the experiment framework: Scale and Experiment validation, curve budgets,
parameter matching of arms, and the report's informative / trend rules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_models.config import LlamaConfig
from neuro_models.experiment.report import curve_trend, informative
from neuro_models.experiment.spec import Arm, Comparison, Experiment, Scale
from neuro_models.llama import Llama
from neuro_models.params import match_parameters

SETTINGS = settings(max_examples=60, deadline=None)


def scale(**kw) -> Scale:
    base = dict(name="t", steps=100, batch_size=2, seq_len=8, seeds=(0, 1, 2),
                lr_grid=(1e-3, 2e-3, 4e-3))  # fmt: skip
    return Scale(**{**base, **kw})


# --------------------------------------------------------------------------- Scale


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"sweep_fraction": 0.2}, "sweep_fraction"),
        ({"sweep_fraction": 0.0}, "sweep_fraction"),
        ({"sweep_fraction": 1.5}, "sweep_fraction"),
        ({"lr_grid": (1e-3, 2e-3)}, "lr_grid"),
        ({"lr_grid": ()}, "lr_grid"),
        ({"lr_grid": (1e-3, 4e-3, 2e-3)}, "lr_grid"),
        ({"lr_grid": (4e-3, 2e-3, 1e-3)}, "lr_grid"),
        ({"lr_grid": (1e-3, 1e-3, 2e-3)}, "lr_grid"),
        ({"lr_grid": (0.0, 1e-3, 2e-3)}, "lr_grid"),
        ({"lr_grid": (-1e-3, 1e-3, 2e-3)}, "lr_grid"),
        ({"curve_points": 4}, "curve_points"),
        ({"curve_points": 0}, "curve_points"),
        ({"seeds": (0, 1, 0)}, "seeds"),
        ({"seeds": ()}, "seeds"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": -1}, "seq_len"),
    ],
)
def test_scale_rejects(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scale(**kw)


def test_scale_accepts_the_edges_and_derives_budgets() -> None:
    s = scale(steps=10, sweep_fraction=0.25, curve_points=5, seeds=(7,))
    assert s.tokens_per_step == 16
    assert s.tokens_per_run == 160
    assert s.sweep_steps == 3  # ⌈10 · 0.25⌉
    assert scale(sweep_fraction=1.0).sweep_steps == 100
    assert scale(lr_grid=(1e-3, 3e-3, 9e-3, 2.7e-2)).grid_ratio() == pytest.approx(3.0)


def _check_curve(got: list[int], steps: int, points: int) -> None:
    assert len(got) == points, got
    assert all(a < b for a, b in itertools.pairwise(got)), got
    assert got[-1] == steps
    # The first evaluation is at 1/32 of the budget (at least step 1).
    assert got[0] == max(1, steps // 32)


def test_curve_steps_short_runs_exhaustively() -> None:
    # Short runs are where rounding makes log-spaced steps collide.
    for points in range(5, 13):
        for steps in range(points, 300):
            _check_curve(scale(steps=steps, curve_points=points).curve_steps(), steps, points)


@SETTINGS
@given(data=st.data(), points=st.integers(5, 12))
def test_curve_steps_distinct_ascending_end_at_the_budget(data, points: int) -> None:
    steps = data.draw(st.integers(points, 200_000))
    _check_curve(scale(steps=steps, curve_points=points).curve_steps(), steps, points)


@SETTINGS
@given(steps=st.integers(6_400, 1_000_000), points=st.integers(5, 12))
def test_curve_steps_are_log_spaced(steps: int, points: int) -> None:
    # With the first point ≥ 200 steps, rounding moves a ratio by < 1%.
    got = scale(steps=steps, curve_points=points).curve_steps()
    ratios = [b / a for a, b in itertools.pairwise(got)]
    expected = (got[-1] / got[0]) ** (1 / (points - 1))
    assert all(r == pytest.approx(expected, rel=0.01) for r in ratios)
    assert got[-1] / got[0] == pytest.approx(32, rel=0.01)


def test_curve_steps_override_the_scale_budget() -> None:
    s = scale(steps=100)
    assert s.curve_steps(3200)[-1] == 3200
    assert s.curve_steps(3200)[0] == 100
    assert s.curve_steps() == s.curve_steps(100)
    # Fewer steps than points: every step is a curve point.
    assert s.curve_steps(3) == [1, 2, 3]


def test_scale_needs_at_least_curve_points_steps() -> None:
    with pytest.raises(ValueError, match="curve_points"):
        scale(steps=5, curve_points=6)
    assert scale(steps=6, curve_points=6).curve_steps() == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- Experiment


class _Vec(nn.Module):
    """A module with exactly ``n`` parameters."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n))


def arm(name: str, config, build=_Vec) -> Arm:
    return Arm(name=name, description=f"arm {name}", config=config, build=build)


def experiment(arms, reference="A", comparisons=(), **kw) -> Experiment:
    return Experiment(name="x", title="X", corpus="c", substitute=None, tokenizer="byte",
                      vocab_size=256, arms=arms, reference=reference, comparisons=comparisons,
                      scale=scale(), **kw)  # fmt: skip


def comparison(a: str = "B", r: str = "A", claimed: float = 0.1, soi: float = 0.05):
    return Comparison(claim="c1", arm=a, reference=r, claimed=claimed, smallest_of_interest=soi)


def test_experiment_validation() -> None:
    two = [arm("A", 10), arm("B", 10)]
    experiment(two, comparisons=[comparison()])
    with pytest.raises(ValueError, match="unique"):
        experiment([arm("A", 10), arm("A", 10)])
    with pytest.raises(ValueError, match="reference 'Z'"):
        experiment(two, reference="Z")
    with pytest.raises(ValueError, match="unknown arm"):
        experiment(two, comparisons=[comparison(a="C")])
    with pytest.raises(ValueError, match="unknown arm"):
        experiment(two, comparisons=[comparison(r="C")])
    for claimed, soi in ((0.0, 0.1), (0.1, 0.0), (-0.1, 0.1), (0.1, -0.2)):
        with pytest.raises(ValueError, match="effects must be > 0"):
            experiment(two, comparisons=[comparison(claimed=claimed, soi=soi)])
    exp = experiment(two)
    assert exp.arm("B").name == "B"
    with pytest.raises(ValueError, match="no arm 'C'"):
        exp.arm("C")


@pytest.mark.parametrize(("n", "ok"), [(1000, True), (1020, True), (980, True), (1021, False),
                                       (979, False), (2000, False)])  # fmt: skip
def test_check_matched_tolerance_boundary(n: int, ok: bool) -> None:
    exp = experiment([arm("A", 1000), arm("B", n)])
    if ok:
        assert exp.check_matched() == {"A": 1000, "B": n}
    else:
        with pytest.raises(AssertionError, match="arm B has"):
            exp.check_matched()


def _llama(**kw) -> LlamaConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=88,
                max_seq_len=16)  # fmt: skip
    return LlamaConfig(**{**base, **kw})


def _numel(config: LlamaConfig) -> int:
    # model.parameters() yields a tied tensor once.
    return sum(p.numel() for p in Llama(config).parameters())


def test_check_matched_llama_arms() -> None:
    ref = _llama()
    target = _numel(ref)
    wide = match_parameters(target, _llama(d_model=48, n_layers=1, n_heads=4, n_kv_heads=4))
    deep = match_parameters(target, _llama(n_layers=3))
    arms = [arm("A", ref, Llama), arm("wide", wide, Llama), arm("deep", deep, Llama)]
    counts = experiment(arms).check_matched()
    assert counts == {"A": target, "wide": _numel(wide), "deep": _numel(deep)}
    assert all(abs(n - target) / target <= 0.02 for n in counts.values())

    # Unmatched: the same deep arm without re-fitting its FFN is far more than 2% off.
    big = _llama(n_layers=3)
    assert abs(_numel(big) - target) / target > 0.02
    arms = [arm("A", ref, Llama), arm("wide", wide, Llama), arm("unmatched", big, Llama)]
    with pytest.raises(AssertionError, match="arm unmatched has"):
        experiment(arms).check_matched()


def test_check_matched_respects_the_declared_tolerance() -> None:
    exp = experiment([arm("A", 1000), arm("B", 1040)], tolerance=0.05)
    assert exp.check_matched()["B"] == 1040
    exp = experiment([arm("A", 1000), arm("B", 1040)], tolerance=0.03)
    with pytest.raises(AssertionError, match="arm B"):
        exp.check_matched()


# --------------------------------------------------------------------------- report rules


@pytest.mark.parametrize(
    ("ref", "bigram", "margin", "ok", "says"),
    [
        (3.0, 3.5, 0.3, True, "0.500 nats below the bigram floor"),
        (3.25, 3.5, 0.25, True, "0.250 nats below"),  # exactly at the margin
        (3.4, 3.5, 0.3, False, "only 0.100 nats below"),
        (3.5, 3.5, 0.3, False, "0.000 nats above"),
        (3.7, 3.5, 0.3, False, "0.200 nats above"),
    ],
)
def test_informative(ref: float, bigram: float, margin: float, ok: bool, says: str) -> None:
    got, why = informative(ref, bigram, margin)
    assert got is ok
    assert says in why
    assert ("not informative" in why) is (not ok)
    assert ("raise the budget" in why) is (not ok)


@pytest.mark.parametrize(
    ("diffs", "se", "trend"),
    [
        ([], 0.01, "stable"),
        ([0.5], 0.01, "stable"),
        ([-0.1, -0.1, -0.3], 0.05, "growing"),  # mid −0.1 (index 1), last −0.3
        ([0.3, 0.1, 0.3], 0.05, "growing"),
        ([-0.3, -0.3, -0.1], 0.05, "shrinking"),
        ([0.0, 0.3, 0.1], 0.05, "shrinking"),
        ([-0.2, -0.2, -0.22], 0.05, "stable"),
        ([0.1, -0.2, 0.2], 0.05, "changes sign"),
        ([0.9, 0.2, 0.0, -0.3, -0.2, 0.25], 0.05, "changes sign"),  # mid = index 3
        # Opposite signs but one side within the error: judged on magnitudes instead.
        ([0.0, -0.02, 0.3], 0.05, "growing"),
        ([0.0, -0.3, 0.02], 0.05, "shrinking"),
        ([0.0, -0.02, 0.03], 0.05, "stable"),
    ],
)
def test_curve_trend_branches(diffs: list[float], se: float, trend: str) -> None:
    assert curve_trend(diffs, se) == trend


@SETTINGS
@given(
    diffs=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=8),
    se=st.floats(0.001, 0.5),
    c=st.sampled_from([0.25, 0.5, 2.0, 4.0]),
)
def test_curve_trend_invariances(diffs: list[float], se: float, c: float) -> None:
    got = curve_trend(diffs, se)
    assert got in ("stable", "growing", "shrinking", "changes sign")
    # The sign of the difference and the unit (power-of-two scale) do not matter.
    assert curve_trend([-x for x in diffs], se) == got
    assert curve_trend([c * x for x in diffs], c * se) == got
    # Only the middle and the last points count.
    mid = len(diffs) // 2
    other = [x + 10.0 if i not in (mid, len(diffs) - 1) else x for i, x in enumerate(diffs)]
    assert curve_trend(other, se) == got
    # A huge standard error makes every trend stable.
    assert curve_trend(diffs, 10.0 * (1 + max(map(abs, diffs)))) == "stable"
    assert not math.isnan(se)
