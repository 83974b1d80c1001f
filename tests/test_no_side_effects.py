"""Importing or installing a neuro-* package changes nothing outside it.

* library code never calls ``matplotlib.use`` nor imports ``pyplot`` (plots are bare
  ``matplotlib.figure.Figure`` objects, so a notebook's inline backend survives);
* no package registers a global pytest plugin (``pytest11`` entry point): the neuro-core plugin is
  opt-in (see :mod:`neuro_core.testing.plugin`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())

# A call of ``matplotlib.use``, and any import of pyplot or of ``use``.
FORBIDDEN = re.compile(
    r"\bmatplotlib\s*\.\s*use\s*\(|^\s*(from|import)\s+matplotlib\b.*\b(pyplot|use)\b"
)


def forbidden_lines(src: Path) -> list[str]:
    """``path:line: text`` of every line under ``src`` that switches or touches pyplot state."""
    hits = []
    for path in sorted(src.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code):
                hits.append(f"{path.relative_to(src.parent)}:{i}: {line.strip()}")
    return hits


def pytest11_entry_points(pyproject: Path) -> dict[str, str]:
    """The ``[project.entry-points.pytest11]`` table of one ``pyproject.toml`` (empty if none)."""
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    return dict(project.get("entry-points", {}).get("pytest11", {}))


def test_all_seven_packages_are_checked() -> None:
    assert len(PACKAGES) >= 7


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_library_code_never_switches_the_matplotlib_backend(package: Path) -> None:
    hits = forbidden_lines(package / "src")
    assert not hits, "library code must plot on matplotlib.figure.Figure:\n" + "\n".join(hits)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_package_registers_a_global_pytest_plugin(package: Path) -> None:
    assert pytest11_entry_points(package / "pyproject.toml") == {}


def test_the_checks_catch_each_violation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text(
        textwrap.dedent(
            """\
            import matplotlib
            matplotlib.use("Agg")  # switches the user's backend
            import matplotlib.pyplot as plt
            from matplotlib import pyplot
            from matplotlib import use
            # matplotlib.use("Agg") in a comment is fine
            from matplotlib.figure import Figure
            """
        )
    )
    assert [h.split(":")[1] for h in forbidden_lines(src)] == ["2", "3", "4", "5"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n[project.entry-points.pytest11]\nx = "x.plugin"\n')
    assert pytest11_entry_points(pyproject) == {"x": "x.plugin"}


def test_plotting_keeps_the_callers_backend(tmp_path: Path) -> None:
    """Every library plot function, called after the user picked a backend, leaves it in place and
    never imports pyplot (a fresh interpreter, so other tests' imports do not interfere)."""
    pytest.importorskip("matplotlib")
    script = textwrap.dedent(
        f"""\
        import json, sys
        from pathlib import Path
        import matplotlib
        matplotlib.use("pdf")  # the user's choice
        import torch
        from neuro_spiking import ActivityMonitor
        from neuro_models.train import plot_loss_curve

        out = Path({str(tmp_path)!r})
        mon = ActivityMonitor(dt_ms=1.0)
        mon.record("a", (torch.rand(50, 1, 8) < 0.2).float())
        mon.plot_raster(out / "r.png")
        mon.plot_rates(out / "q.png", bin_ms=10.0)
        run = out / "run"
        run.mkdir()
        (run / "metrics.jsonl").write_text(json.dumps({{"tokens": 1, "loss": 2.0}}) + "\\n")
        plot_loss_curve(run, out / "l.png")
        print(json.dumps({{"backend": matplotlib.get_backend(),
                          "pyplot": "matplotlib.pyplot" in sys.modules}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {"backend": "pdf", "pyplot": False}
    for name in ("r.png", "q.png", "l.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
