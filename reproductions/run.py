"""Entry point of ``nox -s reproduce``: list and run the reproductions in this folder.

Each reproduction is a folder ``reproductions/<system>-<claim>/`` with ``CLAIM.md``, ``run.py``
(``--scale {smoke,cpu,gpu}``, ``--seeds``) and, once run, ``REPORT.md`` and ``results/``.

    python reproductions/run.py --list
    python reproductions/run.py                       # every reproduction, cpu scale
    python reproductions/run.py ncn-tinystories --scale smoke
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The flagship runs first; the rest in name order.
PRIORITY = ["ncn-tinystories"]


def available() -> list[str]:
    names = sorted(p.name for p in HERE.iterdir() if (p / "run.py").is_file())
    return sorted(
        names, key=lambda n: (n not in PRIORITY, PRIORITY.index(n) if n in PRIORITY else 0, n)
    )


def first_line(path: Path) -> str:
    if not path.exists():
        return ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            return line.strip()[:100]
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="reproductions to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the reproductions and exit")
    parser.add_argument(
        "--scale",
        choices=["smoke", "cpu", "gpu"],
        default="cpu",
        help="passed to every run.py (default: cpu)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="passed to every run.py")
    args, rest = parser.parse_known_args(argv)
    rest = ["--scale", args.scale, *rest]
    if args.seeds:
        rest += ["--seeds", *map(str, args.seeds)]
    names = available()
    if args.list or not names:
        print("available reproductions:" if names else "no reproductions yet")
        for n in names:
            print(f"  {n:28s} {first_line(HERE / n / 'CLAIM.md')}")
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown reproduction(s) {unknown}; available: {names}")
    failed = []
    for n in args.names or names:
        print(f"=== {n} {' '.join(rest)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / n / "run.py"), *rest])
        if code:
            failed.append(n)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
