"""``benchmarks/scripts/models_throughput.py`` at smoke size: it runs, and its JSON record carries
the conditions (date, machine, threads, versions, precision) and median [min-max] ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scripts" / "models_throughput.py"


def test_smoke_run_writes_a_complete_record(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "throughput.json"
    cmd = [sys.executable, str(SCRIPT), "--sizes", "64", "--rounds", "2", "--steps", "1"]
    cmd += ["--no-compile", "--skip-generate", "--threads", "1", "--precision", "fp32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*cmd, "--json", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "not a reportable figure" in proc.stdout
    record = json.loads(out.read_text())
    for key in ("date", "machine", "threads", "torch", "transformers", "precision", "rounds"):
        assert key in record
    assert record["precision"] == "fp32"
    assert record["threads"] == 1
    (row,) = record["train"]
    assert set(row["arms"]) == {"ours_eager", "hf_eager"}
    assert all(len(arm["seconds"]) == 2 for arm in row["arms"].values())
    ratio = row["ratios"]["eager_vs_eager"]
    assert ratio["min"] <= ratio["median"] <= ratio["max"]
    assert set(row["ratios"]) == {"eager_vs_eager", "best_vs_best"}
