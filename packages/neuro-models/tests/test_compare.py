"""compare: tables and per-arm summaries from run directories."""

from __future__ import annotations

import json
import statistics

import pytest

from neuro_models.compare import compare, load_run, main, markdown_table, summarize

pl = pytest.importorskip("polars")


def _fake_run(root, arm, seed, val):
    d = root / arm / f"seed{seed}"
    d.mkdir(parents=True)
    rows = [
        {"step": s, "tokens": 100 * s, "loss": 5.0 - s * 0.1 - seed, "wall_s": float(s)}
        for s in (1, 2)
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = [{"step": 2, "tokens": 200, "val_loss": val, "val_ppl": 2.718**val}]
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    (d / "config.json").write_text(json.dumps({"n_params": 1000 + seed}))
    return d


def test_table_and_summary(tmp_path):
    vals = {"base": [3.0, 3.2, 3.1], "ncn": [2.9, 3.3]}
    dirs = [
        _fake_run(tmp_path, arm, seed, v) for arm, vs in vals.items() for seed, v in enumerate(vs)
    ]
    table = compare(dirs)
    assert table.height == 5
    assert table["arm"].to_list() == ["base"] * 3 + ["ncn"] * 2
    assert table["val_loss"].to_list() == [3.0, 3.2, 3.1, 2.9, 3.3]
    assert table["train_loss"].to_list()[:2] == [pytest.approx(4.8), pytest.approx(3.8)]
    assert table["n_params"].to_list() == [1000, 1001, 1002, 1000, 1001]
    summary = summarize(table, ["val_loss"])
    base = summary.filter(pl.col("arm") == "base").row(0, named=True)
    assert base["n_runs"] == 3
    assert base["val_loss_mean"] == pytest.approx(statistics.fmean(vals["base"]))
    assert base["val_loss_std"] == pytest.approx(statistics.stdev(vals["base"]))
    md = markdown_table(summary)
    assert md.splitlines()[0].startswith("| arm | n_runs | val_loss_mean")
    assert "| base | 3 | 3.1000 |" in md


def test_cli_writes_files(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    dirs = [str(_fake_run(tmp_path, "a", s, 3.0 + s)) for s in range(2)]
    main([*dirs, "--out", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "p.png")])
    from neuro_models.compare import plot_runs

    assert plot_runs(dirs, tmp_path / "q.png", with_train=True).stat().st_size > 1000
    assert pl.read_csv(tmp_path / "t.csv")["val_loss"].to_list() == [3.0, 4.0]
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "val_loss" in capsys.readouterr().out


def test_empty_run_dir_is_named(tmp_path):
    with pytest.raises(ValueError, match="no metrics"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="run_dirs"):
        compare([])
