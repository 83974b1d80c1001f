"""CPU targets of issue 4 for ``modulated_attention``, measured as ratios in one process.

Targets (T=2048, H=8, D=64, fp32, batch 1):
  1. all features on (β, key bias, pair gate W=512, per-token head gain, entropy): the blockwise
     CPU path is ≥ 3× faster forward+backward than the materialized implementation
     (``backend="reference"``: the spec, which builds [B, H, T, T] logits, gate, probabilities and
     entropy terms and lets autograd keep them), and
  2. uses ≤ 1/4 of its peak memory;
  3. features off: ``modulated_attention`` (backend "auto") is within 1.2× of plain causal SDPA.

Time: the candidates run interleaved (A B A B ...) after one warm-up each, and we report the
median of ``--repeats`` forward+backward passes, so load from other processes hits both alike.
Memory: each case runs once in a fresh subprocess; we report peak RSS (VmHWM, reset through
``/proc/self/clear_refs`` just before the call) minus the RSS just before the call, with inputs already allocated, i.e. the extra memory the forward and
backward need (activations saved for backward, temporaries, gradients).

Run:  python benchmarks/scripts/attention_targets.py [--t 2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def make_case(name: str, t: int, h: int, d: int, seed: int = 0):  # type: ignore[no-untyped-def]
    from neuro_attention import modulated_attention

    g = torch.Generator().manual_seed(seed)

    def r(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g).requires_grad_(True)

    q, k, v = r(1, t, h, d), r(1, t, h, d), r(1, t, h, d)
    beta = (torch.rand(1, t, h, generator=g) + 0.5).requires_grad_(True)
    kb, ga, gb, gain = r(1, t, h), r(1, t, h), r(1, t, h), r(1, t, h)
    up = torch.randn(1, t, h, d, generator=g)
    feats = dict(query_scale=beta, key_bias=kb, pair_gate=(ga, gb, 512), head_gain=gain)

    if name in ("blockwise", "reference"):

        def step() -> None:
            out, ent = modulated_attention(q, k, v, **feats, return_entropy=True, backend=name)  # type: ignore[arg-type]
            ((out * up).sum() + ent.sum()).backward()

    elif name == "auto_off":

        def step() -> None:
            (modulated_attention(q, k, v) * up).sum().backward()

    elif name == "sdpa_off":

        def step() -> None:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
            )
            (out.transpose(1, 2) * up).sum().backward()

    else:
        raise ValueError(f"unknown case {name!r}")
    return step


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_child(name: str, t: int, h: int, d: int) -> None:
    step = make_case(name, t, h, d)
    # reset the peak-RSS watermark (VmHWM) to the current RSS; ru_maxrss would carry the parent's
    # peak across fork/exec
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    step()
    peak = _status_kib("VmHWM")
    print(json.dumps({"extra_peak_bytes": (peak - before) * 1024}))


def peak_memory(name: str, t: int, h: int, d: int) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "--t", str(t), "--h", str(h), "--d", str(d)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["extra_peak_bytes"])


def median_times(names: list[str], t: int, h: int, d: int, repeats: int) -> dict[str, float]:
    steps = {n: make_case(n, t, h, d) for n in names}
    for s in steps.values():
        s()
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for n, s in steps.items():
            t0 = time.perf_counter()
            s()
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--t", type=int, default=2048)
    ap.add_argument("--h", type=int, default=8)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.child:
        peak_memory_child(a.child, a.t, a.h, a.d)
        return
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, T={a.t} H={a.h} D={a.d} fp32 batch 1"
    )
    tm = median_times(["blockwise", "reference"], a.t, a.h, a.d, a.repeats)
    print(
        f"all features, fwd+bwd median s: blockwise {tm['blockwise']:.3f}  materialized {tm['reference']:.3f}"
        f"  -> speedup {tm['reference'] / tm['blockwise']:.2f}x (target >= 3)"
    )
    mb, mr = peak_memory("blockwise", a.t, a.h, a.d), peak_memory("reference", a.t, a.h, a.d)
    print(
        f"all features, extra peak RSS MiB: blockwise {mb / 2**20:.0f}  materialized {mr / 2**20:.0f}"
        f"  -> ratio {mb / mr:.3f} (target <= 0.25)"
    )
    to = median_times(["auto_off", "sdpa_off"], a.t, a.h, a.d, a.repeats)
    print(
        f"features off, fwd+bwd median s: modulated_attention {to['auto_off']:.3f}  SDPA {to['sdpa_off']:.3f}"
        f"  -> ratio {to['auto_off'] / to['sdpa_off']:.2f} (target <= 1.2)"
    )


if __name__ == "__main__":
    main()
