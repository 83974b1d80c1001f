"""Every reproduction's declaration: loads at every scale, arms matched within 2 % of the
reference, budgets that the runner accepts, and the dispatcher's --list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuro_models.experiment.runner import load_experiment

ROOT = Path(__file__).resolve().parents[1]
DECLS = sorted((ROOT / "reproductions").glob("*/experiment.py"))


def _scales(decl: Path) -> list[str]:
    return sorted(load_experiment(decl).SCALES)


@pytest.mark.parametrize(
    ("decl", "scale"),
    [(d, s) for d in DECLS for s in _scales(d)],
    ids=lambda x: x.parent.name if isinstance(x, Path) else x,
)
def test_declaration_is_matched_and_well_formed(decl: Path, scale: str) -> None:
    exp = load_experiment(decl).experiment(scale)
    counts = exp.check_matched()
    ref = counts[exp.reference]
    assert all(abs(n - ref) / ref <= 0.02 for n in counts.values())
    assert exp.scale.name == scale
    assert len(exp.scale.seeds) >= 3, "a verdict needs >= 3 seeds"
    assert exp.scale.sweep_fraction >= 0.25
    assert (ROOT / "reproductions" / decl.parent.name / "CLAIM.md").is_file()


def test_every_reproduction_is_declared_and_listed() -> None:
    assert {d.parent.name for d in DECLS} >= {"ncn-tinystories", "baseline-tinystories"}
    out = subprocess.run([sys.executable, str(ROOT / "reproductions" / "run.py"), "--list"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    for d in DECLS:
        assert d.parent.name in out


def test_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale must be one of"):
        load_experiment(DECLS[0]).experiment("huge")
