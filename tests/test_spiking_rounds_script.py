"""``benchmarks/scripts/spiking_rounds.py`` at smoke size: its JSON record names the conditions,
every ratio is the per-round quotient of the recorded times, the printed figure is their median and
range, and fewer than 5 rounds is refused."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scripts" / "spiking_rounds.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--T", "4", "--B", "2", "--N", "16", "--threads", "1"]


def test_ratios_are_per_round_quotients_and_the_printed_figure_their_median(tmp_path: Path) -> None:
    out = tmp_path / "rounds.json"
    cmd = [sys.executable, str(SCRIPT), "--suite", "adaptive", "--rounds", "5", *SMALL]
    proc = subprocess.run(
        [*cmd, "--json", str(out)], capture_output=True, text=True, env=ENV, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    for key in ("date", "machine", "threads", "torch", "revision", "shape", "rounds"):
        assert key in record
    assert record["threads"] == 1
    assert record["rounds"] == 5
    assert "AVX-512 BF16" in record["machine"]
    times = record["times_s"]
    assert set(times) == {"alif fused", "alif reference", "gif fused", "gif reference"}
    assert all(len(t) == 5 for t in times.values())
    for op in ("alif", "gif"):
        want = [r / f for r, f in zip(times[f"{op} reference"], times[f"{op} fused"], strict=True)]
        got = record["ratios"][f"{op} reference / {op} fused"]
        assert got == want
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"ratio {op} reference"))
        median, lo, hi = (float(v) for v in re.findall(r"[0-9.]+(?:e[+-]?\d+)?", line)[:3])
        assert median == float(f"{statistics.median(want):.3g}")
        assert (lo, hi) == (float(f"{min(want):.3g}"), float(f"{max(want):.3g}"))
    assert proc.stdout.startswith("# ")
    assert "threads 1" in proc.stdout.splitlines()[0]


def test_fewer_than_five_rounds_is_refused() -> None:
    cmd = [sys.executable, str(SCRIPT), "--suite", "adaptive", "--rounds", "4", *SMALL]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120, cwd=ROOT)
    assert proc.returncode != 0
    assert "--rounds" in proc.stderr
