"""The experiment runner end to end on a tiny generated corpus: outputs, caching, staleness,
the LR protocol, substitute corpora, the memorization guard and the committed weights."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest
import torch

from neuro_models.bundle import load_bundle
from neuro_models.evaluate import evaluate
from neuro_models.experiment import runner
from neuro_models.experiment.floors import fit_floors

DECL = textwrap.dedent(
    """
    from neuro_models import Llama, LlamaConfig
    from neuro_models.experiment import Arm, Comparison, Experiment, Scale

    LR = {lr!r}
    WIDTHS = {widths!r}

    def experiment(scale):
        arms = [
            Arm(name=n, description=f"width {{w}}", build=Llama,
                config=LlamaConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, n_kv_heads=2,
                                   ffn_dim=w, max_seq_len=16))
            for n, w in WIDTHS.items()
        ]
        return Experiment(
            name="toy", title="toy report", corpus={corpus!r}, substitute="tinyshakespeare",
            tokenizer="char", vocab_size=64, arms=arms, reference="R",
            comparisons=[Comparison(claim="T beats R", arm="T", reference="R", claimed=0.2,
                                    smallest_of_interest=0.05)],
            scale=Scale(name=scale, steps=6, batch_size=4, seq_len=16, seeds=(0, 1, 2),
                        lr_grid=LR, max_grid_extensions=2, dev_tokens=256, eval_tokens=600,
                        curve_points=5, curve_tokens=200, max_passes={max_passes!r}),
        )
    """
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    text = " ".join(rng.choice(words) for _ in range(6000)) + "\n"
    (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(text)
    return tmp_path / "data"


def declare(tmp_path: Path, name: str, *, lr=(1e-3, 3e-3, 9e-3), widths=None,
            corpus="tinyshakespeare", max_passes=4.0) -> Path:  # fmt: skip
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "experiment.py"
    widths = widths or {"R": 32, "T": 32}
    path.write_text(DECL.format(lr=lr, widths=widths, corpus=corpus, max_passes=max_passes))
    return path


def run(decl: Path, out: Path, data_dir: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("progress", runner.Progress(echo=lambda s: None))
    return runner.run_experiment(decl, "smoke", out, data_dir=data_dir, **kw)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURO_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def test_outputs_floors_and_weights(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    s = run(declare(tmp_path, "a"), out, data_dir)
    for f in ("results.json", "runs.csv", "curves.png", "REPORT.md"):
        assert (out / f).is_file(), f
    assert json.loads((out / "results.json").read_text())["code"] == s["code"]
    # Floors equal an independent fit on the same streams the runner cut.
    exp = runner.load_experiment(tmp_path / "a" / "experiment.py").experiment("smoke")
    ctx = runner.prepare_context(exp, data_dir=data_dir)
    fl = fit_floors(ctx.train, ctx.dev, ctx.evaluated, 64)
    assert s["floors"]["bigram_nll"] == pytest.approx(fl.bigram_nll)
    assert len(ctx.evaluated) - 1 == 600
    assert len(ctx.dev) == 256
    # Three seeds x two arms of main runs; seed 0's weights are kept apart from the others.
    mains = sorted((out / "runs" / "main").rglob("*.json"))
    assert len(mains) == 6
    assert sorted(p.name for p in (out / "weights").iterdir()) == ["R-seed0", "T-seed0"]
    assert len(list((out / "weights-other-seeds").iterdir())) == 4
    # The committed bf16 weights re-score close to the recorded fp32 NLL on the evaluated tokens.
    rec = json.loads((out / "runs" / "main" / "R" / "seed0.json").read_text())
    b = load_bundle(out / "weights" / "R-seed0")
    ev = evaluate(b.model, ctx.evaluated, 16)
    assert abs(ev.nll - rec["valid"]["nll"]) < 0.05
    # Curves: >= 5 log-spaced points, the last at the full budget, and the comparison is judged.
    toks = s["arms"]["R"]["curve"]["tokens"]
    assert len(toks) >= 5
    assert toks[-1] == 6 * 4 * 16
    assert toks == sorted(set(toks))
    c = s["comparisons"][0]
    assert c["verdict"]["outcome"] == "not testable"  # 6 steps cannot beat the bigram floor
    assert "not informative" in c["verdict"]["reason"]
    report = (out / "REPORT.md").read_text()
    assert "bigram" in report
    assert "95% CI" in report
    assert "MDE" in report


def test_cached_runs_are_reused_and_code_changes_invalidate(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decl, out = declare(tmp_path, "b"), tmp_path / "out"
    first = run(decl, out, data_dir)
    calls: list[runner.Job] = []
    real = runner.run_job

    def counting(exp, ctx, job, out_dir, **kw):  # type: ignore[no-untyped-def]
        calls.append(job)
        return real(exp, ctx, job, out_dir, **kw)

    monkeypatch.setattr(runner, "run_job", counting)
    again = run(decl, out, data_dir)
    assert calls == []
    assert again["arms"]["R"]["per_seed_nll"] == first["arms"]["R"]["per_seed_nll"]
    # Another code version: everything is re-run, unless stale runs are explicitly allowed.
    monkeypatch.setattr(runner, "code_version", lambda files=(): "0" * 16)
    stale = run(decl, out, data_dir, allow_stale=True)
    assert calls == []
    assert stale["stale_runs"]
    assert "another code version" in (out / "REPORT.md").read_text()
    fresh = run(decl, out, data_dir)
    assert len(calls) == len(first["sweep"]) + 6
    assert fresh["stale_runs"] == {}
    # Same code, same config: bit-identical results (the run is deterministic).
    assert fresh["arms"]["T"]["per_seed_nll"] == first["arms"]["T"]["per_seed_nll"]


def test_lr_grid_grows_past_an_edge_minimum(tmp_path: Path, data_dir: Path) -> None:
    # Rates far too small: the highest is always best, so the grid grows upward to its limit.
    s = run(declare(tmp_path, "c", lr=(1e-6, 2e-6, 4e-6)), tmp_path / "out", data_dir)
    for arm in ("R", "T"):
        ch = s["arms"][arm]["lr"]
        assert ch["grid"] == pytest.approx([1e-6, 2e-6, 4e-6, 8e-6, 1.6e-5])
        assert ch["lr"] == pytest.approx(1.6e-5)
        assert not ch["interior"]
        assert ch["extensions"] == 2
    assert len(s["sweep"]) == 10


def test_parameter_mismatch_is_refused(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(AssertionError, match="arm T"):
        run(declare(tmp_path, "d", widths={"R": 32, "T": 64}), tmp_path / "out", data_dir)


def test_substitute_corpus_is_labelled(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    s = run(declare(tmp_path, "e", corpus="tinystories"), out, data_dir)
    assert s["data"]["substitute"]
    assert s["data"]["corpus"] == "tinyshakespeare"
    assert "substitute corpus" in (out / "REPORT.md").read_text()


def test_memorizing_budget_is_refused(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="memorize"):
        run(declare(tmp_path, "f", max_passes=0.001), tmp_path / "out", data_dir)


def test_worker_processes_record_the_code_they_ran(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decl = declare(tmp_path, "g")
    serial = run(decl, tmp_path / "serial", data_dir)
    parallel = run(decl, tmp_path / "parallel", data_dir, workers=2)
    # Same code, same seeds, one thread each: the worker processes reproduce the serial numbers.
    assert parallel["arms"]["T"]["per_seed_nll"] == serial["arms"]["T"]["per_seed_nll"]
    assert parallel["stale_runs"] == {}
    recs = [json.loads(p.read_text()) for p in (tmp_path / "parallel" / "runs").rglob("*.json")]
    assert {r["code"] for r in recs} == {serial["code"]}
    # In-process, the worker computes the code version and keys itself, from what it imports.
    monkeypatch.setattr(runner, "code_version", lambda files=(): "f" * 16)
    job = runner.Job("main", "R", 1e-3, 0, 6)
    r = runner._worker(str(decl), "smoke", "tinyshakespeare", str(data_dir), job,
                       str(tmp_path / "w"), 1, None)  # fmt: skip
    assert r["code"] == "f" * 16
    assert r["key"] == runner._hash([r["config_key"], "f" * 16])
