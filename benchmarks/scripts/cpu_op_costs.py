"""Per-call costs of the elementwise ops the CPU spiking paths are built from, as ratios.

Two design choices in neuro-spiking rest on these numbers:

* the fused LIF/ALIF/GIF CPU backends use float arithmetic only, because comparisons that produce
  bool tensors, ``masked_fill`` and ``where`` cost several times a float ``mul`` on this kind of
  CPU (``[32, 4096]`` fp32, the per-step slice of the LIF benchmark);
* the network simulator steps its few candidate neurons in numpy, because on vectors of a few
  hundred elements a numpy call costs a fraction of a torch call (the loop is all overhead).

Usage: ``python benchmarks/scripts/cpu_op_costs.py [--threads N]``; prints microseconds per call
and the ratio to the reference op of each group, measured in this process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch


def per_call_us(fn: Callable[[], object], seconds: float = 0.3) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1e6


def report(title: str, ops: dict[str, Callable[[], object]]) -> None:
    times = {k: per_call_us(f) for k, f in ops.items()}
    ref_name = next(iter(times))
    print(f"{title} (ratio to {ref_name!r})")
    for k, t in times.items():
        print(f"  {k:40s} {t:9.2f} us  {t / times[ref_name]:6.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    h, v = torch.randn(32, 4096, generator=g), torch.randn(32, 4096, generator=g)
    s, out, mask = torch.empty_like(h), torch.empty_like(h), h > 0
    report(
        f"torch [32, 4096] fp32, {torch.get_num_threads()} threads",
        {
            "mul (float)": lambda: torch.mul(h, v, out=out),
            "addcmul (float)": lambda: torch.addcmul(h, h, s, value=-1.0),
            "ge into a float tensor": lambda: torch.ge(h, 1.0, out=s),
            "ge -> bool tensor": lambda: h >= 1.0,
            "masked_fill_ (bool mask)": lambda: out.masked_fill_(mask, 0.0),
            "where (bool mask)": lambda: torch.where(mask, 0.0, h),
        },
    )
    m = 700
    a, b = torch.randn(m, generator=g), torch.randn(m, generator=g)
    an, bn = a.numpy(), b.numpy()
    report(
        f"per-call overhead on {m} elements",
        {
            "torch add": lambda: a + b,
            "torch where": lambda: torch.where(a > 0, a, b),
            "numpy add": lambda: an + bn,
            "numpy where": lambda: np.where(an > 0, an, bn),
        },
    )


if __name__ == "__main__":
    main()
