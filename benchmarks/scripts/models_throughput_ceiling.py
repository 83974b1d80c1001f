"""Ceiling of the issue-11 training-throughput ratio: the matmuls alone vs HF's whole step.

``models_throughput.py`` compares the training step of ``neuro_models.Llama`` with that of
``transformers.LlamaForCausalLM`` (batch 8 x 256, vocab 4096, d 256 / 4 layers and d 512 / 8
layers). However fast our non-matmul code becomes, our step cannot take less time than the
matrix multiplications the model's arithmetic requires. This script times, in one process and
interleaved (median of ``--rounds``, single thread and process CPU time by default):

* **gemm**: only those matmuls, in the shapes and dtypes ``torch.autocast`` gives them (bf16
  under bf16 autocast, fp32 otherwise), with the operand layouts autograd uses
  (``y = x Wᵀ``, ``∂x = ∂y W``, ``∂W = ∂yᵀ x``), per training step of ``N = B·T`` tokens:

    - per layer, the fused ``qkv`` (d -> (H + 2·KV)·d_h), ``out`` (H·d_h -> d), ``gate_up``
      (d -> 2F) and ``down`` (F -> d) projections: forward + the two backward GEMMs each;
    - the ``lm_head`` (d -> V): forward + the two backward GEMMs;
    - attention per layer: ``S = Q Kᵀ`` and ``O = P V`` forward, ``∂P = ∂O Vᵀ``, ``∂V = Pᵀ ∂O``,
      ``∂Q = ∂S K``, ``∂K = ∂Sᵀ Q`` backward, as ``[B·H, T, T]`` batched matmuls, of which a
      causal mask needs only the lower triangle: their time is counted at ``causal_fraction``
      (default 0.5, the ideal skip of every masked product) of the full products' time;

* **hf_eager / hf_compiled**: HF's full training step (forward, its fp32 cross-entropy, backward,
  fused AdamW), exactly as ``models_throughput.py`` measures it (its ``train_step_fn``); with
  ``--hf-eager-attention`` also with ``attn_implementation="eager"``.

It prints ``ceiling = min(hf_eager, hf_compiled) / gemm``, the best-vs-best ratio ours would
reach if everything but the matmuls (norms, RoPE, softmax, SiLU, the cross-entropy, the
optimizer, the framework) took no time at all. A ceiling below the 1.3x target means the target
cannot be met on this machine at this precision without changing the model's arithmetic (fewer or
cheaper matmuls), however the rest is engineered.

Usage::

    /tmp/p3/slot.sh python benchmarks/scripts/models_throughput_ceiling.py --rounds 5 \\
        --precision bf16,fp32 --json ceiling.json
    # seconds-long smoke check (figures meaningless):
    python benchmarks/scripts/models_throughput_ceiling.py --sizes 64 --rounds 2 --no-compile
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_throughput as mt


def gemm_shapes(config: Any) -> list[tuple[str, int, int, int]]:
    """``(name, count, in_features, out_features)`` of every projection of one training step."""
    hd = config.d_model // config.n_heads
    kv = config.n_kv_heads
    d, f, v, layers = config.d_model, config.ffn_dim, config.vocab_size, config.n_layers
    return [
        ("qkv", layers, d, (config.n_heads + 2 * kv) * hd),
        ("out", layers, config.n_heads * hd, d),
        ("gate_up", layers, d, 2 * f),
        ("down", layers, f, d),
        ("lm_head", 1, d, v),
    ]


def gemm_step(
    config: Any, batch: int, seq_len: int, dtype: torch.dtype
) -> tuple[dict[str, Callable[[], None]], dict[str, float]]:
    """One callable per matmul group (all of its forward and backward products) and its FLOPs."""
    n = batch * seq_len
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(dtype)

    fns: dict[str, Callable[[], None]] = {}
    flops: dict[str, float] = {}
    for name, count, fin, fout in gemm_shapes(config):
        x, w, gy = rand(n, fin), rand(fout, fin), rand(n, fout)

        def linear(x: torch.Tensor = x, w: torch.Tensor = w, gy: torch.Tensor = gy) -> None:
            torch.nn.functional.linear(x, w)  # y = x Wᵀ
            torch.mm(gy, w)  # ∂x = ∂y W
            torch.mm(gy.t(), x)  # ∂W = ∂yᵀ x

        def repeated(fn: Callable[[], None] = linear, count: int = count) -> None:
            for _ in range(count):
                fn()

        fns[name] = repeated
        flops[name] = 3 * 2.0 * n * fin * fout * count
    h, hd, t = config.n_heads, config.d_model // config.n_heads, seq_len
    q, k, vv, go = (rand(batch * h, t, hd) for _ in range(4))
    p, gs = rand(batch * h, t, t), rand(batch * h, t, t)

    def attention() -> None:
        for _ in range(config.n_layers):
            torch.bmm(q, k.transpose(1, 2))  # S = Q Kᵀ
            torch.bmm(p, vv)  # O = P V
            torch.bmm(go, vv.transpose(1, 2))  # ∂P = ∂O Vᵀ
            torch.bmm(p.transpose(1, 2), go)  # ∂V = Pᵀ ∂O
            torch.bmm(gs, k)  # ∂Q = ∂S K
            torch.bmm(gs.transpose(1, 2), q)  # ∂K = ∂Sᵀ Q

    fns["attention_full"] = attention
    flops["attention_full"] = 6 * 2.0 * batch * h * t * t * hd * config.n_layers
    return fns, flops


def bench(
    d_model: int,
    rounds: int,
    bf16: bool,
    compile_hf: bool,
    causal_fraction: float,
    hf_eager_attention: bool = False,
) -> dict[str, Any]:
    from neuro_models.hf import to_hf
    from neuro_models.llama import Llama

    config = mt.train_config(d_model)
    dtype = torch.bfloat16 if bf16 else torch.float32
    gemms, flops = gemm_step(config, mt.BATCH, mt.SEQ_LEN, dtype)
    tokens = torch.randint(
        0, config.vocab_size, (mt.BATCH, mt.SEQ_LEN + 1), generator=torch.Generator().manual_seed(0)
    )
    arms: dict[str, Callable[[], object]] = dict(gemms)
    settings = ("eager", "compiled") if compile_hf else ("eager",)
    for setting in settings:
        torch.manual_seed(0)
        theirs = to_hf(Llama(config))
        arms[f"hf_{setting}"] = mt.train_step_fn(
            theirs, tokens, True, bf16, setting == "compiled", 1
        )
        if hf_eager_attention:
            theirs = to_hf(Llama(config))
            theirs.set_attn_implementation("eager")
            arms[f"hf-eager-attn_{setting}"] = mt.train_step_fn(
                theirs, tokens, True, bf16, setting == "compiled", 1
            )
    times = mt.interleaved_times(arms, rounds, warmup=2)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    linear = sum(med[name] for name in flops if name != "attention_full")
    gemm = linear + causal_fraction * med["attention_full"]
    hf_best = min((f"hf_{s}" for s in settings), key=med.__getitem__)
    hf_any = min((name for name in med if name.startswith("hf")), key=med.__getitem__)
    total_flops = sum(f for name, f in flops.items() if name != "attention_full")
    total_flops += causal_fraction * flops["attention_full"]
    # Per-round ceilings (the arms were timed back to back in each round).
    gemm_rounds = [
        sum(times[name][i] for name in flops if name != "attention_full")
        + causal_fraction * times["attention_full"][i]
        for i in range(rounds)
    ]
    return {
        "d_model": d_model,
        "n_layers": config.n_layers,
        "dtype": str(dtype),
        "seconds_median": med,
        "seconds": times,
        "gflop": {name: f / 1e9 for name, f in flops.items()},
        "gemm_seconds": gemm,
        "gemm_gflops": total_flops / gemm / 1e9,
        "causal_fraction": causal_fraction,
        "hf_best": hf_best,
        "hf_best_seconds": med[hf_best],
        "hf_best_tok_s": mt.BATCH * mt.SEQ_LEN / med[hf_best],
        "gemm_only_tok_s": mt.BATCH * mt.SEQ_LEN / gemm,
        "ceiling": med[hf_best] / gemm,
        "ceiling_rounds": mt.spread([h / g for h, g in zip(times[hf_best], gemm_rounds)]),
        "gemm_share_of_hf_step": gemm / med[hf_best],
        "hf_any_attention_best": hf_any,
        "ceiling_vs_hf_any_attention": med[hf_any] / gemm,
    }


def format_row(r: dict[str, Any]) -> str:
    med = r["seconds_median"]
    parts = ", ".join(
        f"{name} {1e3 * med[name]:.1f} ms ({r['gflop'][name]:.2f} GFLOP)" for name in r["gflop"]
    )
    hf = ", ".join(f"{name} {1e3 * med[name]:.1f} ms" for name in med if name.startswith("hf_"))
    c = r["ceiling_rounds"]
    return (
        f"d={r['d_model']}/{r['n_layers']}L {r['dtype']}: matmuls {parts}\n"
        f"  GEMM-only step {1e3 * r['gemm_seconds']:.1f} ms (attention at "
        f"{r['causal_fraction']:.2f} of full; {r['gemm_gflops']:.0f} GFLOP/s, "
        f"{r['gemm_only_tok_s']:,.0f} tok/s); HF step {hf}; best HF = {r['hf_best']} "
        f"({r['hf_best_tok_s']:,.0f} tok/s)\n"
        f"  CEILING best-vs-best = HF best step / GEMM-only = {r['ceiling']:.2f}x "
        f"(per-round median {c['median']:.2f} [{c['min']:.2f}-{c['max']:.2f}]); matmuls are "
        f"{r['gemm_share_of_hf_step']:.0%} of HF's step; target {mt.TARGET_TRAIN_RATIO}x "
        f"{'reachable in principle' if r['ceiling'] >= mt.TARGET_TRAIN_RATIO else 'NOT reachable'}"
        + (
            f"\n  ceiling against the fastest HF arm of any attention ({r['hf_any_attention_best']})"
            f": {r['ceiling_vs_hf_any_attention']:.2f}x"
            if r["hf_any_attention_best"] != r["hf_best"]
            else ""
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--rounds", type=int, default=mt.MIN_REPORT_ROUNDS)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--precision", default="bf16,fp32", help="comma list of bf16, fp32")
    ap.add_argument("--causal-fraction", type=float, default=0.5)
    ap.add_argument("--no-compile", action="store_true", help="skip HF's torch.compile arm")
    ap.add_argument(
        "--hf-eager-attention",
        action="store_true",
        help='also time HF with attn_implementation="eager" and give the ceiling against it',
    )
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="cpu",
        help="cpu (default): process CPU time, robust with one thread on a machine shared with "
        "other jobs; wall: elapsed time",
    )
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not 0.0 <= args.causal_fraction <= 1.0:
        ap.error("--causal-fraction must be in [0, 1]")
    precisions = args.precision.split(",")
    if not set(precisions) <= {"bf16", "fp32"}:
        ap.error(f"--precision must list bf16 and/or fp32, got {args.precision}")
    mt.CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    import transformers

    from neuro_models.train import cpu_supports_bf16

    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": mt.machine(),
        "cpu_supports_bf16": cpu_supports_bf16(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "rounds": args.rounds,
        "statistic": "median over interleaved rounds",
        "rows": [],
    }
    print(
        f"{report['date']} {report['machine']['cpu']} ({report['machine']['cpu_capability']}, "
        f"AVX-512 BF16/AMX: {report['cpu_supports_bf16']}); torch {torch.__version__}, "
        f"transformers {transformers.__version__}; {report['threads']} thread(s), {args.clock} clock; median of "
        f"{args.rounds} interleaved rounds; batch {mt.BATCH}x{mt.SEQ_LEN}"
    )
    for precision in precisions:
        bf16 = precision == "bf16"
        dtype = torch.bfloat16 if bf16 else torch.float32
        label = "bf16 autocast" if bf16 else "fp32"
        if not bf16 and report["cpu_supports_bf16"]:
            label += " (forced: this machine has AVX-512 BF16)"
        peak = mt.matmul_gflops(1024, dtype)
        print(f"precision {label}: 1024^3 {dtype} matmul {peak:.0f} GFLOP/s")
        for d in (int(s) for s in args.sizes.split(",")):
            r = bench(
                d,
                args.rounds,
                bf16,
                not args.no_compile,
                args.causal_fraction,
                args.hf_eager_attention,
            )
            r["precision"] = label
            r["peak_1024_gflops"] = peak
            report["rows"].append(r)
            print(format_row(r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
