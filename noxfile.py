"""Sessions for tests, tooling, benchmarks and reproductions.

Every session makes a fresh virtualenv with pip (not uv: uv does not see the CPU torch wheel that
lies on disk) and, on machines without CUDA, installs with ``constraints/cpu.txt`` so that torch
stays the pinned CPU build instead of a multi-GB CUDA download.

    nox -s tests                                  # every package in isolation + cross-package tests
    nox -s "tests(package='neuro-spiking')"       # one package, installed alone with its deps
    nox -s lint typecheck docs
    nox -s bench                                  # asv, against this checkout, results committed
    nox -s reproduce                              # the reproductions (-- --list, -- --scale smoke)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

COMPONENTS = [
    "neuro-attention",
    "neuro-plasticity",
    "neuro-memory",
    "neuro-spiking",
    "neuro-objectives",
]
PACKAGES = ["neuro-core", *COMPONENTS, "neuro-models"]
PYTHON = "3.11"


def constraints() -> list[str]:
    """``-c constraints/cpu.txt`` unless this machine has an NVIDIA driver."""
    if shutil.which("nvidia-smi") or os.environ.get("NEURO_NO_CPU_CONSTRAINTS") == "1":
        return []
    return ["-c", str(ROOT / "constraints" / "cpu.txt")]


def local(package: str, extras: str = "") -> str:
    path = ROOT / "packages" / package
    return f"{path}[{extras}]" if extras else str(path)


def requirements_of(package: str) -> list[str]:
    """The package plus the local neuro-* packages it depends on (so pip never looks on PyPI)."""
    if package == "neuro-core":
        return []
    if package == "neuro-models":
        return [local(p) for p in ["neuro-core", *COMPONENTS]]
    return [local("neuro-core")]


def install(session: nox.Session, *args: str) -> None:
    session.install(*constraints(), *args)


def pytest_args(session: nox.Session) -> list[str]:
    return ["-q", "-p", "no:cacheprovider", *session.posargs]


@nox.session(python=PYTHON)
@nox.parametrize("package", [*PACKAGES, "integration"])
def tests(session: nox.Session, package: str) -> None:
    """Install one package alone (with its declared deps + test extra) and run its tests.

    ``integration`` installs everything and runs the cross-package tests in ``tests/``.
    """
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    if package == "integration":
        install(session, *[local(p, "test") for p in PACKAGES])
        session.run("python", "-m", "pytest", str(ROOT / "tests"), *pytest_args(session), env=env)
        return
    install(session, *requirements_of(package), local(package, "test"))
    # Run from the package folder so the tests import the installed package, not a sibling's src.
    session.chdir(ROOT / "packages" / package)
    session.run("python", "-m", "pytest", "tests", "--rootdir", str(ROOT), "-c",
                str(ROOT / "pyproject.toml"), *pytest_args(session), env=env)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repo."""
    session.install("ruff")
    session.run("ruff", "check", str(ROOT))
    session.run("ruff", "format", "--check", str(ROOT))


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over every package's ``src/``."""
    install(session, "mypy", *[local(p) for p in PACKAGES])
    session.run("mypy", *[str(ROOT / "packages" / p / "src") for p in PACKAGES])


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Sphinx (autodoc + napoleon) with warnings as errors; HTML in docs/_build/html."""
    install(session, "sphinx>=7", *[local(p) for p in PACKAGES])
    out = ROOT / "docs" / "_build" / "html"
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", str(ROOT / "docs"), str(out))
    session.log(f"docs written to {out / 'index.html'}")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """asv against the current checkout in this session's environment.

    Results land under ``benchmarks/results/<machine>/`` (commit them); ``asv publish`` writes the
    HTML history to ``benchmarks/html``. Extra arguments go to ``asv run`` (e.g. ``-- --bench rms``).
    Set ``ASV_MACHINE`` to name the machine (default: ``cpu-2core-avx512bf16``).
    """
    install(session, "asv>=0.6", "virtualenv", *[local(p, "report") if p == "neuro-models"
                                                 else local(p) for p in PACKAGES])
    machine = os.environ.get("ASV_MACHINE", "cpu-2core-avx512bf16")
    session.chdir(ROOT / "benchmarks")
    commit = session.run("git", "rev-parse", "HEAD", silent=True, external=True).strip()
    session.run("asv", "machine", "--yes", "--machine", machine)
    session.run(
        "asv", "run", "--python=same", "--machine", machine, "--set-commit-hash", commit,
        "--show-stderr", *session.posargs,
    )
    session.run("asv", "publish")
    session.log(f"asv results in benchmarks/results/{machine}; HTML in benchmarks/html/index.html")


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """Run the reproductions (default: every available one at ``cpu`` scale).

    ``nox -s reproduce -- --list`` lists them; ``-- --scale smoke`` runs the one-minute check.
    """
    install(session, *[local(p, "report,data") if p == "neuro-models" else local(p)
                       for p in PACKAGES])
    session.run("python", str(ROOT / "reproductions" / "run.py"), *session.posargs)
