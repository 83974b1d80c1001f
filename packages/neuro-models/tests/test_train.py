"""Trainer: schedule, config validation, the optimizer step against a hand-written loop, logs."""

from __future__ import annotations

import itertools
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F

from neuro_models import Llama, LlamaConfig
from neuro_models.data import DataOrder
from neuro_models.train import TrainConfig, cross_entropy_loss, lr_at, main, train

VOCAB, SEQ = 32, 8


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(
        LlamaConfig(
            vocab_size=VOCAB,
            d_model=16,
            n_layers=2,
            n_heads=2,
            n_kv_heads=1,
            ffn_dim=32,
            max_seq_len=SEQ,
        )
    )


def _stream(n: int = 800) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.cumsum(torch.randint(1, 3, (n,), generator=g), 0) % VOCAB


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(
        lr=1e-2,
        min_lr=1e-3,
        warmup_steps=2,
        max_steps=6,
        batch_size=4,
        seq_len=SEQ,
        precision="fp32",
        out_dir=str(tmp_path / "run"),
        log_every=1,
        progress=False,
        plot=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_schedule_matches_nanogpt_shape():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)

    def nanogpt(it: int) -> float:  # nanoGPT train.py get_lr with warmup (it + 1) / W
        if it < 10:
            return 1e-3 * (it + 1) / 10
        if it > 110:
            return 1e-4
        ratio = (it - 10) / 100
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    for s in range(0, 130):
        assert lr_at(s, cfg) == pytest.approx(nanogpt(s), rel=1e-12)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.5 * (1e-3 + 1e-4))
    after = [lr_at(s, cfg) for s in range(10, 130)]
    assert all(a >= b for a, b in itertools.pairwise(after))


def test_config_from_dict_and_validation():
    cfg = TrainConfig.from_dict({"lr": 3e-4, "betas": [0.9, 0.99]})
    assert cfg.betas == (0.9, 0.99)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig keys \\['learning_rate'\\]"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    budget = TrainConfig(max_steps=None, max_tokens=10_000, batch_size=4, seq_len=64, grad_accum=2)
    assert budget.total_steps == math.ceil(10_000 / 512)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", 0.0),
        ("lr", float("nan")),
        ("min_lr", 1.0),
        ("batch_size", 0),
        ("seq_len", 2.5),
        ("grad_accum", 0),
        ("warmup_steps", -1),
        ("max_steps", 0),
        ("grad_clip", -1.0),
        ("weight_decay", -0.1),
        ("betas", (0.9, 1.0)),
        ("precision", "fp16"),
        ("parallel", "tp"),
        ("lr_decay_steps", 50),
        ("log_every", 0),
    ],
)
def test_config_rejects_bad_fields(field, value):
    kw = {"warmup_steps": 100} if field == "lr_decay_steps" else {}
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{**kw, field: value})


def test_both_or_neither_budget_is_rejected():
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=None, max_tokens=None)
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=10, max_tokens=100)


def test_steps_equal_a_hand_written_adamw_loop(tmp_path):
    """Schedule, matrix-only weight decay, clipping and the data order, checked step by step
    against a plain PyTorch loop written out here."""
    cfg = _cfg(tmp_path, grad_clip=0.05, weight_decay=0.1)
    ours = _tiny()
    res = train(ours, cfg, DataOrder(_stream(), SEQ, 4, seed=9))

    ref = _tiny()
    decay = [p for p in ref.parameters() if p.ndim >= 2]
    other = [p for p in ref.parameters() if p.ndim < 2]
    assert other, "the model has norm gains, which must not be decayed"
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=1e-2,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    order = DataOrder(_stream(), SEQ, 4, seed=9)
    losses = []
    for step in range(6):
        lr = (
            1e-2 * (step + 1) / 2
            if step < 2
            else 1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + math.cos(math.pi * (step - 2) / 4))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = order.get_batch(step)
        loss = F.cross_entropy(ref(x).reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert res.losses == pytest.approx(losses, abs=1e-6)
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    assert losses[-1] < losses[0]


def test_grad_accumulation_equals_the_big_batch(tmp_path):
    big, small = _tiny(), _tiny()
    r1 = train(big, _cfg(tmp_path / "a", batch_size=8), DataOrder(_stream(), SEQ, 8, seed=2))
    r2 = train(
        small,
        _cfg(tmp_path / "b", batch_size=4, grad_accum=2),
        DataOrder(_stream(), SEQ, 4, seed=2),
    )
    assert r1.losses == pytest.approx(r2.losses, abs=1e-5)
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_logs_extra_metrics_eval_rows_and_plot(tmp_path):
    polars = pytest.importorskip("polars")
    pytest.importorskip("matplotlib")

    def loss_fn(model, x, y):
        loss, _ = cross_entropy_loss(model, x, y)
        reg = 0.01 * sum(p.pow(2).sum() for p in model.parameters())
        return loss + reg, {"reg": float(reg.detach()), "ce": float(loss.detach())}

    cfg = _cfg(tmp_path, max_steps=4, log_every=2, eval_every=2, plot=True, peak_flops=1e9)
    steps, evals = [], []
    res = train(
        _tiny(),
        cfg,
        DataOrder(_stream(), SEQ, 4),
        loss_fn=loss_fn,
        eval_fn=lambda m: evals.append(1) or {"val_loss": 1.5},
        callbacks=[lambda s: steps.append(s.step)],
    )
    assert steps == [1, 2, 3, 4]
    assert len(evals) == 2
    df = polars.read_ndjson(tmp_path / "run" / "metrics.jsonl")
    assert df["step"].to_list() == [2, 4]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "reg", "ce"} <= set(df.columns)
    assert df["tokens"].to_list() == [2 * 4 * SEQ, 4 * 4 * SEQ]
    ce, reg, loss = df["ce"].to_list(), df["reg"].to_list(), df["loss"].to_list()
    for c, r, total in zip(ce, reg, loss):
        assert total == pytest.approx(c + r, rel=1e-5)
    ev = polars.read_ndjson(tmp_path / "run" / "eval.jsonl")
    assert ev["step"].to_list() == [2, 4]
    assert [e["step"] for e in res.evals] == [2, 4]
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["model_config"]["d_model"] == 16
    )


def test_mismatches_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        train(_tiny(), _cfg(tmp_path), DataOrder(_stream(), SEQ, 2))
    with pytest.raises(ValueError, match="seq_len"):
        train(_tiny(), _cfg(tmp_path), DataOrder(_stream(), 4, 4))
    with pytest.raises(ValueError, match="max_seq_len"):
        train(_tiny(), _cfg(tmp_path, seq_len=16), DataOrder(_stream(), 16, 4))


def test_non_finite_loss_stops_the_run(tmp_path):
    def bad_loss(model, x, y):
        loss, _ = cross_entropy_loss(model, x, y)
        return loss * float("nan"), {}

    with pytest.raises(FloatingPointError, match="step 1"):
        train(_tiny(), _cfg(tmp_path), DataOrder(_stream(), SEQ, 4), loss_fn=bad_loss)


def test_bf16_autocast_tracks_fp32(tmp_path):
    a, b = _tiny(), _tiny()
    r32 = train(a, _cfg(tmp_path / "a", max_steps=3), DataOrder(_stream(), SEQ, 4))
    r16 = train(
        b,
        _cfg(tmp_path / "b", max_steps=3, precision="bf16-autocast"),
        DataOrder(_stream(), SEQ, 4),
    )
    assert r16.precision == "bf16-autocast"
    assert r16.losses == pytest.approx(r32.losses, abs=0.05)
    assert b.layers[0].attn.out.weight.dtype == torch.float32  # master weights stay fp32


def test_cli_end_to_end(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "data" / "tinyshakespeare"
    root.mkdir(parents=True)
    (root / "input.txt").write_text(
        "First Citizen:\nBefore we proceed any further, hear me.\n" * 40
    )
    out = tmp_path / "cli"
    main(
        [
            "--corpus", "tinyshakespeare", "--data-dir", str(tmp_path / "data"),
            "--tokenizer", "char", "--cache-dir", str(tmp_path / "cache"),
            "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
            "--max-steps", "3", "--batch-size", "2", "--seq-len", "16", "--warmup-steps", "1",
            "--no-progress", "--no-plot", "--precision", "fp32",
            "--out-dir", str(out), "--generate", "50", "--prompt", "First",
        ]
    )  # fmt: skip
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train_config"]["max_steps"] == 3
    assert cfg["model_config"]["vocab_size"] == 27  # 26 distinct characters + end-of-text
    rows = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3
    assert math.isfinite(rows[-1]["val_loss"])
    assert (out / "checkpoints" / "latest").read_text() == "step_00000003"
    sample = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sample:")]
    assert sample
    assert sample[0].startswith("sample:\nFirst")
