"""Issue-5 CPU targets for neuro-spiking, measured side by side in one process.

Multi-step LIF forward+backward at T=64, B=32, N=4096, fp32 (hard reset to 0, β = 0.9 — the
matched parameterization of snnTorch ``Leaky(beta=0.9, reset_mechanism="zero")`` and
SpikingJelly ``LIFNode(tau=10, decay_input=False, v_reset=0, step_mode="m")``):

* time: every variant runs in this process, interleaved, best of ``--repeats`` after a warm-up;
  ratios are peer time / our time (target: ≥ 5× snnTorch, ≥ 1.5× SpikingJelly).
* peak memory: each variant runs in a fresh subprocess; we report the rise of the peak RSS
  (``VmHWM``, reset through ``/proc/self/clear_refs``) above the RSS after the inputs are built
  (target: ours ≤ SpikingJelly).

Peers are optional: install them with
``pip install -c constraints/cpu.txt snntorch loguru && pip install --no-deps spikingjelly``.

Usage: ``python benchmarks/scripts/spiking_targets.py [--T 64 --B 32 --N 4096 --repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable

import torch

BETA = 0.9


def make_inputs(T: int, B: int, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, B, N, generator=g) * 0.3
    up = torch.randn(T, B, N, generator=g)
    return x, up


def variants(x: torch.Tensor, up: torch.Tensor) -> dict[str, Callable[[], None]]:
    from neuro_spiking.ops.lif_scan import fused_lif_scan

    def ours(backend: str) -> Callable[[], None]:
        def run() -> None:
            xx = x.detach().requires_grad_()
            out = fused_lif_scan(xx, beta=BETA, reset="hard", backend=backend)
            out.spikes.backward(up)

        return run

    out: dict[str, Callable[[], None]] = {
        "neuro_spiking fused": ours("fused"),
        "neuro_spiking compile": ours("compile"),
        "neuro_spiking reference (eager autograd)": ours("reference"),
    }
    try:
        import snntorch

        def snn() -> None:
            lif = snntorch.Leaky(beta=BETA, reset_mechanism="zero")
            mem = lif.init_leaky()
            xx = x.detach().requires_grad_()
            spikes = []
            for t in range(xx.shape[0]):
                s, mem = lif(xx[t], mem)
                spikes.append(s)
            torch.stack(spikes).backward(up)

        out["snnTorch Leaky loop"] = snn
    except ImportError:
        pass
    try:
        from spikingjelly.activation_based import neuron, surrogate

        def sj() -> None:
            node = neuron.LIFNode(
                tau=1 / (1 - BETA),
                decay_input=False,
                v_reset=0.0,
                step_mode="m",
                surrogate_function=surrogate.ATan(),
            )
            xx = x.detach().requires_grad_()
            node(xx).backward(up)

        out["SpikingJelly LIFNode torch"] = sj
    except ImportError:
        pass
    return out


def time_all(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_memory_child(name: str, T: int, B: int, N: int) -> float:
    """In a subprocess: MB of peak RSS above the RSS once inputs exist (warm-up run first)."""
    x, up = make_inputs(T, B, N)
    fn = variants(x, up)[name]
    fn()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_kb("VmRSS")
    fn()
    return (_proc_kb("VmHWM") - before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--N", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", nargs="*", default=["neuro_spiking reference (eager autograd)"])
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(peak_memory_child(args.memory_child, args.T, args.B, args.N)))
        return
    x, up = make_inputs(args.T, args.B, args.N)
    fns = {k: v for k, v in variants(x, up).items() if k not in args.skip}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"T={args.T} B={args.B} N={args.N} fp32, forward+backward, best of {args.repeats}"
    )
    times = time_all(fns, args.repeats)
    mem = {}
    for name in fns:
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            name,
            "--T",
            str(args.T),
            "--B",
            str(args.B),
            "--N",
            str(args.N),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        mem[name] = float(res.stdout.strip().splitlines()[-1])
    ours = times["neuro_spiking fused"]
    for name in fns:
        print(
            f"  {name:42s} {times[name] * 1e3:9.1f} ms   peak +{mem[name]:7.1f} MB   "
            f"({times[name] / ours:5.2f}x our fused time)"
        )
    for peer, target in [("snnTorch Leaky loop", 5.0), ("SpikingJelly LIFNode torch", 1.5)]:
        if peer in times:
            for ours_name in ("neuro_spiking fused", "neuro_spiking compile"):
                if ours_name in times:
                    r = times[peer] / times[ours_name]
                    print(
                        f"speedup {ours_name} vs {peer}: {r:.2f}x (target ≥ {target}x) "
                        f"{'MET' if r >= target else 'NOT MET'}"
                    )
    if "SpikingJelly LIFNode torch" in mem:
        for ours_name in ("neuro_spiking fused", "neuro_spiking compile"):
            if ours_name in mem:
                ok = mem[ours_name] <= mem["SpikingJelly LIFNode torch"]
                print(
                    f"peak memory {ours_name} {mem[ours_name]:.1f} MB vs SpikingJelly "
                    f"{mem['SpikingJelly LIFNode torch']:.1f} MB: {'MET' if ok else 'NOT MET'}"
                )


if __name__ == "__main__":
    main()
