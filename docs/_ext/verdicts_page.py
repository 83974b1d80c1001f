"""Generate the Verdicts page from every reproduction's committed results.

Reads ``reproductions/*/results/*/results.json`` and ``reproductions/*/results.json`` (nothing
else: no run, no network) and writes ``docs/_generated/verdicts.rst``, which ``docs/verdicts.rst``
includes: one table per reproduction with, for every claim, the committed result set it was
judged on, our number, its 95 % CI, the verdict and its reason, and a link to the report. A
reproduction with no committed results yet gets one line saying so.

It runs on every Sphinx build (this file is also the Sphinx extension ``verdicts_page``, loaded
by ``docs/conf.py``), so the page cannot go stale; by hand:

    python docs/_ext/verdicts_page.py            # writes docs/_generated/verdicts.rst

Links: with ``NEURO_DOCS_SOURCE_URL`` set (e.g. ``https://github.com/ORG/neuro/blob/main/``)
reports and claims link there; otherwise their markdown is copied into the HTML output
(``docs/_generated/extra``, an ``html_extra_path``) and linked as plain files.

Two result formats are read: the experiment framework's summary (``comparisons`` and
``other_verdicts``, :mod:`neuro_models.experiment`), and a verdict table (``verdicts``: name →
outcome, with ``rows`` carrying the numbers, as ``neurollama-presets`` writes). Anything else is
listed as unreadable rather than dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("confirmed", "refuted", "inconclusive", "not testable")
NO_RESULTS = "no committed results"


@dataclass(frozen=True)
class Row:
    """One judged claim on one committed result set."""

    claim: str
    results: str
    number: str
    ci: str
    verdict: str
    reason: str
    report: str | None


@dataclass
class Reproduction:
    """A ``reproductions/<name>/`` folder and the rows read from its committed results."""

    name: str
    title: str
    source: str
    claim_md: str | None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def _source(text: str) -> str:
    """The first sentence of the ``Source:`` paragraph of a CLAIM.md ('' without one)."""
    paragraphs = re.split(r"\n\s*\n", text)
    for para in paragraphs:
        flat = " ".join(para.split())
        if flat.startswith("Source:"):
            body = flat[len("Source:") :].strip()
            end = re.search(r"\.(\s|$)", body)
            return body[: end.start() + 1] if end else body
    return ""


def _fmt(x: Any, digits: int = 3, sign: bool = False) -> str:
    if not isinstance(x, int | float):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _report_for(repro: Path, results_json: Path) -> str | None:
    """The report of one result set: its own REPORT.md, else the reproduction's."""
    for candidate in (results_json.parent / "REPORT.md", repro / "REPORT.md"):
        if candidate.is_file():
            return candidate.relative_to(repro.parent.parent).as_posix()
    return None


def _framework_rows(summary: Mapping[str, Any], label: str, report: str | None) -> list[Row]:
    rows = []
    for c in summary.get("comparisons", []):
        st = c.get("stats") or {}
        v = c.get("verdict") or {}
        number = "—"
        if st:
            number = (
                f"Δ NLL {c.get('arm')} − {c.get('reference')} = {_fmt(st.get('mean'), sign=True)} "
                f"nats (n = {st.get('n')}); claimed −{_fmt(c.get('claimed'))}"
            )
        ci = (
            f"[{_fmt(st.get('ci_low'), sign=True)}, {_fmt(st.get('ci_high'), sign=True)}]"
            if st
            else "—"
        )
        rows.append(
            Row(
                claim=str(c.get("claim", "?")),
                results=label,
                number=number,
                ci=ci,
                verdict=str(v.get("outcome", "—")),
                reason=str(v.get("reason", "")),
                report=report,
            )
        )
    for o in summary.get("other_verdicts", []):
        rows.append(
            Row(
                claim=str(o.get("claim", "?")),
                results=label,
                number=str(o.get("measured", "—")),
                ci="—",
                verdict=str(o.get("outcome", "—")),
                reason=str(o.get("reason", "")),
                report=report,
            )
        )
    if not rows:
        ref = summary.get("reference")
        arm = summary.get("arms", {}).get(ref, {})
        nll = arm.get("valid_nll") or {}
        number = (
            f"{ref}: held-out NLL {_fmt(nll.get('mean'))} ± {_fmt(nll.get('sd'))} nats "
            f"(n = {nll.get('n')})"
            if nll
            else "—"
        )
        rows.append(Row("(no claim tested)", label, number, "—", "no claim", "", report))
    return rows


def _label(summary: Mapping[str, Any], results_json: Path) -> str:
    data = summary.get("data") or {}
    label = f"{summary.get('scale', results_json.parent.name)}, {data.get('corpus', '?')}"
    if data.get("substitute"):
        label += " (substitute corpus)"
    date = (summary.get("environment") or {}).get("date_utc")
    return f"{label}; {date[:10]}" if isinstance(date, str) else label


def _table_rows(summary: Mapping[str, Any], report: str | None) -> list[Row]:
    rows = []
    data_rows = [r for r in summary.get("rows", []) if isinstance(r, Mapping)]
    for name, outcome in summary["verdicts"].items():
        match = next((r for r in data_rows if name in r.values()), None)
        fields = []
        for k, v in (match or {}).items():
            if v == name:
                continue
            shown = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
            fields.append(f"{k.replace('_', ' ')} {shown}")
        rows.append(
            Row(
                claim=str(name),
                results="deterministic",
                number="; ".join(fields) or "—",
                ci="— (exact)",
                verdict=str(outcome),
                reason="",
                report=report,
            )
        )
    return rows


def read_results(repro: Path, results_json: Path) -> tuple[list[Row], list[str]]:
    """Rows (and notes) of one committed ``results.json``; never raises on a bad file."""
    rel = results_json.relative_to(repro.parent.parent).as_posix()
    report = _report_for(repro, results_json)
    try:
        summary = json.loads(results_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [], [f"``{rel}`` could not be read ({_esc(f'{type(e).__name__}: {e}')})"]
    if not isinstance(summary, Mapping):
        return [], [f"``{rel}`` is not a JSON object"]
    if "comparisons" in summary or "other_verdicts" in summary:
        notes = []
        informative = summary.get("informative") or {}
        if informative and not informative.get("ok", True):
            reason = informative.get("reason", "")
            notes.append(_esc(f"{_label(summary, results_json)}: {reason}"))
        if summary.get("stale_runs"):
            notes.append(
                _esc(
                    f"{_label(summary, results_json)}: some runs were made by another code version"
                )
                + " (see the report)"
            )
        return _framework_rows(summary, _label(summary, results_json), report), notes
    if isinstance(summary.get("verdicts"), Mapping):
        return _table_rows(summary, report), []
    return [], [f"``{rel}`` is in a format this page does not read"]


def collect(root: Path = ROOT) -> list[Reproduction]:
    """Every ``reproductions/<name>/`` folder (one with a CLAIM.md or experiment.py), sorted."""
    out = []
    base = root / "reproductions"
    for repro in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        claim = repro / "CLAIM.md"
        if not (claim.is_file() or (repro / "experiment.py").is_file()):
            continue
        text = claim.read_text(encoding="utf-8") if claim.is_file() else ""
        r = Reproduction(
            name=repro.name,
            title=_first_heading(text) or repro.name,
            source=_source(text),
            claim_md=claim.relative_to(root).as_posix() if claim.is_file() else None,
        )
        files = sorted(repro.glob("results/*/results.json"))
        if (repro / "results.json").is_file():
            files.append(repro / "results.json")
        for f in files:
            rows, notes = read_results(repro, f)
            r.rows += rows
            r.notes += notes
        if not files:
            r.notes.append(NO_RESULTS)
        out.append(r)
    return out


_RST_SPECIAL = re.compile(r"([\\`*_|<>\[\]])")


def _esc(text: str) -> str:
    """Plain text for reST: markup characters escaped, newlines folded, and markdown code spans
    (`x`) turned into reST literals."""
    parts = re.split(r"`([^`]+)`", " ".join(str(text).split()))
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(_RST_SPECIAL.sub(r"\\\1", part))
            continue
        before = "\\ " if out and out[-1][-1:].isalnum() else ""
        after = "\\ " if i + 1 < len(parts) and parts[i + 1][:1].isalnum() else ""
        out.append(f"{before}``{part}``{after}")
    return "".join(out)


def _link(path: str | None, source_url: str | None, text: str) -> str:
    if path is None:
        return "—"
    target = f"{source_url.rstrip('/')}/{path}" if source_url else path
    return f"`{text} <{target}>`__"


def render(reproductions: list[Reproduction], source_url: str | None = None) -> str:
    """The reST of the page body (the title and introduction live in ``docs/verdicts.rst``)."""
    out = [
        ".. list-table:: Verdicts per reproduction",
        "   :header-rows: 1",
        "",
        "   * - reproduction",
        *[f"     - {o}" for o in OUTCOMES],
        "     - other",
    ]
    for r in reproductions:
        counts = Counter(row.verdict for row in r.rows)
        other = sum(n for v, n in counts.items() if v not in OUTCOMES)
        cells = [str(counts.get(o, 0)) for o in OUTCOMES]
        if not r.rows:
            cells = ["—"] * len(OUTCOMES)
        out += [f"   * - :ref:`{r.name} <verdicts-{r.name}>`", *[f"     - {c}" for c in cells]]
        out.append(f"     - {other}" if r.rows else f"     - {NO_RESULTS}")
    out.append("")
    for r in reproductions:
        out += [f".. _verdicts-{r.name}:", "", _esc(r.name), "-" * max(3, len(_esc(r.name))), ""]
        out += [f"**{_esc(r.title)}**", ""]
        if r.source:
            out += [f"Source: {_esc(r.source)}", ""]
        links = [_link(r.claim_md, source_url, "CLAIM.md")]
        out += ["Claims and rules: " + ", ".join(links), ""]
        for note in r.notes:
            # Notes are reST already (free text escaped where it was read, paths as literals).
            out += [f"*{note}*" if note == NO_RESULTS else f"Note: {note}", ""]
        if not r.rows:
            continue
        out += [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 22 14 26 12 18 8",
            "",
            "   * - claim",
            "     - committed results",
            "     - our number",
            "     - 95% CI",
            "     - verdict",
            "     - report",
        ]
        for row in r.rows:
            verdict = f"**{_esc(row.verdict)}**" + (f": {_esc(row.reason)}" if row.reason else "")
            out += [
                f"   * - {_esc(row.claim)}",
                f"     - {_esc(row.results)}",
                f"     - {_esc(row.number)}",
                f"     - {_esc(row.ci)}",
                f"     - {verdict}",
                f"     - {_link(row.report, source_url, 'report')}",
            ]
        out.append("")
    return "\n".join(out) + "\n"


def write(root: Path = ROOT, out_dir: Path | None = None, source_url: str | None = None) -> Path:
    """Write ``verdicts.rst`` (and, without ``source_url``, copies of the linked markdown under
    ``extra/``) into ``out_dir`` (default ``docs/_generated``); returns the page's path."""
    out_dir = out_dir if out_dir is not None else root / "docs" / "_generated"
    reproductions = collect(root)
    extra = out_dir / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    extra.mkdir(parents=True)
    if source_url is None:
        linked = {r.claim_md for r in reproductions} | {
            row.report for r in reproductions for row in r.rows
        }
        for rel in sorted(p for p in linked if p):
            (extra / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, extra / rel)
    page = out_dir / "verdicts.rst"
    text = render(reproductions, source_url)
    # Rewrite only on change, so Sphinx does not re-read an unchanged page.
    if not page.is_file() or page.read_text(encoding="utf-8") != text:
        page.write_text(text, encoding="utf-8")
    return page


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension: regenerate the page when the build starts (before ``html_extra_path``
    is checked, so the copied reports exist by then)."""
    write(Path(app.confdir).parent, Path(app.confdir) / "_generated", _source_url())
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _source_url() -> str | None:
    return os.environ.get("NEURO_DOCS_SOURCE_URL") or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the Verdicts page from committed results.")
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--out-dir", type=Path, default=None)
    args = p.parse_args(argv)
    print(write(args.root, args.out_dir, _source_url()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
