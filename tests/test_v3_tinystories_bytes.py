"""reproductions/v3-tinystories-bytes: the loss hooks of arms (d) and (e) inside the framework's
own training loop (AdamW with weight decay, grad clipping, warmup + cosine), each checked against
what the hook promises: (d) moves no weight the CE's gradient reaches except the short-term
memory slots; (e) reads the schedule's learning rate exactly, one step late, and learns without
any gradient on a model parameter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neuro_models.data import DataOrder
from neuro_models.experiment.runner import load_experiment
from neuro_models.train import TrainConfig, train
from neuro_models.v3 import V3Config, V3Model

ROOT = Path(__file__).resolve().parents[1]
exp_mod = load_experiment(ROOT / "reproductions" / "v3-tinystories-bytes" / "experiment.py")

SMALL = dict(vocab_size=257, dim=16, num_layers=2, memory_size=4, concept_dim=8, num_concepts=8,
             episodic_slots=4)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(model: torch.nn.Module, loss_fn, tmp_path: Path, steps: int = 6, lr: float = 1e-2):
    tokens = np.random.default_rng(0).integers(0, 257, 4096)
    order = DataOrder(tokens, 16, 2, seed=0)
    cfg = TrainConfig(lr=lr, min_lr=lr / 10, warmup_steps=2, max_steps=steps, batch_size=2,
                      seq_len=16, seed=0, out_dir=str(tmp_path), progress=False, plot=False,
                      log_every=1, weight_decay=0.1, grad_clip=1.0)  # fmt: skip
    train(model, cfg, order, loss_fn=loss_fn, device=torch.device("cpu"))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return cfg, rows


def _lr(step: int, cfg: TrainConfig) -> float:
    # warmup: lr·(s+1)/W; then cosine from lr to min_lr over the remaining steps
    W, D = cfg.warmup_steps, cfg.max_steps
    if step < W:
        return cfg.lr * (step + 1) / W
    r = (step - W) / (D - W)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (cfg.lr - cfg.min_lr)


def test_published_arm_moves_no_trained_weight_in_the_framework_loop(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config.published(**SMALL))
    probe = V3Model(V3Config.published(**SMALL)).train()
    x = torch.randint(0, 257, (2, 8))
    torch.nn.functional.cross_entropy(probe(x).flatten(0, 1), x.flatten()).backward()
    trainable = {k for k, p in probe.named_parameters() if p.grad is not None and p.grad.any()}
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    _, rows = _train(model, exp_mod.published_loss, tmp_path)
    changed = {k for k, p in model.named_parameters() if not torch.equal(p.detach(), before[k])}
    assert len(trainable) > 20
    # AdamW (weight decay 0.1) saw no gradient on any model parameter, so only the published
    # forward's .data writes moved anything; of the trained weights only the STM slots.
    assert trainable & changed == {"short_term_memory.memory_slots"}
    assert all(p.grad is None for p in model.parameters())
    assert model._published_steps == 6
    assert all(abs(r["loss"] - math.log(257)) < 0.5 for r in rows)


def test_local_arm_follows_the_schedule_one_step_late(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = exp_mod.LocalV3(V3Config(**SMALL))
    before = {k: p.detach().clone() for k, p in model.v3.named_parameters()}
    cfg, rows = _train(model, exp_mod.local_loss, tmp_path, steps=8)
    rates = [r["local_rate"] for r in rows]
    assert rates[0] == 0.0
    for s in range(1, 8):
        assert rates[s] == pytest.approx(_lr(s - 1, cfg), rel=1e-4)
    # The model learned (weights moved) with no gradient on any of its parameters.
    assert all(p.grad is None for p in model.v3.parameters())
    moved = [k for k, p in model.v3.named_parameters() if not torch.equal(p.detach(), before[k])]
    assert "output_proj.weight" in moved
    assert "token_embedding.weight" in moved
    assert model.trainer is not None
    assert model.trainer.config.local_lr == pytest.approx(exp_mod.LOCAL_PER_LR * rates[-1])


def test_local_arm_survives_an_overflowing_rate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = exp_mod.LocalV3(V3Config(**SMALL))
    with torch.no_grad():
        model.v3.output_proj.weight.fill_(float("inf"))
    _, rows = _train(model, exp_mod.local_loss, tmp_path, steps=3)
    assert model.diverged
    # loss = DIVERGED_LOSS + clock (clock = −Σ lr, small)
    assert [r["loss"] for r in rows] == pytest.approx([exp_mod.DIVERGED_LOSS] * 3, abs=0.1)
