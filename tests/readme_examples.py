"""Extract the ```python examples of the package READMEs and run them.

Standard library only: ``nox -s wheels`` runs this file in a virtualenv that holds one package
(installed from its wheel) and its declared dependencies, nothing else;
``tests/test_docs_examples.py`` runs the same examples under pytest.

An example that cannot run in CI is marked, on the line right above its opening fence, with

    <!-- example: skip -- the reason, e.g. needs a CUDA GPU -->

The reason is required (a marker without one is an error), and the skip is reported.

    python tests/readme_examples.py packages/neuro-core/README.md [--installed-under PREFIX]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\s*$")
MARKER = re.compile(r"^<!--\s*example:\s*skip\b(?P<rest>.*?)-->\s*$")


@dataclass(frozen=True)
class Example:
    """One ```python block: where it is, its code, and why it is skipped (None: it runs)."""

    readme: Path
    line: int
    code: str
    skip: str | None = None

    @property
    def name(self) -> str:
        return f"{self.readme.parent.name}:{self.line}"


def examples(readme: Path) -> list[Example]:
    """Every ```python block of ``readme``, in order, with its skip reason if it is marked."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    out: list[Example] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{readme}:{i + 1}: ```python block is never closed")
        skip = None
        marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        if marker is not None:
            skip = marker.group("rest").strip().removeprefix("--").strip()
            if not skip:
                raise ValueError(f"{readme}:{i}: a skip marker must give its reason")
        out.append(Example(readme, start + 1, "\n".join(lines[start:end]) + "\n", skip))
        i = end + 1
    return out


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run(example: Example, cwd: Path = ROOT) -> None:
    """Execute one example in a fresh namespace from ``cwd`` (the repository root by default, so
    that paths such as ``reproductions/...`` resolve as the README states them)."""
    code = compile(example.code, f"{example.readme}:{example.line}", "exec")
    with _cwd(cwd):
        exec(code, {"__name__": "__readme_example__"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the ```python examples of README files.")
    p.add_argument("readmes", nargs="+", type=Path)
    p.add_argument(
        "--installed-under",
        type=Path,
        help="fail unless the package the README names is imported from below this folder "
        "(checks that the examples used the installed wheel, not a source checkout)",
    )
    args = p.parse_args(argv)
    failed = 0
    for readme in args.readmes:
        readme = readme.resolve()
        if args.installed_under is not None:
            name = readme.parent.name.replace("-", "_")
            origin = Path(importlib.import_module(name).__file__ or "").resolve()
            if args.installed_under.resolve() not in origin.parents:
                print(f"FAIL {name} is imported from {origin}, not from {args.installed_under}")
                failed += 1
                continue
            print(f"ok   import {name} ({origin.parent})")
        found = examples(readme)
        if not found:
            print(f"FAIL {readme}: no ```python example")
            failed += 1
        for ex in found:
            if ex.skip is not None:
                print(f"skip {ex.name}: {ex.skip}")
                continue
            t0 = time.perf_counter()
            try:
                run(ex)
            except Exception as e:  # report every example, then fail
                traceback.print_exc()
                print(f"FAIL {ex.name}: {type(e).__name__}: {e}")
                failed += 1
                continue
            print(f"ok   {ex.name} ({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
