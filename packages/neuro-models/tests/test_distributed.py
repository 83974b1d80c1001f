"""DDP and FSDP2 under torchrun (2 gloo processes on CPU) reproduce the single-process losses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neuro_models.data import DataOrder
from neuro_models.distributed import all_reduce_mean, dist_info, parallelize, shutdown_distributed
from neuro_models.train import TrainConfig, train

WORKER = Path(__file__).with_name("test_train_worker.py")
sys.path.insert(0, str(WORKER.parent))
import test_train_worker as worker  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_single_process_helpers():
    assert dist_info().world_size == 1
    assert all_reduce_mean(2.5) == 2.5
    model = torch.nn.Linear(2, 2)
    assert parallelize(model, "none") is model
    with pytest.raises(ValueError, match="torchrun"):
        parallelize(model, "ddp")
    with pytest.raises(ValueError, match="parallel must be"):
        parallelize(model, "zero3")  # type: ignore[arg-type]
    shutdown_distributed()  # nothing to tear down: a no-op
    assert dist_info().world_size == 1


@pytest.mark.slow
def test_ddp_and_fsdp2_match_single_process(tmp_path):
    steps = 10
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = worker.tiny_model()
        cfg = TrainConfig(
            lr=3e-3,
            min_lr=3e-4,
            warmup_steps=3,
            max_steps=steps,
            batch_size=8,
            seq_len=worker.SEQ,
            precision="fp32",
            out_dir=str(tmp_path / "single"),
            log_every=1,
            progress=False,
            plot=False,
        )
        single = train(model, cfg, DataOrder(worker.stream(), worker.SEQ, 8, seed=3))
    finally:
        torch.set_num_threads(n)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(WORKER),
        str(tmp_path),
        "--steps",
        str(steps),
        "--parallel",
        "ddp,fsdp",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    for mode in ("ddp", "fsdp"):
        losses = json.loads((tmp_path / mode / "result.json").read_text())["losses"]
        assert len(losses) == steps
        diff = max(abs(a - b) for a, b in zip(losses, single.losses))
        assert diff <= 1e-5, (mode, diff)
        final = load_file(str(tmp_path / mode / "final.safetensors"))
        for k, v in model.state_dict().items():
            torch.testing.assert_close(final[k], v, rtol=0, atol=1e-5, msg=f"{mode}: {k}")
    # The loss actually moved, so equal curves are not equal constants.
    assert single.losses[-1] < single.losses[0] - 0.2
