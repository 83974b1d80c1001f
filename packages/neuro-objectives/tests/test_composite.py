import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    CompositeLoss,
    Phase,
    PhaseSchedule,
    neurollama_config_schedule,
    neurollama_phase_schedule,
    schedule_preset,
)

# The published weights, written out independently of the presets (reference-systems §1.9).
PUBLISHED = {
    1: {"lm": 1.0, "surprise": 0.01, "specialization": 0.001},
    2: {"lm": 1.0, "surprise": 0.1, "specialization": 0.01, "calibration": 0.01},
    3: {
        "lm": 1.0,
        "surprise": 0.1,
        "specialization": 0.1,
        "calibration": 0.1,
        "efficiency": 0.05,
        "coherence": 0.05,
    },
}
CONFIG = {
    "lm": 1.0,
    "surprise": 0.1,
    "specialization": 0.01,
    "calibration": 0.01,
    "efficiency": 0.05,
    "coherence": 0.05,
    "contrastive": 0.05,
}
TERMS = ("lm", "surprise", "specialization", "calibration", "efficiency", "coherence")


@settings(max_examples=50, deadline=None)
@given(step=st.integers(0, 400), values=st.lists(st.floats(-5, 5), min_size=6, max_size=6))
def test_phase_preset_matches_the_published_table(step: int, values: list[float]) -> None:
    sched = neurollama_phase_schedule(100, 250)
    phase = 1 if step < 100 else 2 if step < 250 else 3
    terms = {k: torch.tensor(v, dtype=torch.float64) for k, v in zip(TERMS, values)}
    total, report = CompositeLoss(sched)(terms, step)
    want = sum(PUBLISHED[phase].get(k, 0.0) * v for k, v in zip(TERMS, values))
    assert float(total) == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert float(report["objective/phase"]) == phase - 1
    for k, v in zip(TERMS, values):
        assert float(report[f"objective/{k}"]) == pytest.approx(v)
        assert float(report[f"weight/{k}"]) == pytest.approx(PUBLISHED[phase].get(k, 0.0))


def test_config_preset_and_named_presets() -> None:
    assert neurollama_config_schedule().weights_at(10**6) == CONFIG
    assert schedule_preset("neurollama_config") == neurollama_config_schedule()
    assert schedule_preset(
        "neurollama_phases", phase2_start=5, phase3_start=9
    ) == neurollama_phase_schedule(5, 9)


def test_gradient_flows_with_the_weights_and_report_is_detached() -> None:
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    c = torch.tensor(4.0, requires_grad=True)
    terms = {"lm": a, "surprise": b, "specialization": c}
    total, report = CompositeLoss(neurollama_phase_schedule(10, 20))(terms, 0)
    total.backward()
    assert float(a.grad) == pytest.approx(1.0)
    assert float(b.grad) == pytest.approx(0.01)
    assert float(c.grad) == pytest.approx(0.001)
    assert not any(v.requires_grad for v in report.values())
    assert all(isinstance(float(v), float) for v in report.values())  # loggable by a trainer


def test_zero_weight_terms_are_reported_not_added() -> None:
    calib = torch.tensor(5.0, requires_grad=True)
    total, report = CompositeLoss(neurollama_phase_schedule(10, 20))(
        {"lm": torch.tensor(1.0), "surprise": torch.tensor(0.0),
         "specialization": torch.tensor(0.0), "calibration": calib},
        3,
    )  # fmt: skip
    assert float(total) == pytest.approx(1.0)
    assert float(report["objective/calibration"]) == 5.0
    assert float(report["weight/calibration"]) == 0.0


def test_bad_input_names_the_problem() -> None:
    loss = CompositeLoss(neurollama_phase_schedule(10, 20))
    with pytest.raises(ValueError, match="does not know"):
        loss({"lm": torch.tensor(1.0), "suprise": torch.tensor(1.0)}, 0)
    with pytest.raises(ValueError, match="specialization"):
        loss({"lm": torch.tensor(1.0), "surprise": torch.tensor(1.0)}, 0)
    with pytest.raises(ValueError, match="terms\\['lm'\\]"):
        loss(
            {
                "lm": torch.ones(2),
                "surprise": torch.tensor(1.0),
                "specialization": torch.tensor(0.0),
            },
            0,
        )
    with pytest.raises(ValueError, match="step"):
        loss({"lm": torch.tensor(1.0)}, -1)
    with pytest.raises(ValueError, match="phases"):
        PhaseSchedule((Phase(start_step=5, weights={"lm": 1.0}),))
    with pytest.raises(ValueError, match="weights"):
        Phase(start_step=0, weights={"lm": -1.0})
    with pytest.raises(ValueError, match="phase2_start"):
        neurollama_phase_schedule(20, 10)
    with pytest.raises(ValueError, match="phase2_start"):
        schedule_preset("neurollama_phases")


def test_composite_gradcheck() -> None:
    loss = CompositeLoss(neurollama_config_schedule())
    names = (
        "lm",
        "surprise",
        "specialization",
        "calibration",
        "efficiency",
        "coherence",
        "contrastive",
    )
    xs = tuple(torch.randn((), dtype=torch.float64, requires_grad=True) for _ in names)

    def f(*values: torch.Tensor) -> torch.Tensor:
        return loss(dict(zip(names, values)), step=7)[0]

    assert torch.autograd.gradcheck(f, xs)
