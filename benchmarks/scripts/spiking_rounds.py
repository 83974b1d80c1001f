"""Median and spread of neuro-spiking's CPU speed ratios over interleaved rounds.

``spiking_targets.py`` reports the best of its repeats; a figure quoted against a peer must be the
median and spread of at least five runs (docs/guides/figures.rst). This script times the same
workloads round by round and prints, for every variant, the median and [min–max] of its times,
and for every ratio the median and [min–max] of the per-round ratios (peer time / our time in the
same round, so a slow moment of the machine hits both sides of a ratio).

Workloads (forward + backward, fp32, ``[T, B, N]``, random upstream gradient):

* ``--suite lif``: the fused LIF (``"fused"``, the CPU default, and ``"compile"``) against
  snnTorch ``Leaky`` and SpikingJelly ``LIFNode(step_mode="m")`` with the matched
  parameterization of ``spiking_targets.py`` (its ``make_inputs`` and ``variants`` are reused:
  β = 0.9, hard reset to 0, ATan surrogate). Peers are optional; a missing peer is skipped.
* ``--suite adaptive``: ``fused_alif_scan`` and ``fused_gif_scan`` (8 levels), ``"fused"`` against
  ``"reference"`` (eager autograd), with the inputs and parameters of the asv ``AdaptiveScan``
  suite (``benchmarks/benchmarks/bench_spiking.py``).

Every variant runs once untimed first (warm-up; ``"compile"`` compiles there). The first line
printed names the date, the machine (CPU model, AVX-512 BF16 or not), torch version and threads.

Usage::

    python benchmarks/scripts/spiking_rounds.py --suite lif --rounds 7 --threads 1 --json OUT.json
    python benchmarks/scripts/spiking_rounds.py --suite adaptive --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spiking_targets import BETA, make_inputs, variants

LIF_RATIOS = [
    ("snnTorch Leaky loop", "neuro_spiking fused"),
    ("SpikingJelly LIFNode torch", "neuro_spiking fused"),
    ("snnTorch Leaky loop", "neuro_spiking compile"),
    ("SpikingJelly LIFNode torch", "neuro_spiking compile"),
]
ADAPTIVE_RATIOS = [("alif reference", "alif fused"), ("gif reference", "gif fused")]


def machine() -> str:
    """CPU model name and whether it has AVX-512 BF16 (from /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown CPU", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
    except OSError:
        pass
    bf16 = "yes" if "avx512_bf16" in flags.split() else "no"
    return f"{model}, AVX-512 BF16 {bf16}"


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "packages", "benchmarks/scripts"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def adaptive_variants(T: int, B: int, N: int) -> dict[str, Callable[[], None]]:
    from neuro_spiking.ops.alif_scan import fused_alif_scan
    from neuro_spiking.ops.gif_scan import fused_gif_scan

    out: dict[str, Callable[[], None]] = {}
    for op in ("alif", "gif"):
        g = torch.Generator().manual_seed(0)
        x = (torch.rand(T, B, N, generator=g) - 0.2) * (3.0 if op == "gif" else 0.3)
        up = torch.randn(T, B, N, generator=g)
        for backend in ("fused", "reference"):

            def run(op: str = op, backend: str = backend, x=x, up=up) -> None:
                xx = x.detach().requires_grad_()
                if op == "alif":
                    s = fused_alif_scan(
                        xx, beta=BETA, rho=0.95, adapt_increment=0.1, reset="hard", backend=backend
                    )[0]
                else:
                    s = fused_gif_scan(xx, beta=BETA, levels=8, backend=backend)[0]
                s.backward(up)

            out[f"{op} {backend}"] = run
    return out


def rounds(fns: dict[str, Callable[[], None]], n: int) -> dict[str, list[float]]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", choices=["lif", "adaptive"], default="lif")
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--N", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--skip", nargs="*", default=["neuro_spiking reference (eager autograd)"])
    ap.add_argument("--json", default=None, help="also write every sample to this file")
    args = ap.parse_args()
    if args.rounds < 5:
        ap.error("--rounds must be >= 5 (a median and spread of at least five runs)")
    if args.threads:
        torch.set_num_threads(args.threads)
    header = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "revision": git_revision(),
        "shape": [args.T, args.B, args.N],
        "rounds": args.rounds,
        "suite": args.suite,
    }
    print(
        f"# {header['date']}; {header['machine']}; torch {header['torch']}; "
        f"threads {header['threads']}; revision {header['revision']}; suite {args.suite}; "
        f"T={args.T} B={args.B} N={args.N} fp32 forward+backward; {args.rounds} interleaved rounds "
        "after one warm-up; median [min–max]",
        flush=True,
    )
    if args.suite == "lif":
        x, up = make_inputs(args.T, args.B, args.N)
        fns = {k: v for k, v in variants(x, up).items() if k not in args.skip}
        pairs = LIF_RATIOS
    else:
        fns = adaptive_variants(args.T, args.B, args.N)
        pairs = ADAPTIVE_RATIOS
    times = rounds(fns, args.rounds)
    for name, ts in times.items():
        print(f"  {name:42s} {spread([t * 1e3 for t in ts])} ms", flush=True)
    ratios = {}
    for slow, fast in pairs:
        if slow in times and fast in times:
            r = [a / b for a, b in zip(times[slow], times[fast], strict=True)]
            ratios[f"{slow} / {fast}"] = r
            print(f"ratio {slow} / {fast}: {spread(r)}x", flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({**header, "times_s": times, "ratios": ratios}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
