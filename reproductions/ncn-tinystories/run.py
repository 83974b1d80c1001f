"""NCN on TinyStories: iso-parameter arms A, A', B, C, D on identical data (see CLAIM.md).

    python reproductions/ncn-tinystories/run.py --scale smoke   # CI, about a minute
    python reproductions/ncn-tinystories/run.py --scale cpu     # the committed run (≤ ~20 min)
    python reproductions/ncn-tinystories/run.py --scale gpu     # the published shapes, one GPU

Steps: byte-level BPE trained on the TinyStories V1 train head; the last ``dev_tokens`` of the
train stream are held out to pick each arm's learning rate (a short sweep on seed 0); every arm
then trains with its best rate for every seed on the same data order (one ``DataOrder`` per seed,
shared by all arms); each trained model is evaluated on the V1 *validation* head (never trained on,
never used for a choice), probed for leaks, and its signals are recorded. The ``cpu`` and ``gpu``
scales write ``results/*.json``, the plots and ``REPORT.md`` beside this file (``gpu`` under
``gpu/``); ``smoke`` writes to ``.smoke/``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from configs import (  # noqa: E402
    ARM_DESCRIPTIONS,
    ARMS,
    EPOCH_TOKENS,
    NCN_ARMS,
    PRESETS,
    ScalePreset,
    arm_configs,
    build,
    check_matched,
    parameter_counts,
)

from neuro_models.data import load_shard, load_tokenizer, prepare_data  # noqa: E402
from neuro_models.data.shards import DataOrder  # noqa: E402
from neuro_models.evaluate import evaluate  # noqa: E402
from neuro_models.ncn import NCNModel, Signals, signal_statistics  # noqa: E402
from neuro_models.train import TrainConfig, train  # noqa: E402
from neuro_objectives import HomeostaticRegularizer  # noqa: E402

log = logging.getLogger("ncn-tinystories")

#: The "plot twist" sentence of the published brain scans.
SCAN_TEXT = "Timmy wanted an apple. He looked in the box, but it was empty."
#: Tokens the reaction to " but" is compared with (same sentence roles, similar frequency).
CONTROL_WORDS = (" and", " the", " was", " so", " then", ".")


# --------------------------------------------------------------------------- one training run


def _loss_fn(reg: HomeostaticRegularizer):  # type: ignore[no-untyped-def]
    """LM cross-entropy plus, for NCN models, the homeostatic term (each reported apart)."""

    def loss_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
        if isinstance(model, NCNModel):
            out = model.run(x)
            logits, signals = out.logits, out.signals
        else:
            logits, signals = model(x), None
        lm = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        metrics = {"lm_loss": float(lm.detach())}
        if signals is None:
            return lm, metrics
        penalty, report = reg(signals.as_dict())
        metrics.update({k: float(v) for k, v in report.items()})
        return lm + penalty, metrics

    return loss_fn


def _windows(tokens: np.ndarray, seq_len: int, n: int) -> torch.Tensor:
    """The first ``n`` non-overlapping windows of ``seq_len + 1`` tokens, ``[n, seq_len + 1]``."""
    n = min(n, (len(tokens) - 1) // seq_len)
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    return torch.from_numpy(tokens[idx].astype(np.int64))


@torch.no_grad()
def _nll(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x).float()
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # [B, T]


@torch.no_grad()
def leak_probe(model: torch.nn.Module, windows: torch.Tensor, vocab: int, seed: int) -> dict:
    """Held-out NLL of positions ≤ t with the true future vs random tokens after t (t = T/2).

    A causal model gives exactly the same NLL; a model whose predictions at ≤ t use tokens after t
    (including the very token it must predict at t) gets worse when they are randomized.
    """
    x, y = windows[:, :-1], windows[:, 1:]
    t = x.shape[1] // 2
    gen = torch.Generator().manual_seed(10_000 + seed)
    corrupted = x.clone()
    noise = torch.randint(0, vocab, corrupted[:, t + 1 :].shape, generator=gen)
    corrupted[:, t + 1 :] = noise.to(x.device)
    clean = _nll(model, x, y)[:, : t + 1]
    dirty = _nll(model, corrupted, y)[:, : t + 1]
    return {
        "split": t,
        "nll_true_future": float(clean.mean()),
        "nll_random_future": float(dirty.mean()),
        "delta_nll": float((dirty - clean).mean()),
        "delta_nll_at_t": float((dirty[:, t] - clean[:, t]).mean()),
    }


@torch.no_grad()
def _signals(model: NCNModel, x: torch.Tensor, batch: int = 32) -> Signals:
    parts = [model.run(x[i : i + batch]).signals for i in range(0, len(x), batch)]
    return Signals(*(torch.cat([getattr(p, n) for p in parts]).cpu() for n in Signals._fields))  # type: ignore[union-attr]


def signal_summary(model: NCNModel, windows: torch.Tensor) -> dict:
    s = _signals(model, windows[:, :-1])
    stats = signal_statistics(s, gate_threshold=0.1)
    g = s.gain.flatten().double()
    stats["gain_p01_p99"] = [float(torch.quantile(g, 0.01)), float(torch.quantile(g, 0.99))]
    for name in ("gain", "precision", "gate"):
        st = stats[name]
        w, b = sum(st["var_within"]), sum(st["var_between"])
        st["within_fraction"] = w / (w + b) if w + b > 0 else float("nan")
    reg = HomeostaticRegularizer(0.01)(s.as_dict())[1]
    stats["homeostatic"] = float(reg["homeostatic"])
    return stats


def reaction(model: NCNModel, windows: torch.Tensor, word_ids: dict[str, int]) -> dict:
    """z-score per layer of each word's mean signal against all tokens' distribution."""
    x = windows[:, :-1]
    s = _signals(model, x)
    x = x.cpu()
    out: dict[str, Any] = {}
    for word, tid in word_ids.items():
        mask = x == tid
        n = int(mask.sum())
        entry: dict[str, Any] = {"count": n}
        for name in ("gain", "precision", "gate"):
            sig = getattr(s, name).double()  # [B, T, L]
            mu, sd = sig.mean(dim=(0, 1)), sig.std(dim=(0, 1)).clamp_min(1e-12)
            entry[name] = ((sig[mask].mean(0) - mu) / sd).tolist() if n else None
        out[word] = entry
    return out


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (arm, lr, seed) and measure it; runs in a worker process."""
    torch.set_num_threads(job["threads"])
    p = ScalePreset(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["preset"].items()})
    train_tokens = np.asarray(load_shard(job["train_path"]).tokens)[: -p.dev_tokens]
    cfg = arm_configs(p)[job["arm"]]
    device = torch.device(job["device"])
    torch.manual_seed(job["seed"])
    model = build(cfg).to(device)
    order = DataOrder(train_tokens, p.seq_len, p.batch_size, seed=job["seed"])
    steps = job["steps"]
    warmup = max(1, round(p.warmup_steps * steps / p.steps))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            lr=job["lr"], min_lr=job["lr"] / 10, warmup_steps=warmup, max_steps=steps,
            batch_size=p.batch_size, seq_len=p.seq_len, seed=job["seed"],
            precision="fp32" if device.type == "cpu" else "auto",
            out_dir=tmp, progress=False, plot=False, log_every=job["log_every"],
            weight_decay=0.1, grad_clip=1.0,
        )  # fmt: skip
        init: dict[str, Any] = {}
        if job["arm"] in NCN_ARMS:
            assert isinstance(model, NCNModel)
            dev_w = _windows(np.asarray(load_shard(job["train_path"]).tokens)[-p.dev_tokens :],
                             p.seq_len, 16)  # fmt: skip
            s = _signals(model.eval(), dev_w[:, :-1].to(device))
            init = {n: float(getattr(s, n).mean()) for n in ("gain", "precision", "gate")}
            init["homeostatic"] = float(HomeostaticRegularizer(0.01)(s.as_dict())[1]["homeostatic"])
            model.train()
        result = train(model, tc, order, loss_fn=_loss_fn(HomeostaticRegularizer(p.reg_weight)))
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    train_s = time.perf_counter() - t0
    model.eval()
    full = np.asarray(load_shard(job["train_path"]).tokens)
    dev = evaluate(model, full[-p.dev_tokens :], p.seq_len, batch_size=16)
    out: dict[str, Any] = {
        "arm": job["arm"], "lr": job["lr"], "seed": job["seed"], "steps": steps,
        "kind": job["kind"], "tokens": result.tokens, "train_s": train_s,
        "dev_nll": dev.nll, "final_train_loss": result.losses[-1],
        "curve": [{k: r[k] for k in r if k in ("step", "tokens", "loss", "lm_loss", "lr")
                   or k.startswith("homeostatic")} for r in rows],
    }  # fmt: skip
    if job["kind"] == "sweep":
        return out
    valid = load_shard(job["valid_path"])
    ev = evaluate(model, valid, p.seq_len, batch_size=16, max_tokens=p.eval_tokens)
    out["valid"] = ev.as_dict()
    vt = np.asarray(valid.tokens)
    probe = _windows(vt, p.seq_len, p.probe_windows)
    out["leak"] = leak_probe(model, probe.to(device), p.vocab_size, job["seed"])
    if job["arm"] in NCN_ARMS:
        assert isinstance(model, NCNModel)
        tok = load_tokenizer(job["tokenizer_json"])
        out["init_signals"] = init
        out["signals"] = signal_summary(model, probe.to(device))
        words = {w: tok.encode(w) for w in (" but", *CONTROL_WORDS)}
        ids = {w: t[0] for w, t in words.items() if len(t) == 1}
        out["reaction"] = reaction(
            model, _windows(vt, p.seq_len, p.reaction_windows).to(device), ids
        )
        scan_ids = tok.encode(SCAN_TEXT)
        with torch.no_grad():
            s = model.run(torch.tensor([scan_ids], device=device)).signals
        assert s is not None
        out["scan"] = {
            "tokens": [tok.decode([i]) for i in scan_ids],
            **{n: getattr(s, n)[0].tolist() for n in ("gain", "precision", "gate")},
        }
    out["eval_s"] = time.perf_counter() - t0 - train_s
    return out


# --------------------------------------------------------------------------- orchestration


def _run_all(jobs: list[dict], workers: int) -> list[dict]:
    results: list[dict] = []
    if workers <= 1:
        for j in jobs:
            results.append(run_job(j))
            _progress(results[-1], len(results), len(jobs))
        return results
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_job, j) for j in jobs]
        for fut in cf.as_completed(futures):
            results.append(fut.result())
            _progress(results[-1], len(results), len(jobs))
    return results


def _progress(r: dict, done: int, total: int) -> None:
    extra = f" valid nll {r['valid']['nll']:.4f}" if "valid" in r else ""
    print(
        f"  [{done}/{total}] {r['kind']:5s} arm {r['arm']:2s} lr {r['lr']:.0e} seed {r['seed']} "
        f"dev nll {r['dev_nll']:.4f}{extra} ({r['train_s']:.0f}s train)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the preset's")
    ap.add_argument("--data-dir", default=None, help="default: ../shared/data or $NEURO_DATA_DIR")
    ap.add_argument("--out", default=None, help="output folder (default depends on --scale)")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel runs (processes); default 1 for smoke, 2 otherwise",
    )
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda (use --workers 1)")
    ap.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=None,
        help="run only these arms (a supplementary check: raw.json, no report)",
    )
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help="skip the sweep and use this learning rate for every arm",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild REPORT.md, plots and results/ from results/raw.json",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    p = PRESETS[args.scale]
    if args.workers is None:
        args.workers = 1 if args.scale == "smoke" else 2
    seeds = tuple(args.seeds) if args.seeds else p.seeds
    out = Path(args.out) if args.out else {"smoke": HERE / ".smoke", "cpu": HERE,
                                          "gpu": HERE / "gpu"}[args.scale]  # fmt: skip
    if args.arms and not args.out:
        # a supplementary subset never overwrites the main run's results
        lr_tag = "sweep" if args.lr is None else f"lr{args.lr:g}"
        out = out / "results" / f"supplementary-{'-'.join(args.arms)}-{lr_tag}".replace("'", "p")
    (out / "results").mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.report_only:
        raw = json.loads((out / "results" / "raw.json").read_text())
        configs = arm_configs(p)
        return _write_report(args, p, tuple(raw["seeds"]), out, raw, configs,
                             parameter_counts(configs))  # fmt: skip
    print(f"NCN TinyStories reproduction, scale={args.scale}, seeds={list(seeds)}", flush=True)

    data = prepare_data("tinystories", "bpe", vocab_size=p.vocab_size, data_dir=args.data_dir)
    assert data.train.path is not None
    assert data.valid.path is not None
    n_train = len(data.train) - p.dev_tokens
    configs = arm_configs(p)
    counts = parameter_counts(configs)
    check_matched(counts)
    print(f"  data: {n_train:,} train tokens, {p.dev_tokens:,} dev tokens (LR choice), "
          f"{len(data.valid):,} validation tokens; {p.tokens_per_run:,} tokens per run = "
          f"{p.tokens_per_run / n_train:.2f} passes over the head = "
          f"{p.tokens_per_run / EPOCH_TOKENS:.4%} of one TinyStories epoch", flush=True)  # fmt: skip
    for arm in ARMS:
        c = counts[arm]
        print(f"  arm {arm:2s} {c['total']:>10,} params ({c['total'] / counts['B']['total'] - 1:+.2%}"
              f" vs B) {ARM_DESCRIPTIONS[arm]}", flush=True)  # fmt: skip

    base = {
        "preset": p.to_dict(), "train_path": str(data.train.path),
        "valid_path": str(data.valid.path), "tokenizer_json": data.tokenizer.to_json(),
        "threads": max(1, (os.cpu_count() or 2) // max(1, args.workers)),
        "log_every": 1 if p.steps <= 50 else 5, "device": args.device,
    }  # fmt: skip
    arms = tuple(args.arms) if args.arms else ARMS
    if args.lr is None:
        sweep_jobs = [dict(base, arm=a, lr=lr, seed=seeds[0], steps=p.sweep_steps, kind="sweep")
                      for a in arms for lr in p.sweep_lrs]  # fmt: skip
        print(f"LR sweep: {len(sweep_jobs)} runs of {p.sweep_steps} steps", flush=True)
        sweep = _run_all(sweep_jobs, args.workers)
        best_lr = {}
        for a in arms:
            rows = sorted((r for r in sweep if r["arm"] == a), key=lambda r: r["lr"])
            best_lr[a] = min(rows, key=lambda r: r["dev_nll"])["lr"]
        print("  best lr: " + ", ".join(f"{a}={best_lr[a]:g}" for a in arms), flush=True)
    else:
        sweep, best_lr = [], dict.fromkeys(arms, args.lr)

    main_jobs = [dict(base, arm=a, lr=best_lr[a], seed=s, steps=p.steps, kind="main")
                 for s in seeds for a in arms]  # fmt: skip
    print(f"Main runs: {len(main_jobs)} runs of {p.steps} steps", flush=True)
    runs = sorted(
        _run_all(main_jobs, args.workers), key=lambda r: (ARMS.index(r["arm"]), r["seed"])
    )
    wall = time.perf_counter() - t_start
    raw = {"sweep": sweep, "runs": runs, "best_lr": best_lr, "wall_s": wall,
           "n_train": n_train, "n_valid": len(data.valid), "seeds": list(seeds),
           "load_average_at_end": list(os.getloadavg())}  # fmt: skip
    (out / "results" / "raw.json").write_text(json.dumps(raw))
    if arms != ARMS:
        print(f"wrote {out / 'results' / 'raw.json'} (subset of arms: no report)", flush=True)
        return 0
    return _write_report(args, p, seeds, out, raw, configs, counts)


def _write_report(args, p, seeds, out, raw, configs, counts) -> int:  # type: ignore[no-untyped-def]
    """Summaries, plots, REPORT.md and the verdict table from the raw run records."""
    from report import select_runs, summarize, write_outputs

    sweep, wall = raw["sweep"], raw["wall_s"]
    extra: list[dict] = []
    for f in sorted((out / "results").glob("supplementary-*/results/raw.json")):
        extra += json.loads(f.read_text())["runs"]
    runs, best_lr, lr_source, candidates = select_runs(raw["runs"], extra, raw["best_lr"],
                                                       len(seeds))  # fmt: skip
    summary = summarize(p, args.scale, seeds, counts, configs, sweep, best_lr, runs,
                        raw["n_train"], raw["n_valid"], wall)  # fmt: skip
    summary["lr_selection"] = {"source": lr_source, "candidates": candidates}
    check = out / "results" / "rerun_check.json"
    if check.is_file():
        summary["rerun_check"] = json.loads(check.read_text())
    summary["environment"] = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "workers": args.workers, "device": args.device,
        "load_average_at_end": raw["load_average_at_end"],
    }  # fmt: skip
    table = write_outputs(out, summary, runs, sweep)
    print(table, flush=True)
    print(f"wrote {out / 'REPORT.md'} and {out / 'results'} in {wall / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
