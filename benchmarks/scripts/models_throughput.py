"""neuro-models targets: training and generation throughput of the Llama baseline vs ``transformers``.

Issue 3 targets, measured side by side in one process (rounds interleave the two arms; best of
``--rounds`` per arm):

* training tokens/s (forward + backward + AdamW step, identical config, batch, precision and
  weights; loss = fp32 cross-entropy on the logits outside both models) of ``neuro_models.Llama``
  ≥ 1.3x ``transformers.LlamaForCausalLM`` at d_model 256 / 4 layers and 512 / 8 layers, batch
  8 x 256, vocab 4096, tied embeddings; MFU = 6·N·tokens/s over the measured matmul peak;
* generation tokens/s with a KV cache (greedy, same prompt, same number of new tokens, fp32)
  ≥ 1.0x ``LlamaForCausalLM.generate``; both must emit the same tokens.

Precision: ``--precision auto`` uses bf16 autocast when a bf16 matmul is faster than fp32 on this
CPU (AVX-512 BF16 / AMX machines), else fp32 for both arms (AVX2 machines emulate bf16 ~50x slower).

Usage::

    nice -n 10 python benchmarks/scripts/models_throughput.py [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

CLOCK: Callable[[], float] = time.perf_counter
COMPILE = False


def matmul_gflops(n: int, dtype: torch.dtype, reps: int = 3) -> float:
    """Best-of-``reps`` GFLOP/s of an ``n x n x n`` matmul."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = CLOCK()
        a @ b
        best = min(best, CLOCK() - t)
    return 2 * n**3 / best / 1e9


def interleaved_best(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best time (``CLOCK``) per function over ``rounds`` rounds that alternate the functions."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = CLOCK()
            fn()
            best[name] = min(best[name], CLOCK() - t)
    return best


def train_step_fn(model: Any, tokens: torch.Tensor, hf: bool, bf16: bool) -> Callable:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            inputs = tokens[:, :-1]
            logits = model(input_ids=inputs).logits if hf else model(inputs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def bench_train(d_model: int, rounds: int, bf16: bool, peak: float) -> dict[str, float]:
    from neuro_models.hf import to_hf
    from neuro_models.llama import Llama
    from neuro_models.params import count_parameters, cpu_medium, cpu_small

    config = {256: cpu_small, 512: cpu_medium}[d_model]()
    torch.manual_seed(0)
    ours = Llama(config)
    theirs = to_hf(ours)
    tokens = torch.randint(
        0, config.vocab_size, (8, 257), generator=torch.Generator().manual_seed(0)
    )
    n_tokens = 8 * 256
    arms = {
        "ours": train_step_fn(ours, tokens, hf=False, bf16=bf16),
        "hf": train_step_fn(theirs, tokens, hf=True, bf16=bf16),
    }
    if COMPILE:
        twin = Llama(config)
        twin.load_state_dict(ours.state_dict())
        arms["compiled"] = train_step_fn(torch.compile(twin), tokens, hf=False, bf16=bf16)
    best = interleaved_best(arms, rounds)
    n_params = count_parameters(config).total
    out = {"d_model": d_model, "params": n_params}
    for name, t in best.items():
        out[f"{name}_tok_s"] = n_tokens / t
        out[f"{name}_mfu"] = 6 * n_params * n_tokens / t / 1e9 / peak
    out["ratio"] = best["hf"] / best["ours"]
    if "compiled" in best:
        out["compiled_ratio"] = best["hf"] / best["compiled"]
    return out


def bench_generate(rounds: int, batch: int, prompt_len: int, new_tokens: int) -> dict[str, float]:
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

    best = interleaved_best({"ours": run_ours, "hf": run_hf}, rounds)
    same = results["ours"] == results["hf"]
    n = batch * new_tokens
    return {
        "batch": batch,
        "ours_tok_s": n / best["ours"],
        "hf_tok_s": n / best["hf"],
        "ratio": best["hf"] / best["ours"],
        "same_tokens": float(same),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    ap.add_argument("--sizes", default="256,512", help="d_model values to train")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time (with --threads 1, robust on a machine shared with other jobs)",
    )
    ap.add_argument("--compile", action="store_true", help="add a torch.compile arm of ours")
    args = ap.parse_args()
    global CLOCK, COMPILE
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    COMPILE = args.compile
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    probe = {dt: matmul_gflops(512, dt) for dt in (torch.float32, torch.bfloat16)}
    bf16 = args.precision == "bf16" or (
        args.precision == "auto" and probe[torch.bfloat16] > probe[torch.float32]
    )
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_gflops(2048, dtype)
    report: dict[str, object] = {
        "clock": args.clock,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "probe_512_gflops": {str(k): v for k, v in probe.items()},
        "precision": "bf16-autocast" if bf16 else "fp32",
        "peak_2048_gflops": peak,
    }
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{args.clock} clock, {torch.get_num_threads()} threads, {report['cpu_capability']}; 512^3 probe: fp32 "
        f"{probe[torch.float32]:.1f}, bf16 {probe[torch.bfloat16]:.1f} GFLOP/s -> "
        f"{report['precision']}; 2048^3 {dtype} peak {peak:.1f} GFLOP/s"
    )
    if not args.skip_train:
        rows = []
        for d in (int(s) for s in args.sizes.split(",")):
            r = bench_train(d, args.rounds, bf16, peak)
            rows.append(r)
            print(
                f"train d={d} ({r['params'] / 1e6:.1f}M, batch 8x256): ours {r['ours_tok_s']:,.0f} "
                f"tok/s (MFU {r['ours_mfu']:.1%}), HF {r['hf_tok_s']:,.0f} tok/s "
                f"(MFU {r['hf_mfu']:.1%}); ratio {r['ratio']:.2f}x (target >= 1.3x)"
                + (
                    f"; torch.compile(ours) {r['compiled_tok_s']:,.0f} tok/s, "
                    f"ratio {r['compiled_ratio']:.2f}x"
                    if "compiled_ratio" in r
                    else ""
                )
            )
        report["train"] = rows
    if not args.skip_generate:
        rows = []
        for batch in (1, 8):
            r = bench_generate(args.rounds, batch, prompt_len=32, new_tokens=64)
            rows.append(r)
            print(
                f"generate d=256, batch {batch}, prompt 32, 64 new greedy fp32: ours "
                f"{r['ours_tok_s']:,.0f} tok/s, HF {r['hf_tok_s']:,.0f} tok/s; ratio "
                f"{r['ratio']:.2f}x (target >= 1.0x); identical tokens: {bool(r['same_tokens'])}"
            )
        report["generate"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
