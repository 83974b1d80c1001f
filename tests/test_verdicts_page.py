"""The Verdicts page generator (``docs/_ext/verdicts_page.py``) on a made-up repository and on
this one: every reproduction appears, a missing or unreadable result never breaks the build."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "verdicts_page", ROOT / "docs" / "_ext" / "verdicts_page.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


vp = _module()

FRAMEWORK = {
    "scale": "cpu",
    "data": {"corpus": "tinystories", "substitute": False},
    "environment": {"date_utc": "2026-01-02T03:04:05+00:00"},
    "reference": "A",
    "informative": {"ok": True, "reason": "fine"},
    "comparisons": [
        {
            "claim": "1: B beats A",
            "arm": "B",
            "reference": "A",
            "claimed": 0.2,
            "stats": {"n": 3, "mean": -0.25, "ci_low": -0.3, "ci_high": -0.2},
            "verdict": {"outcome": "confirmed", "reason": "CI excludes 0"},
        },
        {
            "claim": "2: needs the epoch",
            "arm": "B",
            "reference": "A",
            "claimed": 0.2,
            "stats": None,
            "verdict": {"outcome": "not testable", "reason": "too small"},
        },
    ],
    "other_verdicts": [
        {
            "claim": "3: a rule with *stars* and `code`",
            "outcome": "refuted",
            "measured": "x_1 = 0.5 | y",
            "reason": "rule: x > 1",
        }
    ],
}


def _repo(tmp_path: Path) -> Path:
    base = tmp_path / "reproductions"
    a = base / "alpha-claims"
    (a / "results" / "cpu").mkdir(parents=True)
    (a / "CLAIM.md").write_text(
        "# Alpha's claims\n\nSource: the alpha paper (`seeds/a.txt`), section 2. More text.\n"
    )
    (a / "REPORT.md").write_text("# report\n")
    (a / "results" / "cpu" / "results.json").write_text(json.dumps(FRAMEWORK))
    sub = {
        **FRAMEWORK,
        "data": {"corpus": "ptb", "substitute": True},
        "informative": {"ok": False, "reason": "the reference arm is only 0.1 nats below"},
        "comparisons": [],
        "other_verdicts": [],
        "arms": {"A": {"valid_nll": {"mean": 4.0, "sd": 0.02, "n": 3}}},
    }
    (a / "results" / "cpu-substitute-ptb").mkdir()
    (a / "results" / "cpu-substitute-ptb" / "results.json").write_text(json.dumps(sub))
    (a / "results" / "cpu-substitute-ptb" / "REPORT.md").write_text("# sub report\n")
    b = base / "beta-presets"
    b.mkdir()
    (b / "CLAIM.md").write_text("# Beta presets\n")
    (b / "results.json").write_text(
        json.dumps(
            {
                "rows": [{"preset": "8B", "count": 8030261248, "difference": 0}],
                "verdicts": {"8B": "confirmed"},
            }
        )
    )
    c = base / "gamma-pending"
    (c / "results").mkdir(parents=True)
    (c / "experiment.py").write_text("")
    d = base / "delta-broken"
    (d / "results" / "cpu").mkdir(parents=True)
    (d / "CLAIM.md").write_text("# Delta\n")
    (d / "results" / "cpu" / "results.json").write_text("{not json")
    e = base / "epsilon-unknown"
    e.mkdir()
    (e / "CLAIM.md").write_text("# Epsilon\n")
    (e / "results.json").write_text(json.dumps({"accuracy": 0.9}))
    (base / "__pycache__").mkdir()
    (base / "run.py").write_text("")
    return tmp_path


def test_collect_reads_every_kind_of_reproduction(tmp_path: Path) -> None:
    repros = {r.name: r for r in vp.collect(_repo(tmp_path))}
    assert sorted(repros) == [
        "alpha-claims",
        "beta-presets",
        "delta-broken",
        "epsilon-unknown",
        "gamma-pending",
    ]
    alpha = repros["alpha-claims"]
    assert alpha.title == "Alpha's claims"
    assert alpha.source == "the alpha paper (`seeds/a.txt`), section 2."
    first, untestable, rule, baseline = alpha.rows
    assert first.claim == "1: B beats A"
    assert first.number == "Δ NLL B − A = -0.250 nats (n = 3); claimed −0.200"
    assert first.ci == "[-0.300, -0.200]"
    assert (first.verdict, first.reason) == ("confirmed", "CI excludes 0")
    assert first.results == "cpu, tinystories; 2026-01-02"
    assert first.report == "reproductions/alpha-claims/REPORT.md"
    assert (untestable.number, untestable.ci, untestable.verdict) == ("—", "—", "not testable")
    assert (rule.number, rule.verdict) == ("x_1 = 0.5 | y", "refuted")
    # No claim on the substitute set: the reference arm's numbers, and its own report.
    assert baseline.claim == "(no claim tested)"
    assert baseline.number == "A: held-out NLL 4.000 ± 0.020 nats (n = 3)"
    assert baseline.results == "cpu, ptb (substitute corpus); 2026-01-02"
    assert baseline.report == "reproductions/alpha-claims/results/cpu-substitute-ptb/REPORT.md"
    assert any("only 0.1 nats below" in n for n in alpha.notes)
    (beta,) = repros["beta-presets"].rows
    assert (beta.claim, beta.verdict) == ("8B", "confirmed")
    assert beta.number == "count 8,030,261,248; difference 0"
    assert repros["gamma-pending"].rows == []
    assert repros["gamma-pending"].notes == [vp.NO_RESULTS]
    assert "could not be read" in repros["delta-broken"].notes[0]
    assert "does not read" in repros["epsilon-unknown"].notes[0]


def test_rendered_page_is_valid_restructuredtext(tmp_path: Path) -> None:
    docutils = pytest.importorskip("docutils")
    import docutils.core as docutils_core

    # docutils 0.22 takes the writer's name as ``writer``; older releases as ``writer_name``.
    writer = {"writer": "html"} if docutils.__version_info__ >= (0, 22) else {"writer_name": "html"}
    text = vp.render(vp.collect(_repo(tmp_path)))
    # Sphinx roles are not docutils': render them as plain references for this check.
    plain = text.replace(":ref:`", "`")
    for name in ("alpha-claims", "beta-presets", "gamma-pending"):
        plain = plain.replace(f"<verdicts-{name}>`", f"<verdicts-{name}_>`_")
    errors: list[str] = []
    html = docutils_core.publish_string(
        plain,
        **writer,
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": _Sink(errors)},
    ).decode()
    assert errors == []
    assert "x_1 = 0.5 | y" in html
    assert "a rule with *stars* and <code" in html or "a rule with *stars* and <tt" in html


class _Sink:
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def write(self, text: str) -> None:
        if text.strip():
            self.errors.append(text)


def test_summary_counts_and_no_results_line(tmp_path: Path) -> None:
    text = vp.render(vp.collect(_repo(tmp_path)))
    summary = text.split("\n\n.. _verdicts-")[0]
    alpha = summary.split(":ref:`alpha-claims")[1].split("* -")[0]
    # confirmed, refuted, inconclusive, not testable, other ("no claim")
    assert [c.strip() for c in alpha.split("\n     - ")[1:]] == ["1", "1", "0", "1", "1"]
    assert "no committed results" in summary.split(":ref:`gamma-pending")[1]


def test_write_copies_linked_markdown_or_links_to_a_source_url(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    page = vp.write(root, tmp_path / "out")
    assert page.read_text() == vp.render(vp.collect(root))
    extra = tmp_path / "out" / "extra" / "reproductions"
    assert (extra / "alpha-claims" / "REPORT.md").read_text() == "# report\n"
    assert (extra / "alpha-claims" / "results" / "cpu-substitute-ptb" / "REPORT.md").is_file()
    assert (extra / "beta-presets" / "CLAIM.md").is_file()
    vp.write(root, tmp_path / "out", source_url="https://example.org/neuro/blob/main/")
    text = (tmp_path / "out" / "verdicts.rst").read_text()
    assert "<https://example.org/neuro/blob/main/reproductions/alpha-claims/REPORT.md>`__" in text
    assert not extra.exists()


def test_this_repository_lists_every_reproduction() -> None:
    folders = {
        p.name
        for p in (ROOT / "reproductions").iterdir()
        if (p / "CLAIM.md").is_file() or (p / "experiment.py").is_file()
    }
    repros = vp.collect(ROOT)
    assert {r.name for r in repros} == folders
    for r in repros:
        assert r.rows or r.notes, r.name
        for row in r.rows:
            assert row.verdict in (*vp.OUTCOMES, "no claim"), (r.name, row)
    text = vp.render(repros)
    for r in repros:
        assert f".. _verdicts-{r.name}:" in text


def test_escaping_keeps_text_and_turns_code_spans_into_literals() -> None:
    assert vp._esc("a *b* c_ |d|") == r"a \*b\* c\_ \|d\|"
    assert vp._esc("see `x.py`, or `y`s") == r"see ``x.py``, or ``y``\ s"
    assert vp._esc("two\n  lines") == "two lines"
    assert textwrap.dedent(vp._esc("plain")) == "plain"
