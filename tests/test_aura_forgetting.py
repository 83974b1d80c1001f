"""reproductions/aura-forgetting/study.py: its scoring against the shared evaluator, its forgetting
definitions and interval rule against hand-computed values, its replay/EWC hooks against the
losses written out here, and its refusal of unknown scales."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuro_models.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study() -> ModuleType:
    path = ROOT / "reproductions" / "aura-forgetting" / "study.py"
    spec = importlib.util.spec_from_file_location("aura_forgetting_study", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_score_matches_the_shared_evaluator_and_a_direct_accuracy(study: ModuleType) -> None:
    torch.set_num_threads(1)
    sc = study.SCALES["smoke"]
    model = study.build_model(sc, 3)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 257, size=4 * sc.seq_len + 1)
    got = study.score(model, tokens, sc.seq_len, batch_size=3)
    ref = evaluate(model, tokens, sc.seq_len, batch_size=2)
    assert got["nll"] == pytest.approx(ref.nll, rel=1e-6)
    x = torch.from_numpy(tokens[:-1].reshape(4, sc.seq_len))
    y = torch.from_numpy(tokens[1:].reshape(4, sc.seq_len))
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).double().mean())
    assert got["acc"] == pytest.approx(acc)
    with pytest.raises(ValueError, match="multiple"):
        study.score(model, tokens[:-1], sc.seq_len)


def test_forgetting_definitions(study: ModuleType) -> None:
    rec = {
        "before": {"a": {"nll": 2.0, "acc": 0.5}, "b": {"nll": 3.0, "acc": 0.2}},
        "after": {"a": {"nll": 2.5, "acc": 0.4}, "b": {"nll": 2.2, "acc": 0.3}},
    }
    f = study.forgetting(rec)
    assert f["rel_nll_rise_a"] == pytest.approx(0.25)
    assert f["rel_acc_drop_a"] == pytest.approx(0.2)
    assert f["nll_b_drop"] == pytest.approx(0.8)


def test_interval_verdict(study: ModuleType) -> None:
    # mean 0.5, sd 0.01, n = 3: half-width t_{0.975,2} · 0.01 / √3 = 4.303 · 0.005774 = 0.02484
    inside = study.interval_verdict([0.49, 0.5, 0.51], 0.4, 0.6)
    assert inside["outcome"] == "confirmed"
    assert "[0.475, 0.525]" in inside["reason"]
    assert study.interval_verdict([0.19, 0.2, 0.21], 0.4, 0.6)["outcome"] == "refuted"
    assert study.interval_verdict([0.3, 0.4, 0.5], 0.4, 0.6)["outcome"] == "inconclusive"
    assert study.interval_verdict([0.01, 0.02, 0.03], -math.inf, 0.1)["outcome"] == "confirmed"
    with pytest.raises(ValueError, match="at least 2"):
        study.interval_verdict([0.1], 0.0, 1.0)


def test_replay_and_ewc_hooks_compute_the_declared_losses(study: ModuleType) -> None:
    torch.set_num_threads(1)
    sc = study.SCALES["smoke"]
    rng = np.random.default_rng(1)
    stream = rng.integers(0, 257, size=200 * sc.seq_len).astype(np.int64)
    ev = stream[: 2 * sc.seq_len + 1]
    streams = study.Streams("a", "b", True, stream, ev, ev, stream[::-1].copy(), ev, ev, 1, 1)
    x = torch.from_numpy(stream[: sc.seq_len * 2].reshape(2, -1))
    y = torch.from_numpy(stream[1 : sc.seq_len * 2 + 1].reshape(2, -1))

    model = study.build_model(sc, 0)
    loss_fn, cbs = study.phase2_hooks("replay-10pct", model, streams, sc, 0)
    assert cbs == []
    buf = study.fill_replay(streams, sc, 0)  # same seed: the same first sample
    s = buf.sample(1)
    xx, yy = torch.cat([x, s.x]), torch.cat([y, s.y])
    want = F.cross_entropy(model(xx).reshape(-1, 257), yy.reshape(-1))
    got, _ = loss_fn(model, x, y)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)

    model = study.build_model(sc, 0)
    loss_fn, _ = study.phase2_hooks("ewc-10", model, streams, sc, 0)
    base = F.cross_entropy(model(x).reshape(-1, 257), y.reshape(-1))
    got, terms = loss_fn(model, x, y)
    assert terms["ewc"] == 0.0
    assert float(got.detach()) == pytest.approx(float(base.detach()), rel=1e-5)
    # Aura's convention: penalty = λ Σ F Δθ² (no ½), with F the Fisher the hook anchored.
    theta, fisher = _only_anchor(loss_fn)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    want_pen = sum(10.0 * float((f * (0.01**2)).sum()) for f in fisher.values())
    _, terms = loss_fn(model, x, y)
    assert terms["ewc"] == pytest.approx(want_pen, rel=1e-4)
    assert set(theta) == set(fisher)


def _only_anchor(loss_fn: object) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    cells = [c.cell_contents for c in getattr(loss_fn, "__closure__", ()) or ()]
    ewc = next(c for c in cells if hasattr(c, "anchors"))
    assert len(ewc.anchors) == 1
    return ewc.anchors[0]


def test_unknown_scale_is_refused(study: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale must be one of"):
        study.run("huge", tmp_path, data_dir=None, substitute=False, report_path=None)


def test_sweep_grows_past_an_edge_and_stops_inside(study: ModuleType) -> None:
    calls: list[float] = []

    def dev(lr: float) -> float:
        calls.append(lr)
        return (math.log(lr) - math.log(8e-3)) ** 2  # best at 8e-3, above the grid

    assert study.sweep((1e-3, 2e-3, 4e-3), dev) == pytest.approx(8e-3)
    assert calls[-2:] == pytest.approx([8e-3, 1.6e-2])  # one more past the new edge, then inside
    calls.clear()
    assert study.sweep((1e-3, 2e-3, 4e-3), lambda lr: abs(lr - 2e-3)) == 2e-3
    assert study.sweep((1e-3, 2e-3), lambda lr: lr, max_extra=1) == pytest.approx(5e-4)


def test_record_keys_ignore_report_code(study: ModuleType) -> None:
    h = study._training_code_hash()
    assert len(h) == 12
    assert h == study._training_code_hash()
    assert set(study._TRAINING_CODE) >= {"phase1", "phase2", "phase2_hooks", "score", "SCALES"}
