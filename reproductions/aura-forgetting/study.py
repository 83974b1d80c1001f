"""Aura's continual-learning claim, "≤ 10 % forgetting vs 40–60 % without EWC", as a two-phase study.

Protocol (CLAIM.md): a Llama-style decoder (byte tokenizer, shared by both corpora) is trained on
corpus A (TinyStories), then on corpus B (Tiny Shakespeare) under one of six phase-2 methods —
naive fine-tuning, EWC with λ ∈ {0.4, 10, 1000}, 10 % replay of A, and Aura-style sleep
consolidation. Every method of a seed starts from the same phase-1 model and sees the same B
batches (paired by data order). Forgetting of A (the published "accuracy drop" and the NLL rise
this issue asks for)::

    F_nll = (NLL_A,after − NLL_A,before) / NLL_A,before
    F_acc = (acc_A,before − acc_A,after) / acc_A,before

on held-out A, and held-out NLL on B, so a method that does not learn B cannot win.

This is not a :class:`~neuro_models.experiment.Experiment` (two corpora, two phases, methods that
change the loss of phase 2), so ``reproductions/run.py`` runs it through :func:`run` and reuses
the framework's pieces: :func:`neuro_models.train.train` (both phases), the floors
(:func:`~neuro_models.experiment.floors.fit_floors`), the paired statistics and the one verdict
rule (:mod:`neuro_models.experiment.stats`), and EWC / replay / sleep from
:mod:`neuro_plasticity.continual`.

    python reproductions/run.py --only aura-forgetting --scale smoke
    python reproductions/run.py --only aura-forgetting --scale cpu --publish
"""

# No `from __future__ import annotations`: run.py executes this file without registering it in
# sys.modules, and dataclasses then cannot resolve string annotations.

import ast
import hashlib
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.config import LlamaConfig
from neuro_models.data import ByteTokenizer, DataOrder, load_corpus, split_documents
from neuro_models.experiment.floors import fit_floors
from neuro_models.experiment.stats import paired, t_quantile, verdict
from neuro_models.llama import Llama
from neuro_models.train import StepInfo, TrainConfig, cross_entropy_loss, train
from neuro_plasticity.continual import EWC, ReplayBuffer, SleepConfig, diagonal_fisher, sleep

#: The corpora A and B, and the substitute (run.py writes a substitute run apart).
CORPUS = ("tinystories", "tinyshakespeare")
SUBSTITUTE = "ptb"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAME = HERE.name
TITLE = "Aura: forgetting of corpus A after training on corpus B, with and without EWC"

#: Phase-2 methods; EWC λ in Aura's convention (penalty λ Σ F (θ − θ*)², no ½).
EWC_LAMBDAS: tuple[float, ...] = (0.4, 10.0, 1000.0)
METHODS: tuple[str, ...] = (
    "naive",
    *(f"ewc-{lam:g}" for lam in EWC_LAMBDAS),
    "replay-10pct",
    "sleep",
)
#: Replay: one A window per ten B windows (10 % of the new data), on top of the B batch.
REPLAY_RATIO = 0.1
#: Aura's sleep (reference-systems §3.2): 25 replay batches at 0.1× plasticity every 2000 of
#: 50k steps; here every quarter of phase 2 (a 4-fold higher frequency than Aura's 25 per run
#: would be impossible at 200 steps; we keep 25 steps and 0.1×).
SLEEP_PLASTICITY = 0.1
SLEEPS_PER_PHASE = 4
#: The reference must beat the bigram floor on A by this much (nats) before any verdict.
FLOOR_MARGIN = 0.3
#: A method "learns B" when it reaches this fraction of naive fine-tuning's drop of NLL_B.
B_GAIN_FRACTION = 0.9
#: Claim: 40 % → 10 % forgetting, i.e. 30 points less; 5 points is the smallest that matters.
CLAIMED_REDUCTION = 0.30
SMALLEST_OF_INTEREST = 0.05
CLAIMED_EWC_MAX = 0.10
CLAIMED_NAIVE_RANGE = (0.40, 0.60)


@dataclass(frozen=True, kw_only=True)
class Scale:
    """Model, budgets and evaluation sizes of one scale."""

    d_model: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    seq_len: int
    batch_size: int
    phase1_steps: int
    phase2_steps: int
    seeds: tuple[int, ...]
    lr_grid_phase1: tuple[float, ...]
    lr_grid_phase2: tuple[float, ...]
    eval_tokens: int
    curve_points: int
    fisher_windows: int
    replay_capacity: int
    sleep_steps: int


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        d_model=32, n_layers=1, n_heads=2, ffn_dim=64, seq_len=64, batch_size=10,
        phase1_steps=30, phase2_steps=12, seeds=(0, 1), lr_grid_phase1=(3e-3,),
        lr_grid_phase2=(1e-3,), eval_tokens=2048, curve_points=3, fisher_windows=4,
        replay_capacity=64, sleep_steps=3,
    ),
    "cpu": Scale(
        d_model=96, n_layers=3, n_heads=4, ffn_dim=256, seq_len=128, batch_size=20,
        phase1_steps=600, phase2_steps=200, seeds=(0, 1, 2), lr_grid_phase1=(1e-3, 2e-3, 4e-3),
        lr_grid_phase2=(3e-4, 1e-3, 3e-3), eval_tokens=40960, curve_points=5,
        fisher_windows=64, replay_capacity=512, sleep_steps=25,
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Streams:
    """Token streams of both corpora (byte ids, documents joined by EOS)."""

    corpus_a: str
    corpus_b: str
    substitute: bool
    a_train: np.ndarray
    a_dev: np.ndarray
    a_eval: np.ndarray
    b_train: np.ndarray
    b_dev: np.ndarray
    b_eval: np.ndarray
    a_eval_bytes: int
    b_eval_bytes: int


def _join(docs: Sequence[str], tok: ByteTokenizer) -> np.ndarray:
    ids: list[int] = []
    for d in docs:
        ids.extend(tok.encode(d))
        ids.append(tok.eos_id)
    return np.asarray(ids, dtype=np.int64)


def _cut(stream: np.ndarray, n_tokens: int, seq_len: int) -> np.ndarray:
    """The first whole windows of ``stream`` covering at most ``n_tokens`` predicted tokens."""
    n = min(n_tokens, len(stream) - 1) // seq_len * seq_len
    if n < seq_len:
        raise ValueError(f"an evaluation stream needs > {seq_len} tokens, got {len(stream)}")
    return stream[: n + 1]


def load_streams(scale: Scale, data_dir: str | None, substitute: bool) -> Streams:
    """A = TinyStories, B = Tiny Shakespeare; without them (or with ``substitute``), A = Penn
    Treebank and B = Penn Treebank with every sentence's characters reversed (labelled)."""
    tok = ByteTokenizer()
    corpus_a, corpus_b = "tinystories", "tinyshakespeare"
    try:
        if substitute:
            raise FileNotFoundError("--substitute")
        a = load_corpus(corpus_a, data_dir)
        b = load_corpus(corpus_b, data_dir)
        a_train_docs, a_dev_docs = split_documents(a.train, 0.1, seed=0)
        b_text = b.train[0]
        cut = int(len(b_text) * 0.9)  # dev = the last 10 % of Shakespeare's train characters
        b_train_docs, b_dev_docs, b_eval_docs = [b_text[:cut]], [b_text[cut:]], b.valid
        a_eval_docs = a.valid
        used_sub = False
    except (FileNotFoundError, ValueError):
        p = load_corpus("ptb", data_dir if not substitute else None)
        corpus_a, corpus_b = "ptb", "ptb-reversed"
        half = len(p.train) // 2
        a_train_docs, a_dev_docs = split_documents(p.train[:half], 0.1, seed=0)
        b_all = [d[::-1] for d in p.train[half:]]
        b_train_docs, b_dev_docs = split_documents(b_all, 0.1, seed=0)
        a_eval_docs = p.valid
        b_eval_docs = [d[::-1] for d in (p.test or p.valid)]
        used_sub = True
    a_eval = _cut(_join(a_eval_docs, tok), scale.eval_tokens, scale.seq_len)
    b_eval = _cut(_join(b_eval_docs, tok), scale.eval_tokens, scale.seq_len)
    return Streams(
        corpus_a, corpus_b, used_sub,
        _join(a_train_docs, tok), _cut(_join(a_dev_docs, tok), scale.eval_tokens, scale.seq_len),
        a_eval,
        _join(b_train_docs, tok), _cut(_join(b_dev_docs, tok), scale.eval_tokens, scale.seq_len),
        b_eval,
        int(sum(a_eval < 256)), int(sum(b_eval < 256)),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Model, scoring, methods


def model_config(scale: Scale) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=ByteTokenizer.vocab_size, d_model=scale.d_model, n_layers=scale.n_layers,
        n_heads=scale.n_heads, n_kv_heads=scale.n_heads, ffn_dim=scale.ffn_dim,
        max_seq_len=scale.seq_len,
    )  # fmt: skip


def build_model(scale: Scale, seed: int) -> Llama:
    torch.manual_seed(seed)
    return Llama(model_config(scale))


@torch.no_grad()
def score(
    model: nn.Module, tokens: np.ndarray, seq_len: int, batch_size: int = 16
) -> dict[str, float]:
    """Mean NLL (nats) and top-1 accuracy of the next token over the non-overlapping windows of
    ``tokens`` (``len(tokens) − 1`` must be a multiple of ``seq_len``)::

        NLL = −(1/N) Σ_i log p(x_{i+1} | window prefix),   acc = (1/N) Σ_i [argmax p = x_{i+1}]
    """
    n_pred = len(tokens) - 1
    if n_pred < seq_len or n_pred % seq_len:
        raise ValueError(f"len(tokens) − 1 must be a positive multiple of {seq_len}, got {n_pred}")
    stream = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    starts = torch.arange(0, n_pred, seq_len)
    was = model.training
    model.eval()
    nll, hits = 0.0, 0
    try:
        for i in range(0, len(starts), batch_size):
            win = stream[starts[i : i + batch_size, None] + torch.arange(seq_len + 1)]
            logits = model(win[:, :-1]).float()
            logp = F.log_softmax(logits, dim=-1)
            y = win[:, 1:]
            nll -= float(logp.gather(-1, y[..., None]).double().sum())
            hits += int((logits.argmax(-1) == y).sum())
    finally:
        model.train(was)
    return {"nll": nll / n_pred, "acc": hits / n_pred}


def fill_replay(streams: Streams, scale: Scale, seed: int) -> ReplayBuffer:
    """Reservoir sample (capacity ``replay_capacity`` windows) of exactly the phase-1 stream."""
    order = DataOrder(streams.a_train, scale.seq_len, scale.batch_size, seed=seed)
    buf = ReplayBuffer(scale.replay_capacity, generator=torch.Generator().manual_seed(seed))
    for k in range(scale.phase1_steps):
        x, y = order.get_batch(k)
        buf.add(x, y)
    return buf


def _sequence_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-window mean cross-entropy ``[n]`` (the loss the sleep phase replays)."""
    per = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
    return per.mean(1)


def phase2_hooks(
    method: str,
    model: Llama,
    streams: Streams,
    scale: Scale,
    seed: int,
    diagnostics: dict[str, Any] | None = None,
) -> tuple[Callable[..., tuple[torch.Tensor, dict[str, float]]], list[Callable[[StepInfo], None]]]:
    """The loss function and callbacks that make ``method`` out of plain phase-2 training.

    ``diagnostics`` (EWC only) receives the total Fisher mass Σ F of ours and of Aura's published
    estimator (squared batch-mean gradients) on the same windows, and ``"penalty"``, a callable
    returning the current penalty.
    """
    if method == "naive":
        return cross_entropy_loss, []
    if method.startswith("ewc-"):
        lam = float(method.split("-", 1)[1])
        # Our EWC has the ½ (Kirkpatrick); Aura's penalty λ Σ F Δθ² has none: lam = 2λ.
        ewc = EWC(model, lam=2.0 * lam, fisher="true", estimator="sequence")
        order = DataOrder(streams.a_train, scale.seq_len, 1, seed=seed + 1000)
        batches = [order.get_batch(k) for k in range(scale.fisher_windows)]
        ewc.update_fisher(batches, generator=torch.Generator().manual_seed(seed))
        ewc.consolidate()
        if diagnostics is not None:
            # Aura's estimator on training-size batches drawn from the same order.
            big = DataOrder(streams.a_train, scale.seq_len, scale.batch_size, seed=seed + 1000)
            n_big = max(1, scale.fisher_windows // scale.batch_size)
            published = diagonal_fisher(
                model, [big.get_batch(k) for k in range(n_big)], fisher="published"
            )
            fisher = ewc.anchors[0][1]
            diagnostics["fisher_sum"] = float(sum(f.sum() for f in fisher.values()))
            diagnostics["fisher_published_sum"] = float(sum(f.sum() for f in published.values()))
            diagnostics["penalty"] = lambda: float(ewc.penalty().detach())

        def ewc_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
            task, _ = cross_entropy_loss(m, x, y)
            pen = ewc.penalty()
            return task + pen, {"task": float(task.detach()), "ewc": float(pen.detach())}

        return ewc_loss, []
    buffer = fill_replay(streams, scale, seed)
    if method == "replay-10pct":
        k = max(1, round(REPLAY_RATIO * scale.batch_size))

        def replay_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
            s = buffer.sample(k)
            return cross_entropy_loss(m, torch.cat([x, s.x]), torch.cat([y, s.y]))

        return replay_loss, []
    if method == "sleep":
        period = max(1, scale.phase2_steps // SLEEPS_PER_PHASE)
        cfg = SleepConfig(
            steps=scale.sleep_steps, batch_size=scale.batch_size, plasticity=SLEEP_PLASTICITY
        )
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)

        def sleep_cb(info: StepInfo) -> None:
            if info.step % period == 0:
                for g in opt.param_groups:
                    g["lr"] = info.lr  # sleep() scales it by the plasticity
                sleep(info.model, opt, buffer, _sequence_ce, cfg)

        return cross_entropy_loss, [sleep_cb]
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# ---------------------------------------------------------------------------------------------
# Runs (cached as JSON records so an interrupted study resumes)


#: The definitions a run record depends on (analysis and report code may change freely).
_TRAINING_CODE = (
    "EWC_LAMBDAS", "METHODS", "REPLAY_RATIO", "SLEEP_PLASTICITY", "SLEEPS_PER_PHASE", "Scale",
    "SCALES", "_join", "_cut", "load_streams", "model_config", "build_model", "score",
    "fill_replay", "_sequence_ce", "phase2_hooks", "_train_config", "phase1", "phase2",
)  # fmt: skip


def _code_hash() -> str:
    """Hash of this file (the report's provenance)."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _training_code_hash() -> str:
    """Hash of the definitions in :data:`_TRAINING_CODE` (their AST, so formatting and comments
    do not count): a run record is reused only while they are unchanged."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    parts = []
    for node in tree.body:
        names = [getattr(node, "name", None)]
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [getattr(t, "id", None) for t in targets]
        if any(n in _TRAINING_CODE for n in names):
            parts.append(ast.dump(node))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def sweep(grid: Sequence[float], dev_nll: Callable[[float], float], max_extra: int = 2) -> float:
    """The LR with the lowest dev NLL; while it sits at an edge of the grid, the grid grows past
    that edge by the grid's own outer ratio (at most ``max_extra`` points), as the experiment
    framework does."""
    lrs = sorted(grid)
    results = {lr: dev_nll(lr) for lr in lrs}
    for _ in range(max_extra if len(lrs) > 1 else 0):
        best = min(results, key=lambda lr: results[lr])
        known = sorted(results)
        if best == known[-1]:
            new = best * known[-1] / known[-2]
        elif best == known[0]:
            new = best * known[0] / known[1]
        else:
            break
        results[new] = dev_nll(new)
    return min(results, key=lambda lr: results[lr])


def _train_config(scale: Scale, lr: float, steps: int, seed: int, out_dir: Path) -> TrainConfig:
    return TrainConfig(
        lr=lr, min_lr=lr / 10, warmup_steps=max(1, steps // 20), max_steps=steps,
        batch_size=scale.batch_size, seq_len=scale.seq_len, seed=seed, precision="fp32",
        out_dir=str(out_dir), log_every=max(1, steps // 20), progress=False, plot=False,
        keep_checkpoints=1,
    )  # fmt: skip


def _record(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    if path.is_file():
        rec = json.loads(path.read_text())
        if rec.get("key") == key:
            return rec  # type: ignore[no-any-return]
    return None


def phase1(
    streams: Streams, scale: Scale, seed: int, lr: float, out: Path, cache: Path
) -> tuple[dict[str, Any], Path]:
    """Train on A; record dev-A NLL (for the LR choice) and held-out A/B scores; keep weights."""
    key = {
        "phase": 1,
        "seed": seed,
        "lr": lr,
        "scale": asdict(scale),
        "train_code": _training_code_hash(),
    }
    tag = f"phase1-seed{seed}-lr{lr:g}"
    rec_path, weights = out / "runs" / f"{tag}.json", cache / f"{tag}.pt"
    rec = _record(rec_path, key)
    if rec is not None and weights.is_file():
        return rec, weights
    model = build_model(scale, seed)
    order = DataOrder(streams.a_train, scale.seq_len, scale.batch_size, seed=seed)
    t0 = time.perf_counter()
    res = train(model, _train_config(scale, lr, scale.phase1_steps, seed, cache / tag), order)
    rec = {
        "key": key, "phase": 1, "seed": seed, "lr": lr, "wall_s": time.perf_counter() - t0,
        "tokens": res.tokens, "train_loss_last": res.losses[-1],
        "dev_a": score(model, streams.a_dev, scale.seq_len),
        "a": score(model, streams.a_eval, scale.seq_len),
        "b": score(model, streams.b_eval, scale.seq_len),
    }  # fmt: skip
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    rec_path.write_text(json.dumps(rec, indent=1))
    return rec, weights


def phase2(
    streams: Streams, scale: Scale, seed: int, method: str, lr: float, p1: dict[str, Any],
    weights: Path, out: Path, cache: Path,
) -> dict[str, Any]:  # fmt: skip
    """Train on B from the phase-1 model of ``seed`` with ``method``; curves of A and B."""
    key = {
        "phase": 2, "seed": seed, "method": method, "lr": lr, "phase1_lr": p1["lr"],
        "scale": asdict(scale), "train_code": _training_code_hash(),
    }  # fmt: skip
    tag = f"phase2-{method}-seed{seed}-lr{lr:g}"
    rec_path = out / "runs" / f"{tag}.json"
    rec = _record(rec_path, key)
    if rec is not None:
        return rec
    model = build_model(scale, seed)
    model.load_state_dict(torch.load(weights, weights_only=True))
    t0 = time.perf_counter()
    diag: dict[str, Any] = {}
    loss_fn, callbacks = phase2_hooks(method, model, streams, scale, seed, diag)
    order = DataOrder(streams.b_train, scale.seq_len, scale.batch_size, seed=seed)
    every = max(1, scale.phase2_steps // scale.curve_points)

    def eval_fn(m: nn.Module) -> dict[str, float]:
        a, b = score(m, streams.a_eval, scale.seq_len), score(m, streams.b_eval, scale.seq_len)
        return {"nll_a": a["nll"], "acc_a": a["acc"], "nll_b": b["nll"], "acc_b": b["acc"]}

    cfg = _train_config(scale, lr, scale.phase2_steps, seed, cache / tag).replace(eval_every=every)
    res = train(model, cfg, order, loss_fn=loss_fn, eval_fn=eval_fn, callbacks=callbacks)
    if "penalty" in diag:
        diag["penalty_final"] = diag.pop("penalty")()
    # Scored after every callback (the sleep phase at the last step included).
    a, b = score(model, streams.a_eval, scale.seq_len), score(model, streams.b_eval, scale.seq_len)
    start = {"step": 0, "nll_a": p1["a"]["nll"], "acc_a": p1["a"]["acc"],
             "nll_b": p1["b"]["nll"], "acc_b": p1["b"]["acc"]}  # fmt: skip
    curve = [start] + [{k: e[k] for k in ("step", "nll_a", "acc_a", "nll_b", "acc_b")}
                       for e in res.evals]  # fmt: skip
    rec = {
        "key": key, "phase": 2, "seed": seed, "method": method, "lr": lr,
        "wall_s": time.perf_counter() - t0, "tokens_b": res.tokens,
        "train_loss_last": res.losses[-1], "before": {"a": p1["a"], "b": p1["b"]},
        "after": {"a": a, "b": b}, "dev_b": score(model, streams.b_dev, scale.seq_len),
        "curve": curve, "diagnostics": diag,
    }  # fmt: skip
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    rec_path.write_text(json.dumps(rec, indent=1))
    return rec


# ---------------------------------------------------------------------------------------------
# Analysis


def forgetting(rec: dict[str, Any]) -> dict[str, float]:
    """Both published-style definitions and the B side of one phase-2 run."""
    a0, a1 = rec["before"]["a"], rec["after"]["a"]
    b0, b1 = rec["before"]["b"], rec["after"]["b"]
    return {
        "rel_nll_rise_a": (a1["nll"] - a0["nll"]) / a0["nll"],
        "rel_acc_drop_a": (a0["acc"] - a1["acc"]) / a0["acc"],
        "nll_rise_a": a1["nll"] - a0["nll"],
        "acc_drop_a": a0["acc"] - a1["acc"],
        "nll_a_after": a1["nll"],
        "nll_b_after": b1["nll"],
        "nll_b_drop": b0["nll"] - b1["nll"],
    }


def interval_verdict(values: Sequence[float], low: float, high: float) -> dict[str, Any]:
    """Is the mean of ``values`` inside ``[low, high]``? (one-sample t CI, 95 %)

    confirmed: the CI lies inside; refuted: the CI lies wholly outside; inconclusive: otherwise.
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"values must hold at least 2 seeds, got {n}")
    if not low <= high:
        raise ValueError(f"low must be <= high, got {low} and {high}")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    lo, hi = mean - h, mean + h
    ci = f"95% CI [{lo:.3f}, {hi:.3f}] (mean {mean:.3f}, n = {n})"
    if low <= lo and hi <= high:
        return {"outcome": "confirmed", "reason": f"{ci} lies inside [{low:g}, {high:g}]"}
    if hi < low or lo > high:
        return {"outcome": "refuted", "reason": f"{ci} lies outside [{low:g}, {high:g}]"}
    return {"outcome": "inconclusive", "reason": f"{ci} overlaps the edge of [{low:g}, {high:g}]"}


def analyse(
    runs: dict[str, list[dict[str, Any]]], p1: list[dict[str, Any]], floors: dict[str, Any]
) -> dict[str, Any]:
    """Per-method summaries, paired comparisons with naive, and the verdict rows."""
    per = {m: [forgetting(r) for r in rs] for m, rs in runs.items()}
    margins = [floors["a"]["bigram_nll"] - r["a"]["nll"] for r in p1]
    informative = min(margins) > FLOOR_MARGIN
    gate = (
        None
        if informative
        else f"the phase-1 model beats the bigram floor on A by only {min(margins):.3f} nats "
        f"(< {FLOOR_MARGIN}) on some seed: the scale is not informative"
    )
    summary: dict[str, Any] = {}
    for m, rows in per.items():
        summary[m] = {
            k: {"mean": float(np.mean([r[k] for r in rows])), "values": [r[k] for r in rows]}
            for k in rows[0]
        }
    naive = per["naive"]
    naive_b_drop = float(np.mean([r["nll_b_drop"] for r in naive]))
    comparisons: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    nv = [r["rel_nll_rise_a"] for r in naive]
    v = (
        {"outcome": "not testable", "reason": gate}
        if gate
        else interval_verdict(nv, *CLAIMED_NAIVE_RANGE)
    )
    verdicts.append({
        "claim": "without EWC (naive fine-tuning on B) forgetting of A is 40–60 % "
                 "(relative rise of held-out NLL on A)",
        **v, "measured": f"{np.mean(nv):.1%} (seeds: {', '.join(f'{x:.1%}' for x in nv)})",
    })  # fmt: skip
    for m in METHODS[1:]:
        rows = per[m]
        stats = {
            k: paired([r[k] for r in rows], [r[k] for r in naive]).as_dict()
            for k in ("rel_nll_rise_a", "rel_acc_drop_a", "nll_b_after")
        }
        b_frac = float(np.mean([r["nll_b_drop"] for r in rows])) / naive_b_drop
        comparisons.append({"method": m, "paired_vs_naive": stats, "b_gain_fraction": b_frac})
        s = paired([r["rel_nll_rise_a"] for r in rows], [r["rel_nll_rise_a"] for r in naive])
        vd = verdict(
            s, claimed=CLAIMED_REDUCTION, smallest_of_interest=SMALLEST_OF_INTEREST,
            direction="lower", not_testable=gate,
        ).as_dict()  # fmt: skip
        if vd["outcome"] == "confirmed" and b_frac < B_GAIN_FRACTION:
            vd = {"outcome": "inconclusive",
                  "reason": f"{vd['reason']}, but it learns only {b_frac:.0%} of naive's drop of "
                            f"NLL on B (< {B_GAIN_FRACTION:.0%}): less forgetting bought by "
                            "learning B less"}  # fmt: skip
        verdicts.append({
            "claim": f"{m} forgets less than naive fine-tuning (claimed: 30 points less, "
                     "40 % → 10 %; relative NLL rise on A)",
            **vd,
            "measured": f"Δ = {100 * s.mean:+.1f} pp (95% CI [{100 * s.ci_low:+.1f}, "
                        f"{100 * s.ci_high:+.1f}], MDE {100 * s.mde:.1f} pp); learns "
                        f"{b_frac:.0%} of naive's B gain",
        })  # fmt: skip
        if m.startswith("ewc-"):
            for key, what in (("rel_nll_rise_a", "relative NLL rise"),
                              ("rel_acc_drop_a", "relative accuracy drop")):  # fmt: skip
                vals = [r[key] for r in rows]
                iv = (
                    {"outcome": "not testable", "reason": gate}
                    if gate
                    else interval_verdict(vals, -math.inf, CLAIMED_EWC_MAX)
                )
                if iv["outcome"] == "confirmed" and b_frac < B_GAIN_FRACTION:
                    iv = {"outcome": "inconclusive",
                          "reason": f"{iv['reason']}, but it learns only {b_frac:.0%} of naive's "
                                    f"drop of NLL on B (< {B_GAIN_FRACTION:.0%}): low forgetting "
                                    "bought by learning B less"}  # fmt: skip
                verdicts.append({
                    "claim": f"{m} keeps forgetting of A ≤ 10 % ({what} on held-out A)",
                    **iv, "measured": f"{np.mean(vals):.1%} "
                                      f"(seeds: {', '.join(f'{x:.1%}' for x in vals)})",
                })  # fmt: skip
    return {
        "informative": informative,
        "floor_margin_a": margins,
        "methods": summary,
        "comparisons": comparisons,
        "verdicts": verdicts,
    }


# ---------------------------------------------------------------------------------------------
# Report and plots


def plot(runs: dict[str, list[dict[str, Any]]], analysis: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    methods = list(runs)
    xs = np.arange(len(methods))
    for ax, key, label in (
        (axes[0], "rel_nll_rise_a", "forgetting: relative NLL rise on A"),
        (axes[1], "rel_acc_drop_a", "forgetting: relative accuracy drop on A"),
        (axes[2], "nll_b_after", "held-out NLL on B after phase 2 (nats)"),
    ):
        vals = [analysis["methods"][m][key]["values"] for m in methods]
        ax.bar(xs, [np.mean(v) for v in vals], color="#9bb7d4")
        for i, v in enumerate(vals):
            ax.plot([i] * len(v), v, "k.", ms=5)
        ax.set_xticks(xs, methods, rotation=30, ha="right")
        ax.set_title(label, fontsize=10)
        if key == "rel_nll_rise_a":
            ax.axhline(CLAIMED_EWC_MAX, color="g", ls="--", lw=1, label="claimed EWC ≤ 10 %")
            ax.axhspan(*CLAIMED_NAIVE_RANGE, color="r", alpha=0.1, label="claimed naive 40–60 %")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "forgetting.png", dpi=110)
    plt.close(fig)
    names.append("forgetting.png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for m in methods:
        steps = [p["step"] for p in runs[m][0]["curve"]]
        for ax, key in ((axes[0], "nll_a"), (axes[1], "nll_b")):
            ys = np.array([[p[key] for p in r["curve"]] for r in runs[m]])
            (line,) = ax.plot(steps, ys.mean(0), label=m)
            ax.fill_between(steps, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)
    axes[0].set_title("held-out NLL on A during phase 2 (mean, band = seed range)", fontsize=10)
    axes[1].set_title("held-out NLL on B during phase 2", fontsize=10)
    for ax in axes:
        ax.set_xlabel("phase-2 optimizer step")
        ax.set_ylabel("nats / byte")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    names.append("curves.png")
    return names


def render_report(res: dict[str, Any], report_dir: Path, out: Path) -> str:
    rel = Path(os.path.relpath(out, report_dir))
    sc, fl, an = res["scale_config"], res["floors"], res["analysis"]
    data = res["data"]
    sub = " **(substitute corpora: numbers say nothing about TinyStories/Shakespeare)**"
    lines = [
        f"# {res['title']}",
        "",
        f"Scale `{res['scale']}`; A = `{data['corpus_a']}`, B = `{data['corpus_b']}`"
        + (sub if data["substitute"] else "")
        + f"; byte tokenizer (V = 257) shared by A and B; generated by `study.py` (code "
        f"{res['code']}, commit {res['environment'].get('git_commit', '?')}) on "
        f"{res['environment']['date_utc']} ({res['environment']['machine']}, "
        f"{res['environment']['threads']} thread(s), fp32). Claim, definitions and rules: "
        "[CLAIM.md](CLAIM.md). Raw records: "
        f"[`{rel}/runs/`]({rel}/runs/), summary [`{rel}/results.json`]({rel}/results.json).",
        "",
        "## Setup",
        "",
        f"- Model: Llama-style decoder (RMSNorm, RoPE, SwiGLU, tied embeddings), d = "
        f"{sc['d_model']}, L = {sc['n_layers']}, H = {sc['n_heads']}, F = {sc['ffn_dim']}, "
        f"{res['n_params']:,} parameters; every method trains this same model (iso-parameter by "
        "construction; the Aura HippocampalTransformer is not used — the claim is about EWC).",
        f"- Phase 1 (A): {sc['phase1_steps']} steps × {sc['batch_size']} × {sc['seq_len']} tokens "
        f"= {res['phase1_tokens']:,} tokens; LR grid {sc['lr_grid_phase1']} on seed "
        f"{sc['seeds'][0]} (grown past an edge while the best sits there; tried "
        f"{[lr for lr, _ in res['lr_table_phase1']]}), chosen by dev-A NLL: **{res['lr_phase1']:g}**.",
        f"- Phase 2 (B): {sc['phase2_steps']} steps, {res['phase2_tokens']:,} B tokens for every "
        f"method; LR grid {sc['lr_grid_phase2']} run with naive fine-tuning on seed "
        f"{sc['seeds'][0]} (grown the same way; tried {[lr for lr, _ in res['lr_table_phase2']]}), "
        f"chosen by dev-B NLL: **{res['lr_phase2']:g}**, then used by every "
        "method (methods are not re-tuned). AdamW (0.9, 0.95), wd 0.1, warmup 5 %, cosine to "
        "LR/10, clip 1.0, fp32.",
        f"- EWC: Fisher of the phase-1 model on {sc['fisher_windows']} A-train windows (true "
        "Fisher, labels sampled from the model, sequence estimator = unbiased token-level "
        "Fisher, eval mode), penalty λ Σ F (θ − θ*)² in Aura's convention (no ½).",
        f"- Replay: {max(1, round(REPLAY_RATIO * sc['batch_size']))} A windows per step on top "
        f"of the {sc['batch_size']} B windows, from a {sc['replay_capacity']}-window reservoir "
        "sample of the phase-1 stream.",
        f"- Sleep: every {max(1, sc['phase2_steps'] // SLEEPS_PER_PHASE)} steps, "
        f"{sc['sleep_steps']} replay steps (batch {sc['batch_size']}) from the same reservoir at "
        f"{SLEEP_PLASTICITY}× the current LR (its own AdamW), no pruning.",
        f"- Seeds {sc['seeds']}: seed s fixes the init, the phase-1 order, the phase-2 order, the "
        "reservoir and the Fisher sample; all methods of a seed share them (paired).",
        f"- Evaluation: first {res['n_eval_a']:,} tokens of the A validation split and "
        f"{res['n_eval_b']:,} of B's held-out split; dev splits carved from train choose the LRs "
        "only.",
        "",
        "## Floors (on exactly the evaluated tokens) and the phase-1 model",
        "",
        "| stream | unigram | bigram | phase-1 model (mean over seeds) | margin below bigram |",
        "|---|---|---|---|---|",
    ]
    p1a = float(np.mean([r["a"]["nll"] for r in res["phase1"]]))
    p1b = float(np.mean([r["b"]["nll"] for r in res["phase1"]]))
    lines.append(f"| A held-out | {fl['a']['unigram_nll']:.4f} | {fl['a']['bigram_nll']:.4f} | "
                 f"{p1a:.4f} | {fl['a']['bigram_nll'] - p1a:+.4f} |")  # fmt: skip
    lines.append(f"| B held-out | {fl['b']['unigram_nll']:.4f} | {fl['b']['bigram_nll']:.4f} | "
                 f"{p1b:.4f} (before training on B) | — |")  # fmt: skip
    lines += [
        "",
        f"Informative (phase-1 model beats A's bigram floor by > {FLOOR_MARGIN} nats on every "
        f"seed): **{'yes' if an['informative'] else 'no'}** (margins "
        f"{', '.join(f'{m:.3f}' for m in an['floor_margin_a'])}).",
        "",
        "## Results per method (mean over seeds)",
        "",
        "| method | rel. NLL rise on A | rel. acc. drop on A | NLL A after | NLL B after | "
        "B gain vs naive | wall s / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, s in an["methods"].items():
        frac = s["nll_b_drop"]["mean"] / an["methods"]["naive"]["nll_b_drop"]["mean"]
        wall = np.mean([r["wall_s"] for r in res["runs"][m]])
        lines.append(
            f"| {m} | {s['rel_nll_rise_a']['mean']:.1%} | {s['rel_acc_drop_a']['mean']:.1%} | "
            f"{s['nll_a_after']['mean']:.4f} | {s['nll_b_after']['mean']:.4f} | {frac:.0%} | "
            f"{wall:.0f} |"
        )
    lines += [
        "",
        "Before phase 2 (mean): NLL A "
        f"{p1a:.4f}, accuracy A {np.mean([r['a']['acc'] for r in res['phase1']]):.3f}, NLL B "
        f"{p1b:.4f}.",
        "",
        "![per-method forgetting](" + str(rel / "forgetting.png") + ")",
        "",
        "## Paired differences with naive fine-tuning (method − naive; 95 % t CI, MDE at 80 % "
        "power)",
        "",
        "| method | Δ rel. NLL rise on A | Δ rel. acc. drop on A | Δ NLL on B after |",
        "|---|---|---|---|",
    ]

    def fmt(p: dict[str, Any], pct: bool) -> str:
        f = (lambda x: f"{x:+.1%}") if pct else (lambda x: f"{x:+.4f}")
        return f"{f(p['mean'])} [{f(p['ci_low'])}, {f(p['ci_high'])}], MDE {f(p['mde'])[1:]}"

    for c in an["comparisons"]:
        p = c["paired_vs_naive"]
        lines.append(f"| {c['method']} | {fmt(p['rel_nll_rise_a'], True)} | "
                     f"{fmt(p['rel_acc_drop_a'], True)} | {fmt(p['nll_b_after'], False)} |")  # fmt: skip
    lines += [
        "",
        "## EWC diagnostics (mean over seeds)",
        "",
        "Σ F is the total diagonal Fisher of the phase-1 model: ours (token-level) and Aura's "
        "published estimator (squared batch-mean gradients) on the same A windows; the penalty "
        "λ Σ F (θ − θ*)² is measured after the last phase-2 step, beside that step's training "
        "loss (task + penalty).",
        "",
        "| method | Σ F (ours) | Σ F (Aura's estimator) | penalty at the end | train loss at the end |",
        "|---|---|---|---|---|",
    ]
    for m, rs in res["runs"].items():
        if not m.startswith("ewc-"):
            continue
        d = [r["diagnostics"] for r in rs]
        lines.append(
            f"| {m} | {np.mean([x['fisher_sum'] for x in d]):.4g} | "
            f"{np.mean([x['fisher_published_sum'] for x in d]):.4g} | "
            f"{np.mean([x['penalty_final'] for x in d]):.4g} | "
            f"{np.mean([r['train_loss_last'] for r in rs]):.4f} |"
        )
    lines += [
        "",
        "## Learning curves (phase 2)",
        "",
        "![curves](" + str(rel / "curves.png") + ")",
        "",
        "| method | step | NLL A | NLL B | acc A |",
        "|---|---|---|---|---|",
    ]
    for m, rs in res["runs"].items():
        for i, pt in enumerate(rs[0]["curve"]):
            a = np.mean([r["curve"][i]["nll_a"] for r in rs])
            b = np.mean([r["curve"][i]["nll_b"] for r in rs])
            acc = np.mean([r["curve"][i]["acc_a"] for r in rs])
            lines.append(f"| {m} | {pt['step']} | {a:.4f} | {b:.4f} | {acc:.3f} |")
    lines += [
        "",
        "(The last curve point of `sleep` is scored before the sleep phase of the final step; the "
        "tables above score every method after all its steps.)",
        "",
        "## Verdicts",
        "",
        "| claim | outcome | measured | reason |",
        "|---|---|---|---|",
    ]
    for v in an["verdicts"]:
        lines.append(f"| {v['claim']} | **{v['outcome']}** | {v['measured']} | {v['reason']} |")
    lines += ["", "## LR selection (dev splits, seed " + str(sc["seeds"][0]) + ")", ""]
    lines += [f"- phase 1, LR {lr}: dev-A NLL {nll:.4f}" for lr, nll in res["lr_table_phase1"]]
    lines += [
        f"- phase 2 (naive), LR {lr}: dev-B NLL {nll:.4f}" for lr, nll in res["lr_table_phase2"]
    ]
    lines += ["", f"Total wall time {res['wall_s'] / 60:.1f} min.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run(
    scale: str, out: Path, *, data_dir: str | None, substitute: bool, report_path: Path | None
) -> dict[str, Any]:
    """Run the study at ``scale`` into ``out``; write the report; return results.json's content."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    sc = SCALES[scale]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "runs" / "cache" / NAME / scale
    t0 = time.perf_counter()
    streams = load_streams(sc, data_dir, substitute)
    floors = {
        "a": fit_floors(streams.a_train, streams.a_dev, streams.a_eval, 257).as_dict(),
        "b": fit_floors(streams.b_train, streams.b_dev, streams.b_eval, 257).as_dict(),
    }
    s0 = sc.seeds[0]
    grid1: dict[float, tuple[dict[str, Any], Path]] = {}

    def dev_a(lr: float) -> float:
        grid1[lr] = phase1(streams, sc, s0, lr, out, cache)
        return float(grid1[lr][0]["dev_a"]["nll"])

    lr1 = sweep(sc.lr_grid_phase1, dev_a)
    p1 = {s0: grid1[lr1]}
    for s in sc.seeds[1:]:
        p1[s] = phase1(streams, sc, s, lr1, out, cache)
    grid2: dict[float, dict[str, Any]] = {}

    def dev_b(lr: float) -> float:
        grid2[lr] = phase2(streams, sc, s0, "naive", lr, p1[s0][0], p1[s0][1], out, cache)
        return float(grid2[lr]["dev_b"]["nll"])

    lr2 = sweep(sc.lr_grid_phase2, dev_b)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for s in sc.seeds:
        for m in METHODS:
            runs[m].append(phase2(streams, sc, s, m, lr2, p1[s][0], p1[s][1], out, cache))
    phase1_recs = [p1[s][0] for s in sc.seeds]
    an = analyse(runs, phase1_recs, floors)
    pngs = plot(runs, an, out)
    res: dict[str, Any] = {
        "title": TITLE,
        "scale": scale,
        "data": {
            "corpus": f"{streams.corpus_a} then {streams.corpus_b}",
            "corpus_a": streams.corpus_a,
            "corpus_b": streams.corpus_b,
            "substitute": streams.substitute,
            "tokenizer": "byte (V = 257)",
        },
        "environment": {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "threads": torch.get_num_threads(),
            "precision": "fp32",
            "torch": torch.__version__,
            "git_commit": _git_commit(),
        },
        "code": _code_hash(),
        "train_code": _training_code_hash(),
        "scale_config": asdict(sc),
        "n_params": sum(p.numel() for p in build_model(sc, 0).parameters()),
        "phase1_tokens": sc.phase1_steps * sc.batch_size * sc.seq_len,
        "phase2_tokens": sc.phase2_steps * sc.batch_size * sc.seq_len,
        "n_eval_a": len(streams.a_eval) - 1,
        "n_eval_b": len(streams.b_eval) - 1,
        "floors": floors,
        "lr_phase1": lr1,
        "lr_phase2": lr2,
        "lr_table_phase1": [(lr, grid1[lr][0]["dev_a"]["nll"]) for lr in sorted(grid1)],
        "lr_table_phase2": [(lr, grid2[lr]["dev_b"]["nll"]) for lr in sorted(grid2)],
        "phase1": phase1_recs,
        "runs": runs,
        "analysis": an,
        "plots": pngs,
        "other_verdicts": an["verdicts"],
        "informative": {
            "ok": an["informative"],
            "reason": f"phase-1 margin below the bigram floor on A: {min(an['floor_margin_a']):.3f} nats "
            f"(needs > {FLOOR_MARGIN})",
        },
        "wall_s": time.perf_counter() - t0,
    }
    (out / "results.json").write_text(json.dumps(res, indent=1))
    report = Path(report_path) if report_path is not None else out / "REPORT.md"
    report.write_text(render_report(res, report.parent, out))
    return res
