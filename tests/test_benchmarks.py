"""The asv suites and the nox plumbing around them (nothing here times anything).

* every line of ``benchmarks/quick-selection.txt`` is a regex that still selects at least one
  parameter combination of the suites (a renamed parameter would silently drop it from the run);
* ``noxfile.asv_selection`` turns ``--selection=FILE`` into one ``--bench`` per line;
* ``bench_reproductions`` finds every ``reproductions/*/experiment.py``;
* every ``bench_objectives`` term at the small shape builds, runs forward + backward, and gives a
  finite scalar.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "benchmarks" / "benchmarks"
SELECTION = ROOT / "benchmarks" / "quick-selection.txt"


@pytest.fixture(scope="module")
def suites():
    sys.path.insert(0, str(SUITES))
    try:
        names = sorted(p.stem for p in SUITES.glob("bench_*.py"))
        yield {n: importlib.import_module(n) for n in names}
    finally:
        sys.path.remove(str(SUITES))


def _combos(suites):
    """asv's names: ``module.Class.method(repr(p0), repr(p1), ...)`` for every combination."""
    out = []
    for mod_name, mod in suites.items():
        for cls_name, cls in vars(mod).items():
            if (
                not isinstance(cls, type)
                or cls.__module__ != mod.__name__
                or cls_name.startswith("_")  # asv skips private names (shared base classes)
            ):
                continue
            # dir, not vars: asv also runs benchmarks a class inherits
            methods = [m for m in dir(cls) if m.split("_")[0] in ("time", "peakmem", "track")]
            params = getattr(cls, "params", None)
            if params is None:
                grid = [()]
            elif params and isinstance(params[0], list | tuple):
                grid = list(itertools.product(*params))
            else:
                grid = [(p,) for p in params]
            for m in methods:
                base = f"{mod_name}.{cls_name}.{m}"
                out += [f"{base}({', '.join(map(repr, g))})" if g else base for g in grid]
    return out


def _selection_lines():
    return [
        line
        for line in SELECTION.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_every_suite_of_every_package_exists():
    packages = ["core", "attention", "plasticity", "memory", "spiking", "objectives", "models"]
    assert {f"bench_{p}.py" for p in packages} <= {p.name for p in SUITES.glob("bench_*.py")}


def test_each_selection_line_selects_something(suites):
    combos = _combos(suites)
    assert len(combos) > 100
    lines = _selection_lines()
    assert lines
    for line in lines:
        hits = [c for c in combos if re.search(line, c)]
        assert hits, f"{line!r} in {SELECTION.name} selects no benchmark"
    for mod in suites:  # every suite is in the quick run
        assert any(re.search(line, c) for line in lines for c in combos if c.startswith(mod))


def test_selection_excludes_compile_backends(suites):
    lines = _selection_lines()
    picked = [c for c in _combos(suites) if any(re.search(line, c) for line in lines)]
    assert picked
    assert not [c for c in picked if "compile" in c]


def _asv_selection():
    """``asv_selection`` from noxfile.py, without importing nox (not installed where tests run)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "asv_selection")
    ns: dict = {"Path": Path, "ROOT": ROOT}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "noxfile.py", "exec"), ns)
    return ns["asv_selection"]


def test_asv_selection_expands_file(tmp_path):
    f = tmp_path / "sel.txt"
    f.write_text("# a comment\n^a\\.b\n\n  \n^c\\(1, 2\\)$\n")
    got = _asv_selection()(["--quick", f"--selection={f}", "--durations", "all"])
    assert got == ["--quick", "--bench", "^a\\.b", "--bench", "^c\\(1, 2\\)$", "--durations", "all"]


def test_asv_selection_relative_to_repository():
    got = _asv_selection()(["--selection=benchmarks/quick-selection.txt"])
    assert got[0::2] == ["--bench"] * len(_selection_lines())
    assert got[1::2] == _selection_lines()


def test_reproduction_tracks_find_every_experiment(suites):
    want = sorted(p.parent.name for p in (ROOT / "reproductions").glob("*/experiment.py"))
    assert suites["bench_reproductions"].Smoke.params == want


@pytest.mark.parametrize("cls_name", ["LogitTerms", "HiddenTerms"])
def test_objective_terms_run(suites, cls_name):
    cls = getattr(suites["bench_objectives"], cls_name)
    small = cls.params[1][0]
    for term in cls.params[0]:
        bench = cls()
        bench.setup(term, small, "fp32")
        value = bench.fn()
        assert value.ndim == 0, term
        assert math.isfinite(float(value.detach())), term
