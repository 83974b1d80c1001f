"""neuro-models targets: training and generation throughput of the Llama baseline vs ``transformers``.

Issue 3 / issue 11 targets, measured side by side in one process; rounds interleave the arms and
every figure is the **median** (with min-max spread) of ``--rounds`` rounds, never the best:

* training tokens/s (forward + backward + fused AdamW step, identical config, batch, precision and
  initial weights) of ``neuro_models.Llama`` ≥ 1.3x ``transformers.LlamaForCausalLM`` at d_model
  256 / 4 layers and 512 / 8 layers, batch 8 x 256, vocab 4096, tied embeddings. Each model takes
  its loss the way it trains best: ours through the trainer's default loss
  (``neuro_models.train.cross_entropy_loss``: ``Llama.loss``, ``lm_head`` fused into the
  cross-entropy; compiled, through ``neuro_models.train.compile_model`` as ``TrainConfig.compile``
  does, which compiles ``Llama.loss`` too), HF the standard way (``use_cache=False``,
  ``labels=targets, shift_labels=targets``: its fp32 cross-entropy inside its forward, hence
  inside the compiled graph). Four arms per size: each model eager and compiled; ratios
  eager/eager, compiled/compiled and best/best (each model at its setting of lower median step
  time). HF runs with its default attention (``sdpa``); ``--hf-eager-attention`` adds two HF arms
  with ``attn_implementation="eager"`` (plain matmul + softmax attention, which inductor fuses)
  and the ratio ``best_vs_best_any_hf_attention`` against the fastest of the four HF arms. A
  ratio's median and spread are over the per-round ratios of the paired, interleaved
  measurements. MFU = 6·N·tokens/s over the measured matmul peak;
* generation tokens/s with a KV cache (greedy, same prompt, same number of new tokens, fp32)
  ≥ 1.0x ``LlamaForCausalLM.generate``; both must emit the same tokens.

Precision: ``--precision auto`` uses bf16 autocast where ``neuro_models.train.cpu_supports_bf16()``
(AVX-512-BF16 / AMX), else fp32, for every arm; ``--precision bf16|fp32`` forces one.

Usage::

    nice -n 10 python benchmarks/scripts/models_throughput.py --threads 1 --rounds 5 --json out.json
    # seconds-long smoke check (figures meaningless):
    python benchmarks/scripts/models_throughput.py --sizes 64 --rounds 2 --steps 1 --no-compile \\
        --skip-generate
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

CLOCK: Callable[[], float] = time.perf_counter
# Rounds below this give no reportable figure (house rule: median of >= 5 interleaved rounds).
MIN_REPORT_ROUNDS = 5
TARGET_TRAIN_RATIO = 1.3
BATCH, SEQ_LEN = 8, 256


def matmul_gflops(n: int, dtype: torch.dtype, reps: int = 5) -> float:
    """Median-of-``reps`` GFLOP/s of an ``n x n x n`` matmul."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = CLOCK()
        a @ b
        times.append(CLOCK() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def interleaved_times(
    fns: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds (``CLOCK``) per call of each function in each of ``rounds`` alternating rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = CLOCK()
            fn()
            times[name].append(CLOCK() - t)
    return times


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired_ratio(slow: list[float], fast: list[float]) -> dict[str, float]:
    """``slow / fast`` per round (the two were timed back to back), summarized."""
    return spread([s / f for s, f in zip(slow, fast, strict=True)])


def train_config(d_model: int, vocab_size: int = 4096) -> Any:
    """The issue's presets at d 256 / 512; any other width is a 2-layer smoke-size model."""
    from neuro_models.config import LlamaConfig
    from neuro_models.params import cpu_medium, cpu_small, swiglu_hidden

    if d_model == 256:
        return cpu_small(vocab_size)
    if d_model == 512:
        return cpu_medium(vocab_size)
    heads = max(1, d_model // 64)
    return LlamaConfig(
        vocab_size=vocab_size, d_model=d_model, n_layers=2, n_heads=heads, n_kv_heads=heads,
        ffn_dim=swiglu_hidden(d_model), max_seq_len=1024,
    )  # fmt: skip


def train_step_fn(
    model: Any, tokens: torch.Tensor, hf: bool, bf16: bool, compiled: bool, steps: int
) -> Callable[[], float]:
    """``steps`` AdamW steps of ``model`` on ``tokens [B, T + 1]``; returns the last loss."""
    # The fused AdamW, as the trainer uses on one device: the fastest step for both models.
    opt = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True
    )
    model.train()
    inputs, targets = tokens[:, :-1], tokens[:, 1:].contiguous()

    from neuro_models.train import compile_model, cross_entropy_loss

    module: Any = model
    if compiled:
        module = torch.compile(model) if hf else compile_model(model)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if hf:
            # HF's own loss (logits -> fp32 cross-entropy) on targets given as already shifted.
            return module(input_ids=x, labels=y, shift_labels=y, use_cache=False).loss
        # The trainer's default loss: Llama.loss (compiled with the model when compiled).
        return cross_entropy_loss(module, x, y)[0]

    def step() -> float:
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(inputs, targets)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def bench_train(
    d_model: int,
    rounds: int,
    steps: int,
    bf16: bool,
    peak: float,
    compile_arms: bool,
    hf_eager_attention: bool = False,
) -> dict[str, Any]:
    from neuro_models.hf import to_hf
    from neuro_models.llama import Llama
    from neuro_models.params import count_parameters

    config = train_config(d_model)
    tokens = torch.randint(
        0, config.vocab_size, (BATCH, SEQ_LEN + 1), generator=torch.Generator().manual_seed(0)
    )
    settings = ("eager", "compiled") if compile_arms else ("eager",)
    arms: dict[str, Callable[[], float]] = {}
    for setting in settings:
        # A fresh pair from the same seed per setting: identical initial weights, own optimizer.
        torch.manual_seed(0)
        ours = Llama(config)
        theirs = to_hf(ours)
        compiled = setting == "compiled"
        arms[f"ours_{setting}"] = train_step_fn(ours, tokens, False, bf16, compiled, steps)
        arms[f"hf_{setting}"] = train_step_fn(theirs, tokens, True, bf16, compiled, steps)
        if hf_eager_attention:
            eager_attn = to_hf(ours)
            eager_attn.set_attn_implementation("eager")
            arms[f"hf-eager-attn_{setting}"] = train_step_fn(
                eager_attn, tokens, True, bf16, compiled, steps
            )
    times = interleaved_times(arms, rounds)
    n_params = count_parameters(config).total
    n_tokens = BATCH * SEQ_LEN * steps
    out: dict[str, Any] = {
        "d_model": d_model,
        "n_layers": config.n_layers,
        "params": n_params,
        "tokens_per_round": n_tokens,
        "arms": {},
    }
    for name, ts in times.items():
        tok_s = [n_tokens / t for t in ts]
        med = statistics.median(tok_s)
        out["arms"][name] = {
            "seconds": ts,
            "tok_s": spread(tok_s),
            "mfu_median": 6 * n_params * med / 1e9 / peak,
        }
    ratios = {}
    for setting in settings:
        ratios[f"{setting}_vs_{setting}"] = paired_ratio(
            times[f"hf_{setting}"], times[f"ours_{setting}"]
        )

    def best(model: str) -> str:
        return min(settings, key=lambda s: statistics.median(times[f"{model}_{s}"]))

    out["best_setting"] = {"ours": best("ours"), "hf": best("hf")}
    ours_best = times[f"ours_{best('ours')}"]
    ratios["best_vs_best"] = paired_ratio(times[f"hf_{best('hf')}"], ours_best)
    if hf_eager_attention:
        hf_any = min(
            (name for name in times if name.startswith("hf")),
            key=lambda name: statistics.median(times[name]),
        )
        out["best_setting"]["hf_any_attention"] = hf_any
        ratios["best_vs_best_any_hf_attention"] = paired_ratio(times[hf_any], ours_best)
    out["ratios"] = ratios
    return out


def format_train(r: dict[str, Any]) -> str:
    arms = ", ".join(
        f"{name} {a['tok_s']['median']:,.0f} tok/s [{a['tok_s']['min']:,.0f}-"
        f"{a['tok_s']['max']:,.0f}] (MFU {a['mfu_median']:.1%})"
        for name, a in r["arms"].items()
    )
    ratios = "; ".join(
        f"{name} {v['median']:.2f}x [{v['min']:.2f}-{v['max']:.2f}]"
        for name, v in r["ratios"].items()
    )
    best = r["best_setting"]
    any_attention = (
        f", HF any attention {best['hf_any_attention']}" if "hf_any_attention" in best else ""
    )
    return (
        f"train d={r['d_model']}/{r['n_layers']}L ({r['params'] / 1e6:.1f}M, batch "
        f"{BATCH}x{SEQ_LEN}): {arms}\n  ratios HF/ours time (median [min-max] of paired rounds): "
        f"{ratios}; best = ours {best['ours']}, HF {best['hf']}{any_attention} "
        f"(target >= {TARGET_TRAIN_RATIO}x)"
    )


def bench_generate(rounds: int, batch: int, prompt_len: int, new_tokens: int) -> dict[str, Any]:
    from neuro_models.generate import SamplingConfig, generate
    from neuro_models.hf import to_hf
    from neuro_models.llama import Llama
    from neuro_models.params import cpu_small

    torch.manual_seed(0)
    ours = Llama(cpu_small()).eval()
    theirs = to_hf(ours).eval()
    prompt = torch.randint(0, 4096, (batch, prompt_len), generator=torch.Generator().manual_seed(1))
    settings = SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)
    results: dict[str, list[list[int]]] = {}

    def run_ours() -> None:
        results["ours"] = generate(ours, prompt, settings)

    def run_hf() -> None:
        with torch.inference_mode():
            out = theirs.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
                eos_token_id=None,
            )
        results["hf"] = out[:, prompt_len:].tolist()

    times = interleaved_times({"ours": run_ours, "hf": run_hf}, rounds)
    same = results["ours"] == results["hf"]
    n = batch * new_tokens
    return {
        "batch": batch,
        "ours_tok_s": spread([n / t for t in times["ours"]]),
        "hf_tok_s": spread([n / t for t in times["hf"]]),
        "ratio": paired_ratio(times["hf"], times["ours"]),
        "same_tokens": same,
    }


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=MIN_REPORT_ROUNDS)
    ap.add_argument("--steps", type=int, default=3, help="training steps timed per arm per round")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    ap.add_argument(
        "--sizes", default="256,512", help="d_model values to train (256, 512: the issue's presets)"
    )
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile arms")
    ap.add_argument(
        "--hf-eager-attention",
        action="store_true",
        help='also time HF with attn_implementation="eager" (eager and compiled)',
    )
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time (with --threads 1, robust on a machine shared with other jobs)",
    )
    args = ap.parse_args()
    if args.rounds < 1 or args.steps < 1:
        ap.error("--rounds and --steps must be >= 1")
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from neuro_models.train import cpu_supports_bf16

    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_supports_bf16())
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_gflops(1024, dtype)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "clock": args.clock,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "precision": "bf16-autocast" if bf16 else "fp32",
        "precision_requested": args.precision,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "statistic": "median [min-max] over interleaved rounds",
        "peak_1024_gflops": peak,
    }
    print(
        f"{report['date']} {report['machine']['cpu']}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}, {args.clock} clock, {report['threads']} threads, "
        f"{report['machine']['cpu_capability']}; precision {report['precision']} "
        f"(requested {args.precision}); 1024^3 {dtype} matmul {peak:.1f} GFLOP/s; "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    if args.rounds < MIN_REPORT_ROUNDS:
        print(
            f"note: fewer than {MIN_REPORT_ROUNDS} rounds: a smoke check, not a reportable figure"
        )
    if not args.skip_train:
        rows = []
        for d in (int(s) for s in args.sizes.split(",")):
            r = bench_train(
                d, args.rounds, args.steps, bf16, peak, not args.no_compile, args.hf_eager_attention
            )
            rows.append(r)
            print(format_train(r), flush=True)
        report["train"] = rows
    if not args.skip_generate:
        rows = []
        for batch in (1, 8):
            g = bench_generate(args.rounds, batch, prompt_len=32, new_tokens=64)
            rows.append(g)
            print(
                f"generate d=256, batch {batch}, prompt 32, 64 new greedy fp32: ours "
                f"{g['ours_tok_s']['median']:,.0f} tok/s, HF {g['hf_tok_s']['median']:,.0f} "
                f"tok/s; ratio {g['ratio']['median']:.2f}x [{g['ratio']['min']:.2f}-"
                f"{g['ratio']['max']:.2f}] (target >= 1.0x); identical tokens: {g['same_tokens']}"
            )
        report["generate"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
