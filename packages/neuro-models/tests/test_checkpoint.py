"""Checkpoints: exact round trip, corruption detection, atomicity, bit-identical resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neuro_models import Llama, LlamaConfig
from neuro_models.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from neuro_models.data import DataOrder
from neuro_models.train import TrainConfig, train

WORKER = Path(__file__).with_name("test_train_worker.py")
sys.path.insert(0, str(WORKER.parent))
import test_train_worker as worker  # noqa: E402


def _tiny(vocab: int = 32) -> Llama:
    torch.manual_seed(0)
    return Llama(
        LlamaConfig(
            vocab_size=vocab,
            d_model=16,
            n_layers=1,
            n_heads=2,
            n_kv_heads=2,
            ffn_dim=32,
            max_seq_len=8,
        )
    )


def _config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(
        lr=1e-2,
        min_lr=1e-3,
        warmup_steps=1,
        max_steps=4,
        batch_size=4,
        seq_len=8,
        precision="fp32",
        out_dir=str(tmp_path / "run"),
        log_every=1,
        progress=False,
        plot=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def _stream(vocab: int = 32, n: int = 600) -> torch.Tensor:
    return torch.arange(n) % vocab


def test_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    model = {"a.weight": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g)}
    optim = {
        "state": {"a.weight": {"step": torch.tensor(3.0), "exp_avg": torch.randn(3, 4)}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.95), "params": ["a.weight", "b"]}],
    }
    rng = {"torch_cpu": torch.get_rng_state()}
    path = save_checkpoint(tmp_path, 7, model=model, optimizer=optim, rng=rng, meta={"x": [1, 2]})
    assert latest_checkpoint(tmp_path) == path
    ck = load_checkpoint(tmp_path)
    assert ck.step == 7
    assert ck.meta == {"x": [1, 2]}
    for k, v in model.items():
        assert torch.equal(ck.model[k], v)
    assert torch.equal(ck.rng["torch_cpu"], rng["torch_cpu"])
    assert ck.optimizer is not None
    st = ck.optimizer["state"]["a.weight"]
    assert torch.equal(st["exp_avg"], optim["state"]["a.weight"]["exp_avg"])
    assert ck.optimizer["param_groups"][0]["betas"] == (0.9, 0.95)


def test_keep_prunes_old_checkpoints(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model={"w": torch.zeros(2)}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000002", "step_00000003"]


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.safetensors"])
def test_truncated_tensor_file_is_named(tmp_path, victim):
    path = save_checkpoint(tmp_path, 1, model={"w": torch.randn(64)}, optimizer=None)
    f = path / victim
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=victim):
        load_checkpoint(path)


def test_flipped_byte_is_detected(tmp_path):
    path = save_checkpoint(tmp_path, 1, model={"w": torch.randn(64)})
    f = path / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt"):
        load_checkpoint(path)


def test_corrupt_and_missing_state_json_are_named(tmp_path):
    path = save_checkpoint(tmp_path, 1, model={"w": torch.randn(4)})
    (path / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"state\.json"):
        load_checkpoint(path)
    (path / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"state\.json.*missing"):
        load_checkpoint(path)


def test_failed_save_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch

    save_checkpoint(tmp_path, 1, model={"w": torch.ones(4)})
    real = safetensors.torch.save_file

    def half_then_fail(tensors, filename, metadata=None):
        real(tensors, filename, metadata)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, model={"w": torch.full((4,), 2.0)})
    ck = load_checkpoint(tmp_path)
    assert ck.step == 1
    assert torch.equal(ck.model["w"], torch.ones(4))


def test_resume_refuses_other_config_model_and_tokenizer(tmp_path, one_thread):
    cfg = _config(tmp_path, ckpt_every=2)
    train(_tiny(), cfg, DataOrder(_stream(), 8, 4, seed=0), tokenizer_id="tokA")
    resume = cfg.replace(resume=True, max_steps=6, lr_decay_steps=4)
    with pytest.raises(CheckpointError, match="'lr'"):
        train(_tiny(), resume.replace(lr=2e-2), DataOrder(_stream(), 8, 4), tokenizer_id="tokA")
    with pytest.raises(CheckpointError, match="tokenizer_id"):
        train(_tiny(), resume, DataOrder(_stream(), 8, 4), tokenizer_id="tokB")
    with pytest.raises(CheckpointError, match="'vocab_size'"):
        train(_tiny(48), resume, DataOrder(_stream(), 8, 4), tokenizer_id="tokA")
    with pytest.raises(CheckpointError, match="'seed'"):
        train(_tiny(), resume, DataOrder(_stream(), 8, 4, seed=1), tokenizer_id="tokA")
    # Extending max_steps changes the cosine horizon unless lr_decay_steps is pinned.
    with pytest.raises(CheckpointError, match="lr_decay_steps"):
        train(
            _tiny(),
            resume.replace(lr_decay_steps=None),
            DataOrder(_stream(), 8, 4),
            tokenizer_id="tokA",
        )
    res = train(_tiny(), resume, DataOrder(_stream(), 8, 4), tokenizer_id="tokA")
    assert (res.start_step, res.final_step) == (4, 6)


def test_resume_in_process_matches_uninterrupted(tmp_path, one_thread):
    """Stop after 3 of 6 steps (checkpoint), resume, compare with one 6-step run."""
    order = lambda: DataOrder(_stream(), 8, 4, seed=5)
    full_cfg = _config(tmp_path / "full", max_steps=6, lr_decay_steps=6, ckpt_every=3)
    ref = _tiny()
    ref_res = train(ref, full_cfg, order())
    part_cfg = _config(tmp_path / "part", max_steps=3, lr_decay_steps=6)
    train(_tiny(), part_cfg, order())
    resumed = _tiny()
    res = train(resumed, part_cfg.replace(max_steps=6, resume=True), order())
    assert res.start_step == 3
    assert res.losses == ref_res.losses[3:]
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    rows = [json.loads(x) for x in (tmp_path / "part/run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_sigkill_mid_run_and_mid_save_then_resume_is_bit_identical(tmp_path, one_thread):
    """A run SIGKILLed while writing checkpoint 8 keeps checkpoint 4; resuming from it ends with
    exactly the weights of an uninterrupted 12-step run (computed in this process)."""
    steps, every = 12, 4
    ref_dir = tmp_path / "ref"
    model = worker.tiny_model()
    cfg = TrainConfig(
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=3,
        max_steps=steps,
        batch_size=8,
        seq_len=worker.SEQ,
        precision="fp32",
        out_dir=str(ref_dir),
        log_every=1,
        progress=False,
        plot=False,
    )
    ref = train(model, cfg, DataOrder(worker.stream(), worker.SEQ, 8, seed=3))
    ref_weights = {k: v.clone() for k, v in model.state_dict().items()}

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), str(out), "--steps", str(steps), "--ckpt-every", str(every)]
    killed = subprocess.run([*cmd, "--kill-in-save", "8"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    ckpt_root = out / "none" / "checkpoints"
    assert latest_checkpoint(ckpt_root) == ckpt_root / "step_00000004"
    assert load_checkpoint(ckpt_root).step == 4  # verifies both sha256 digests
    assert list(ckpt_root.glob(".tmp-step_00000008-*")), "the kill should hit the temp directory"

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    res = json.loads((out / "none" / "result.json").read_text())
    assert res["start"] == 4
    assert res["losses"] == ref.losses[4:]
    final = load_file(str(out / "none" / "final.safetensors"))
    assert final.keys() == ref_weights.keys()
    for k, v in ref_weights.items():
        assert torch.equal(final[k], v), k
