"""The pytest plugin is opt-in: installing neuro-core registers nothing; asking for it works.

Each case runs pytest in a fresh interpreter on a throw-away project whose one test reports the
value of ``TRITON_INTERPRET`` it sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
import torch

PROBE = """\
import os


def test_probe():
    print("TRITON_INTERPRET=" + repr(os.environ.get("TRITON_INTERPRET")))
"""

# What an opted-in run sees: the interpreter only where there is no CUDA.
OPTED_IN = "None" if torch.cuda.is_available() else "'1'"


def _seen(project: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args, "."],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if "TRITON_INTERPRET=" in x)
    return line.split("TRITON_INTERPRET=", 1)[1].split()[0].rstrip(".")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_probe.py").write_text(PROBE)
    # An ini file of its own, so the throw-away project never picks up this repo's configuration.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def test_installed_neuro_core_declares_no_pytest11_entry_point() -> None:
    groups = {ep.group for ep in distribution("neuro-core").entry_points}
    assert "pytest11" not in groups


def test_without_opt_in_nothing_is_set(project: Path) -> None:
    assert _seen(project) == "None"


def test_opt_in_on_the_command_line(project: Path) -> None:
    assert _seen(project, "-p", "neuro_core.testing.plugin") == OPTED_IN


def test_opt_in_from_the_rootdir_conftest(project: Path) -> None:
    (project / "conftest.py").write_text('pytest_plugins = ["neuro_core.testing.plugin"]\n')
    assert _seen(project) == OPTED_IN


def test_opt_in_by_importing_the_hook_below_the_rootdir(project: Path) -> None:
    sub = project / "sub"
    sub.mkdir()
    (project / "test_probe.py").rename(sub / "test_probe.py")
    (sub / "conftest.py").write_text(
        "from neuro_core.testing.plugin import pytest_configure as pytest_configure\n"
    )
    assert _seen(project) == OPTED_IN


def test_an_existing_value_is_kept(project: Path) -> None:
    (project / "conftest.py").write_text(
        "import os\n\n"
        "os.environ['TRITON_INTERPRET'] = '0'\n"
        "pytest_plugins = ['neuro_core.testing.plugin']\n"
    )
    assert _seen(project) == "'0'"
