"""Causal attention on CPU: SDPA vs the written-out softmax attention of ``causal_attention``.

``neuro_models.decoder.functional.causal_attention`` writes the attention out (scores, mask, fp32
softmax, two batched matmuls) for bf16/fp16 on CPU and keeps ``F.scaled_dot_product_attention``
otherwise. This script times forward + backward (random upstream gradient) of both, eager and
under ``torch.compile``, at the shapes of the throughput benchmark (batch 8, T 256, d_h 64; 4
heads x 4 layers as d 256, 8 heads x 8 layers as d 512), in one process; each figure is the
median [min-max] of ``--rounds`` interleaved rounds (process CPU time, one thread by default).

Usage::

    /tmp/p3/slot.sh python benchmarks/scripts/models_attention_cpu.py --rounds 5
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_throughput as mt

from neuro_models.decoder.functional import written_out_attention as written_out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def run(
    fn: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    layers: int,
) -> None:
    """Forward + backward of ``fn`` once per layer."""
    for _ in range(layers):
        fn(q, k, v).backward(grad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=mt.MIN_REPORT_ROUNDS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time
    print(
        f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} "
        f"{mt.machine()['cpu']} ({torch.backends.cpu.get_cpu_capability()}); torch "
        f"{torch.__version__}; {torch.get_num_threads()} thread(s), cpu clock; median [min-max] "
        f"of {args.rounds} interleaved rounds; fwd+bwd, batch 8, T 256, d_h 64"
    )
    for dtype in (torch.bfloat16, torch.float32):
        for heads, layers in ((4, 4), (8, 8)):
            g = torch.Generator().manual_seed(0)
            q, k, v = (
                torch.randn(8, heads, 256, 64, generator=g).to(dtype).requires_grad_()
                for _ in range(3)
            )
            grad = torch.randn(8, heads, 256, 64, generator=g).to(dtype)
            fns: dict[str, Callable[..., torch.Tensor]] = {
                "sdpa_eager": sdpa,
                "written_eager": written_out,
                "sdpa_compiled": torch.compile(sdpa),
                "written_compiled": torch.compile(written_out),
            }
            for fn in fns.values():
                run(fn, q, k, v, grad, layers)
            times: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    t = clock()
                    run(fn, q, k, v, grad, layers)
                    times[name].append(clock() - t)
            parts = ", ".join(
                f"{name} {1e3 * statistics.median(ts):.1f} ms [{1e3 * min(ts):.1f}-"
                f"{1e3 * max(ts):.1f}]"
                for name, ts in times.items()
            )
            ratios = ", ".join(
                f"{mode} sdpa/written "
                f"{mt.paired_ratio(times[f'sdpa_{mode}'], times[f'written_{mode}'])['median']:.2f}x"
                for mode in ("eager", "compiled")
            )
            print(f"{dtype} {heads} heads x {layers} layers: {parts}; {ratios}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
