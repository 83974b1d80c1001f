"""Issue-5 GPU target for neuro-spiking: fused LIF forward+backward on CUDA.

Target (T=32, N = 4,194,304 neurons per step, fp16, hard reset, ATan surrogate):

* ≥ 80 % of the memory-bandwidth floor: the forward reads x and writes s and the saved charge
  h, the backward reads ∂L/∂s and h and writes ∂L/∂x: 6·T·N·bytes.
  The floor time is that traffic divided by the bandwidth a plain device copy achieves on the
  same GPU (``--bandwidth`` overrides it with a datasheet figure); we report floor / measured.
* ≥ 1.5× faster than SpikingJelly's Triton backend (``SJ_LIF_CUDA_IMPLEMENTATION=triton``,
  ``LIFNode(step_mode="m")`` with the matched parameterization of ``spiking_targets.py``).

Timing: CUDA events, median of ``--repeats`` after warm-up. The result (with the date, GPU model,
driver and library versions) is printed and written as JSON to ``--out``; store it under
``benchmarks/results/gpu/`` when it comes from a real GPU.

``--dry-run`` runs the same code at a tiny size on the CPU with ``TRITON_INTERPRET=1`` (no timing
claims; it checks that the script and both variants run), which is what CI can do.

Usage: ``python benchmarks/scripts/spiking_gpu_targets.py [--T 32 --B 32 --N 131072] [--out F]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--N", type=int, default=131072, help="neurons per sample (B·N = 4,194,304)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--bandwidth", type=float, default=None, help="GB/s instead of a measured copy")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    ap.add_argument("--dry-run", action="store_true", help="tiny CPU run under TRITON_INTERPRET=1")
    return ap.parse_args()


def main() -> None:
    args = _parse()
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"
        args.T, args.B, args.N, args.repeats = 5, 2, 64, 2
    os.environ.setdefault("SJ_LIF_CUDA_IMPLEMENTATION", "triton")
    import torch
    from spiking_targets import BETA, spikingjelly_lif  # this script's folder

    from neuro_spiking.ops.lif_scan import fused_lif_scan

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("spiking_gpu_targets.py needs a CUDA GPU (or --dry-run to test the script on CPU)")
    device = torch.device("cpu" if args.dry_run else "cuda")
    dtype = torch.float32 if args.dry_run else torch.float16
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.T, args.B, args.N)
    x = (torch.rand(shape, generator=g, device=device) * 0.3).to(dtype)
    up = torch.randn(shape, generator=g, device=device).to(dtype)

    def ours() -> None:
        xx = x.detach().requires_grad_()
        out = fused_lif_scan(xx, beta=BETA, reset="hard", backend="triton")
        out.spikes.backward(up)

    variants: dict[str, Callable[[], None]] = {"neuro_spiking triton": ours}
    try:
        node = spikingjelly_lif().to(device)

        def sj() -> None:
            node.reset()
            xx = x.detach().requires_grad_()
            node(xx).backward(up)

        impl = os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] if device.type == "cuda" else "cpu op"
        variants[f"SpikingJelly LIFNode ({impl})"] = sj
    except ImportError:
        print("spikingjelly not installed: only our kernel is timed", file=sys.stderr)

    times = {name: _time(fn, args.repeats, device) for name, fn in variants.items()}
    elem = args.T * args.B * args.N
    floor_bytes = 6 * elem * x.element_size()
    bandwidth = args.bandwidth * 1e9 if args.bandwidth else _copy_bandwidth(x, device)
    floor_s = floor_bytes / bandwidth
    ours_s = times["neuro_spiking triton"]
    result: dict[str, object] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "shape_T_B_N": list(shape),
        "dtype": str(dtype),
        "median_seconds": times,
        "bandwidth_GBps": bandwidth / 1e9,
        "bandwidth_source": "argument" if args.bandwidth else "measured device copy",
        "floor_seconds": floor_s,
        "fraction_of_floor": floor_s / ours_s,
    }
    try:
        import triton

        result["triton"] = triton.__version__
    except ImportError:
        pass
    for name, t in times.items():
        print(f"  {name:58s} {t * 1e3:9.3f} ms")
    print(
        f"bandwidth floor 6·T·N·bytes = {floor_bytes / 1e6:.1f} MB at {bandwidth / 1e9:.0f} GB/s "
        f"= {floor_s * 1e3:.3f} ms; ours reaches {floor_s / ours_s:.1%} of it (target ≥ 80%)"
    )
    for name, t in times.items():
        if name != "neuro_spiking triton":
            result["speedup_vs_spikingjelly"] = t / ours_s
            print(f"speedup vs {name}: {t / ours_s:.2f}x (target ≥ 1.5x)")
    if args.dry_run:
        print("dry run: tiny CPU shapes under the Triton interpreter; the figures mean nothing")
    if args.out:
        tmp = f"{args.out}.tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.out)


def _time(fn: Callable[[], None], repeats: int, device: object) -> float:
    import time

    import torch

    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        if getattr(device, "type", "cpu") == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _copy_bandwidth(x: object, device: object) -> float:
    """Bytes per second of a plain device-to-device copy of ``x`` (read + write)."""
    import torch

    assert isinstance(x, torch.Tensor)
    dst = torch.empty_like(x)
    t = _time(lambda: dst.copy_(x), 10, device)
    return 2 * x.numel() * x.element_size() / t


if __name__ == "__main__":
    main()
