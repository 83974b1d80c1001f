"""``benchmarks/scripts/models_throughput_ceiling.py``: its matmul list covers every projection of
the model (FLOPs checked against the model's own ``nn.Linear`` weights), and a smoke run writes a
record whose ceiling is HF's best step over the GEMM-only time."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scripts" / "models_throughput_ceiling.py"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("models_throughput_ceiling", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("d_model", [64, 256, 512])
def test_gemm_flops_match_the_model_linears(d_model: int) -> None:
    from neuro_models.llama import Llama

    ceiling = _script()
    config = ceiling.mt.train_config(d_model)
    with torch.device("meta"):
        model = Llama(config)
    # Every distinct Linear weight (the tied lm_head once): 3 GEMMs of 2·N·in·out FLOPs each.
    weights = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    n = 8 * 256
    expected = 6 * n * sum(w.numel() for w in weights.values())
    fns, flops = ceiling.gemm_step(config, 8, 256, torch.float32)
    assert set(fns) == set(flops)
    linear = sum(f for name, f in flops.items() if name != "attention_full")
    assert linear == pytest.approx(expected)
    # QKᵀ, PV and their four backward products, each 2·T·T·d_h per batch, head and layer.
    hd = config.d_model // config.n_heads
    attn = 6 * 2 * 8 * config.n_heads * 256 * 256 * hd * config.n_layers
    assert flops["attention_full"] == pytest.approx(attn)


def test_smoke_run_writes_the_ceiling(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "ceiling.json"
    cmd = [sys.executable, str(SCRIPT), "--sizes", "64", "--rounds", "2", "--no-compile"]
    cmd += ["--precision", "fp32", "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "CEILING best-vs-best" in proc.stdout
    record = json.loads(out.read_text())
    for key in ("date", "machine", "threads", "clock", "torch", "transformers", "rounds"):
        assert key in record
    assert record["threads"] == 1
    (row,) = record["rows"]
    assert row["precision"].startswith("fp32")
    seconds = row["seconds"]
    linear = sum(
        statistics.median(seconds[name]) for name in ("qkv", "out", "gate_up", "down", "lm_head")
    )
    gemm = linear + 0.5 * statistics.median(seconds["attention_full"])
    assert row["gemm_seconds"] == pytest.approx(gemm)
    assert row["ceiling"] == pytest.approx(statistics.median(seconds["hf_eager"]) / gemm)
