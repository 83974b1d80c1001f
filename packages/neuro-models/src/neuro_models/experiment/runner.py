"""Run a declared experiment: data, floors, LR sweep, main runs with curves, results, report.

Protocol (identical for every arm; written into every report):

1. Data: the corpus's train split is tokenized, and its last ``dev_tokens`` are cut off as the
   *dev* split. Every choice (learning rate, floor smoothing) is made on dev; the validation split
   is only ever scored. Without the corpus in the data directory the experiment runs on its
   ``substitute`` corpus, labelled as such, into its own output folder.
2. Sweep: each arm trains ``sweep_fraction`` of the main budget on seed ``seeds[0]`` at every rate
   of ``lr_grid``; while an arm's best dev NLL sits at an edge of its grid, the grid grows by one
   geometric step past that edge (at most ``max_grid_extensions`` times). The lowest dev NLL wins.
3. Main runs: every arm × seed at its chosen rate, on ``DataOrder(train, seed)`` (so arms share
   the data order per seed), with held-out NLL at log-spaced budgets (the learning curve), the
   final NLL on the evaluated tokens and on dev, and the final weights kept as a bundle.
4. Every run's result is a JSON file keyed by a hash of code version + configuration; a run whose
   file exists with the same key is not recomputed (resumable), one whose configuration matches
   but whose code changed is recomputed unless ``allow_stale`` (then the report flags it).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import hashlib
import importlib.util
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from neuro_models._fileio import atomic_write_bytes
from neuro_models.data import DataOrder, load_corpus, prepare_data, resolve_data_dir
from neuro_models.evaluate import evaluate
from neuro_models.experiment.floors import fit_floors
from neuro_models.experiment.spec import Experiment
from neuro_models.train import TrainConfig, cpu_supports_bf16, resolve_precision, train

__all__ = [
    "Job",
    "Progress",
    "RunContext",
    "code_version",
    "load_experiment",
    "plan_tokens",
    "prepare_context",
    "run_experiment",
]

log = logging.getLogger(__name__)

#: Files whose edits cannot change a training run (rendering, statistics, the CLI).
_NOT_TRAINING_CODE = ("experiment/report.py", "experiment/stats.py", "experiment/cli.py")


#: Every package a training run can execute.
_PACKAGES = ("neuro_core", "neuro_attention", "neuro_plasticity", "neuro_memory", "neuro_spiking",
             "neuro_objectives", "neuro_models")  # fmt: skip


def code_version(extra_files: Iterable[str | os.PathLike[str]] = ()) -> str:
    """sha256 (16 hex) of the ``neuro_*`` sources that a training run executes, plus
    ``extra_files`` (the reproduction's declaration and whatever it imports beside it)."""
    h = hashlib.sha256()
    files: list[Path] = []
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for root in (spec.submodule_search_locations or []) if spec else []:
            files += sorted(Path(root).rglob("*.py"))
    for f in [*files, *map(Path, extra_files)]:
        rel = f.as_posix()
        if any(rel.endswith(s) for s in _NOT_TRAINING_CODE):
            continue
        h.update(rel.split("/neuro_")[-1].encode() if "/neuro_" in rel else f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def load_experiment(path: str | os.PathLike[str]) -> ModuleType:
    """Import a reproduction's ``experiment.py`` by path (it must define ``experiment(scale)``)."""
    p = Path(path).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"declaration {str(p)!r} does not exist")
    name = f"_neuro_experiment_{p.parent.name.replace('-', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise ValueError(f"{str(p)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "experiment", None)):
        raise ValueError(f"{str(p)!r} must define experiment(scale) -> Experiment")
    return module


def slug(name: str) -> str:
    """A file-name-safe arm label (``A'`` → ``A-prime``)."""
    return name.replace("'", "-prime").replace("/", "_").replace(" ", "_")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- data


@dataclass
class RunContext:
    """The data of one experiment run, shared by all its jobs.

    Attributes:
        corpus: the corpus actually used; ``substitute`` when it is not the declared one.
        train, dev, evaluated, curve: token streams (``evaluated`` is the prefix of the
            validation split that every arm and floor is scored on; ``curve`` its prefix).
        eval_bytes: UTF-8 bytes spanned by ``evaluated`` (for bits/byte; exact when the whole split
            is evaluated, proportional otherwise).
    """

    corpus: str
    substitute: bool
    tokenizer: Any
    train: np.ndarray
    dev: np.ndarray
    evaluated: np.ndarray
    curve: np.ndarray
    eval_bytes: float
    data_id: str
    corpus_source: str

    def summary(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "substitute": self.substitute,
            "corpus_source": self.corpus_source,
            "tokenizer": self.tokenizer.identity,
            "vocab_size": self.tokenizer.vocab_size,
            "train_tokens": len(self.train),
            "dev_tokens": len(self.dev),
            "evaluated_tokens": len(self.evaluated) - 1,
            "curve_tokens": len(self.curve) - 1,
            "eval_bytes": self.eval_bytes,
            "data_id": self.data_id,
        }


def corpus_available(corpus: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``corpus`` can be loaded here (its files in the data directory)."""
    try:
        if resolve_data_dir(data_dir) is None:
            return corpus == "ptb"
        load_corpus(corpus, data_dir)
    except FileNotFoundError:
        return False
    return True


def prepare_context(
    exp: Experiment,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    corpus: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RunContext:
    """Tokenize ``corpus`` (default: the declared one) and cut train/dev/evaluated streams."""
    name = corpus or exp.corpus
    data = prepare_data(
        name, exp.tokenizer, vocab_size=exp.vocab_size, data_dir=data_dir, cache_dir=cache_dir
    )
    s = exp.scale
    full = np.asarray(data.train.tokens).astype(np.int64)
    if len(full) < 4 * s.dev_tokens:
        raise ValueError(
            f"corpus {name!r} has {len(full):,} train tokens, too few to carve {s.dev_tokens:,} dev "
            "tokens (need 4x)"
        )
    valid = np.asarray(data.valid.tokens).astype(np.int64)
    n_eval = len(valid) - 1 if s.eval_tokens is None else min(s.eval_tokens, len(valid) - 1)
    n_curve = n_eval if s.curve_tokens is None else min(s.curve_tokens, n_eval)
    evaluated = valid[: n_eval + 1]
    frac = n_eval / max(1, len(valid) - 1)
    data_id = _hash([data.tokenizer.identity, len(full), int(full.sum()), len(valid), n_eval])
    source = load_corpus(name, data_dir).source
    return RunContext(
        corpus=name, substitute=name != exp.corpus, tokenizer=data.tokenizer,
        train=full[: -s.dev_tokens], dev=full[-s.dev_tokens :], evaluated=evaluated,
        curve=valid[: n_curve + 1], eval_bytes=data.valid.n_bytes * frac, data_id=data_id,
        corpus_source=source,
    )  # fmt: skip


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One training run: a sweep point (scored on dev) or a main run (curve + evaluation)."""

    kind: str
    arm: str
    lr: float
    seed: int
    steps: int

    @property
    def relpath(self) -> str:
        if self.kind == "sweep":
            return f"runs/sweep/{slug(self.arm)}/lr{self.lr:.4g}.json"
        return f"runs/main/{slug(self.arm)}/seed{self.seed}.json"

    def config_key(self, exp: Experiment, ctx_id: str) -> str:
        arm = exp.arm(self.arm)
        scale = {k: v for k, v in exp.scale.to_dict().items() if k not in ("seeds", "note")}
        return _hash([self.kind, self.arm, self.lr, self.seed, self.steps, arm.config_dict(),
                      scale, dict(exp.extra), ctx_id])  # fmt: skip


def _lr_schedule(lr: float, steps: int, exp: Experiment, seed: int, out: str) -> TrainConfig:
    s = exp.scale
    return TrainConfig(
        lr=lr, min_lr=lr * s.min_lr_ratio, warmup_steps=max(1, round(s.warmup_fraction * steps)),
        max_steps=steps, batch_size=s.batch_size, seq_len=s.seq_len, seed=seed,
        precision=s.precision, out_dir=out, progress=False, plot=False,
        log_every=max(1, steps // 50), weight_decay=s.weight_decay, grad_clip=s.grad_clip,
    )  # fmt: skip


def run_job(
    exp: Experiment,
    ctx: RunContext,
    job: Job,
    out_dir: Path,
    *,
    keep_weights: str | None,
    key: str,
    config_key: str,
    code: str,
) -> dict[str, Any]:
    """Train and measure one job; write its result JSON (and weights) under ``out_dir``."""
    arm = exp.arm(job.arm)
    torch.manual_seed(job.seed)
    model = arm.build(arm.config)
    device = torch.device("cpu")
    order = DataOrder(ctx.train, exp.scale.seq_len, exp.scale.batch_size, seed=job.seed)
    curve: list[dict[str, float]] = []
    points = set(exp.scale.curve_steps(job.steps)) if job.kind == "main" else set()
    seq = exp.scale.seq_len

    def record(info: Any) -> None:
        if info.step in points:
            r = evaluate(info.model, ctx.curve, seq, batch_size=32)
            curve.append({"step": info.step, "tokens": info.tokens, "nll": r.nll})

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tc = _lr_schedule(job.lr, job.steps, exp, job.seed, tmp)
        result = train(model, tc, order, loss_fn=arm.loss, callbacks=[record], device=device)
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    train_s = time.perf_counter() - t0
    model.eval()
    dev = evaluate(model, ctx.dev, seq, batch_size=32)
    out: dict[str, Any] = {
        "key": key, "config_key": config_key, "code": code, "kind": job.kind, "arm": job.arm,
        "lr": job.lr, "seed": job.seed, "steps": job.steps, "tokens": result.tokens,
        "precision": result.precision, "threads": torch.get_num_threads(), "train_s": train_s,
        "tokens_per_s": result.tokens / max(train_s, 1e-9), "dev_nll": dev.nll,
        "final_train_loss": result.losses[-1],
        "train_curve": [{k: r[k] for k in r if k in ("step", "tokens", "loss", "lm_loss")}
                        for r in rows],
    }  # fmt: skip
    if job.kind == "main":
        ev = evaluate(model, ctx.evaluated, seq, batch_size=32)
        out["curve"] = curve
        out["valid"] = {"nll": ev.nll, "ppl": ev.ppl, "n_tokens": ev.n_tokens,
                        "bpb": ev.nll * ev.n_tokens / (math.log(2) * ctx.eval_bytes)}  # fmt: skip
        if exp.analyze is not None:
            out["analysis"] = exp.analyze(arm, model, {"ctx": ctx, "seed": job.seed})
        if keep_weights is not None and arm.keep_weights:
            from neuro_models.bundle import save_bundle

            meta = {k: out[k] for k in ("arm", "lr", "seed", "steps", "tokens", "code")}
            meta.update(experiment=exp.name, scale=exp.scale.name, corpus=ctx.corpus,
                        valid_nll=ev.nll)  # fmt: skip
            save_bundle(out_dir / keep_weights, model, ctx.tokenizer, dtype="bf16", meta=meta)
            out["weights"] = keep_weights
    out["wall_s"] = time.perf_counter() - t0
    atomic_write_bytes(out_dir / job.relpath, json.dumps(out).encode())
    return out


def _worker(
    decl: str, scale: str, corpus: str, data_dir: str | None, job: Job, out_dir: str,
    threads: int, keep_weights: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Run one job in a fresh process. The process imports the code as it is on disk *now*, so
    the record's code version and keys are computed here, from what this process runs."""
    torch.set_num_threads(threads)
    exp = load_experiment(decl).experiment(scale)
    ctx = prepare_context(exp, data_dir=data_dir, corpus=corpus)
    code = code_version(sorted(Path(decl).parent.glob("*.py")))
    ck = job.config_key(exp, ctx.data_id)
    return run_job(exp, ctx, job, Path(out_dir), keep_weights=keep_weights,
                   key=_hash([ck, code]), config_key=ck, code=code)  # fmt: skip


# --------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """Tokens planned and done across every experiment of one invocation, with an ETA.

    ETA = remaining tokens / tokens per second of the runs trained so far in this invocation
    (cached runs count as done and do not inflate the rate).
    """

    total_tokens: int = 0
    done_tokens: int = 0
    trained_tokens: int = 0
    start: float = field(default_factory=time.perf_counter)
    echo: Callable[[str], None] = field(default=lambda s: print(s, flush=True))

    def add(self, tokens: int) -> None:
        self.total_tokens += tokens

    def finish(self, tokens: int, *, cached: bool) -> None:
        self.done_tokens += tokens
        if not cached:
            self.trained_tokens += tokens

    def line(self) -> str:
        el = time.perf_counter() - self.start
        frac = self.done_tokens / max(1, self.total_tokens)
        rate = self.trained_tokens / el if el > 0 else 0.0
        left = self.total_tokens - self.done_tokens
        eta = _fmt_s(left / rate) if rate > 0 and self.trained_tokens else "?"
        return (
            f"{frac:6.1%} of {self.total_tokens / 1e6:.1f}M tokens, {_fmt_s(el)} elapsed, ETA {eta}"
        )


def _fmt_s(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def plan_tokens(exp: Experiment) -> int:
    """Tokens of the initial grid sweep plus every main run (extensions are added when they occur)."""
    s = exp.scale
    sweep = len(exp.arms) * len(s.lr_grid) * s.sweep_steps * s.tokens_per_step
    return sweep + len(exp.arms) * len(s.seeds) * s.tokens_per_run


# --------------------------------------------------------------------------- orchestration


def _execute(
    jobs: list[Job],
    *,
    exp: Experiment,
    ctx: RunContext,
    decl: Path,
    out_dir: Path,
    code: str,
    workers: int,
    allow_stale: bool,
    data_dir: str | None,
    progress: Progress,
    on_result: Callable[[Path], None] | None,
    weights_for: Callable[[Job], str | None],
) -> list[dict[str, Any]]:
    """Run ``jobs`` (reusing cached results) and return their results in order."""
    results: dict[Job, dict[str, Any]] = {}
    todo: list[tuple[Job, tuple[str, str, str]]] = []
    for job in jobs:
        ck = job.config_key(exp, ctx.data_id)
        key = _hash([ck, code])
        path = out_dir / job.relpath
        if path.is_file():
            try:
                cached = json.loads(path.read_text())
            except ValueError:
                cached = {}
            if cached.get("key") == key or (allow_stale and cached.get("config_key") == ck):
                cached["stale"] = cached.get("key") != key
                results[job] = cached
                progress.finish(job.steps * exp.scale.tokens_per_step, cached=True)
                continue
            if cached.get("config_key") == ck:
                log.warning("%s was made by code %s; re-running", path, cached.get("code"))
        todo.append((job, (key, ck, code)))
    threads = max(1, (os.cpu_count() or 1) // max(1, min(workers, len(todo) or 1)))

    expected = {job: keys[0] for job, keys in todo}

    def done(job: Job, r: dict[str, Any]) -> None:
        if r["key"] != expected[job]:
            # The code (or declaration) changed on disk while this invocation ran.
            log.warning("%s ran code %s, not %s", job.relpath, r["code"], code)
            r["stale"] = True
        results[job] = r
        progress.finish(job.steps * exp.scale.tokens_per_step, cached=False)
        what = f"dev {r['dev_nll']:.4f}" + (
            f", valid {r['valid']['nll']:.4f}" if "valid" in r else ""
        )
        progress.echo(
            f"  {exp.name} {job.kind:5s} arm {job.arm:3s} lr {job.lr:.3g} seed {job.seed}: {what} "
            f"({r['train_s']:.0f} s, {r['tokens_per_s']:,.0f} tok/s) | {progress.line()}"
        )
        if on_result is not None:
            on_result(out_dir / job.relpath)

    if workers <= 1 or len(todo) <= 1:
        torch_threads = torch.get_num_threads()
        for job, keys in todo:
            r = run_job(exp, ctx, job, out_dir, keep_weights=weights_for(job), key=keys[0],
                        config_key=keys[1], code=keys[2])  # fmt: skip
            done(job, r)
        torch.set_num_threads(torch_threads)
    else:
        mpctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=mpctx) as pool:
            futs = {
                pool.submit(_worker, str(decl), exp.scale.name, ctx.corpus, data_dir, job,
                            str(out_dir), threads, weights_for(job)): job
                for job, _ in todo
            }  # fmt: skip
            for fut in cf.as_completed(futs):
                done(futs[fut], fut.result())
    return [results[j] for j in jobs]


def _sweep(exp: Experiment, run: Callable[[list[Job]], list[dict[str, Any]]],
           progress: Progress) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:  # fmt: skip
    s = exp.scale
    grids = {a.name: list(s.lr_grid) for a in exp.arms}
    ext = dict.fromkeys(grids, 0)
    seen: dict[tuple[str, float], dict[str, Any]] = {}
    ratio = s.grid_ratio()

    def best_of(arm: str) -> float:
        return min(grids[arm], key=lambda lr: float(seen[(arm, lr)]["dev_nll"]))

    while True:
        jobs = [Job("sweep", a, lr, s.seeds[0], s.sweep_steps)
                for a, g in grids.items() for lr in g if (a, lr) not in seen]  # fmt: skip
        if not jobs:
            break
        for j, r in zip(jobs, run(jobs)):
            seen[(j.arm, j.lr)] = r
        grew = False
        for a, g in grids.items():
            best = best_of(a)
            if ext[a] < s.max_grid_extensions and best in (g[0], g[-1]):
                new = g[0] / ratio if best == g[0] else g[-1] * ratio
                if best == g[0]:
                    g.insert(0, new)
                else:
                    g.append(new)
                ext[a] += 1
                grew = True
                progress.add(s.sweep_steps * s.tokens_per_step)
        if not grew:
            break
    choice = {}
    for a, g in grids.items():
        best = best_of(a)
        choice[a] = {"lr": best, "grid": g, "interior": best not in (g[0], g[-1]),
                     "extensions": ext[a]}  # fmt: skip
    return list(seen.values()), choice


def git_revision(folder: Path) -> str:
    """``git describe``-style revision of the checkout holding ``folder`` (``+dirty`` when it has
    uncommitted changes), or ``"unknown"`` outside a git checkout."""
    import subprocess

    try:
        rev = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "packages", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty.strip() else "")


def environment(workers: int, precision: str, folder: Path | None = None) -> dict[str, Any]:
    """Where and how the runs were made (printed in every report)."""
    return {
        "git": git_revision(folder) if folder is not None else "unknown",
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_bf16": cpu_supports_bf16(),
        "precision": precision,
        "workers": workers,
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_experiment(
    decl: str | os.PathLike[str],
    scale: str,
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 1,
    allow_stale: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    on_result: Callable[[Path], None] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    corpus: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) one reproduction at ``scale`` and write its results and report.

    Args:
        decl: the reproduction's ``experiment.py``.
        scale: ``"smoke"``, ``"cpu"`` or ``"gpu"``.
        out_dir: where runs, weights, ``results.json``, plots go; created.
        workers: parallel training processes (the threads are split between them).
        allow_stale: reuse runs made by another code version (the report lists them).
        data_dir: data directory (default resolved as :func:`neuro_models.data.resolve_data_dir`).
        progress: shared progress of a multi-experiment invocation.
        on_result: called with each new run's result file (e.g. to commit it).
        report_path: where REPORT.md goes (default ``out_dir / "REPORT.md"``).
        corpus: run on this corpus (default: the declared one if available, else the substitute).

    Returns:
        The summary written to ``results.json``.
    """
    from neuro_models.experiment import report as rep

    decl = Path(decl).resolve()
    exp: Experiment = load_experiment(decl).experiment(scale)
    out = Path(out_dir)
    counts = exp.check_matched()
    dd = str(data_dir) if data_dir is not None else None
    if corpus is None:
        corpus = exp.corpus if corpus_available(exp.corpus, dd) else exp.substitute
    if corpus is None:
        raise FileNotFoundError(f"{exp.name} needs corpus {exp.corpus!r} and has no substitute")
    ctx = prepare_context(exp, data_dir=dd, corpus=corpus)
    passes = exp.scale.tokens_per_run / len(ctx.train)
    if passes > exp.scale.max_passes:
        raise ValueError(
            f"{exp.name} [{scale}]: {exp.scale.tokens_per_run:,} tokens per run are {passes:.1f} "
            f"passes over the {len(ctx.train):,} train tokens of {ctx.corpus!r} (limit "
            f"{exp.scale.max_passes}): the models would memorize the train split. This scale "
            "needs a larger train split in the data directory."
        )
    out.mkdir(parents=True, exist_ok=True)
    code = code_version(sorted(decl.parent.glob("*.py")))
    progress = progress or Progress()
    if not progress.total_tokens:
        progress.add(plan_tokens(exp))
    t0 = time.perf_counter()
    floors = fit_floors(ctx.train, ctx.dev, ctx.evaluated, ctx.tokenizer.vocab_size)
    curve_floors = fit_floors(ctx.train, ctx.dev, ctx.curve, ctx.tokenizer.vocab_size)
    seed0 = exp.scale.seeds[0]

    def weights_for(job: Job) -> str | None:
        if job.kind != "main":
            return None
        sub = "weights" if job.seed == seed0 else "weights-other-seeds"
        return f"{sub}/{slug(job.arm)}-seed{job.seed}"

    def run(jobs: list[Job]) -> list[dict[str, Any]]:
        return _execute(jobs, exp=exp, ctx=ctx, decl=decl, out_dir=out, code=code,
                        workers=workers, allow_stale=allow_stale, data_dir=dd, progress=progress,
                        on_result=on_result, weights_for=weights_for)  # fmt: skip

    progress.echo(
        f"{exp.name} [{exp.scale.name}] on {ctx.corpus}{' (SUBSTITUTE corpus)' if ctx.substitute else ''}: "
        f"{len(exp.arms)} arms x {len(exp.scale.seeds)} seeds, {exp.scale.tokens_per_run:,} tokens "
        f"per run; bigram floor {floors.bigram_nll:.3f} nats"
    )
    sweep, choice = _sweep(exp, run, progress)
    main_jobs = [Job("main", a.name, choice[a.name]["lr"], s, exp.scale.steps)
                 for s in exp.scale.seeds for a in exp.arms]  # fmt: skip
    runs = run(main_jobs)
    precision = resolve_precision(exp.scale.precision, torch.device("cpu"))
    summary = rep.summarize(
        exp, ctx=ctx.summary(), floors=floors.as_dict(), curve_floors=curve_floors.as_dict(),
        counts=counts, sweep=sweep, choice=choice, runs=runs, code=code,
        environment=environment(workers, precision, decl.parent), wall_s=time.perf_counter() - t0,
    )  # fmt: skip
    rep.write(exp, summary, runs, sweep, out, Path(report_path) if report_path else None)
    return summary


def summaries_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """One markdown table of every claim and verdict across reproductions."""
    lines = ["| reproduction | scale | corpus | claim | arm − ref (nats) | 95% CI | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, s in summaries.items():
        corpus = s["data"]["corpus"] + (" (substitute)" if s["data"]["substitute"] else "")
        inf = s["informative"]
        lines.append(f"| {name} | {s['scale']} | {corpus} | scale informative (reference − bigram "
                     f"floor ≤ −{inf['margin']}) | – | – | {'yes' if inf['ok'] else 'no'} |")  # fmt: skip
        for c in s["comparisons"]:
            st = c.get("stats") or {}
            diff = f"{st['mean']:+.3f}" if st else "–"
            ci = f"[{st['ci_low']:+.3f}, {st['ci_high']:+.3f}]" if st else "–"
            lines.append(f"| {name} | {s['scale']} | {corpus} | {c['claim']} | {diff} | {ci} | "
                         f"{c['verdict']['outcome']} |")  # fmt: skip
        for c in s.get("other_verdicts", []):
            lines.append(f"| {name} | {s['scale']} | {corpus} | {c['claim']} | – | – | "
                         f"{c['outcome']} |")  # fmt: skip
    return "\n".join(lines)
