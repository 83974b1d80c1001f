"""Aura's "perplexity 8–12": the same HippocampalTransformer trained with the one-token shift
(honest next-token prediction) and without it (the published copy task, labels = inputs), each
evaluated with and without the shift, on held-out and on training documents (see CLAIM.md).

Declared on :mod:`neuro_models.experiment`; run with
``python reproductions/run.py --only aura-perplexity --scale cpu``.

Arms (identical model, data order, tokens, schedule and LR protocol; only the training labels
differ, through :func:`neuro_models.aura.training_loss`):

* ``shift`` (reference): ``y_t = x_{t+1}``, plain cross-entropy.
* ``copy``: ``y_t = x_t`` (``published_labels=True``), the notebook's labels.

The framework scores both on held-out next-token NLL. :func:`analyze` adds, for each trained
model, the 2 × 2 × 2 table {held-out, training documents} × {shift, no shift} × {token stream,
the notebook's "Eval PPL" protocol on 20 documents}. Training-document tokens are the first
``len(evaluated)`` tokens of the train split (a fixed prefix, the same for every run); the
analysis replays the run's data order and records how many of those windows the run trained on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from neuro_models.aura import AuraConfig, HippocampalTransformer, notebook_eval_ppl, training_loss
from neuro_models.data import DataOrder
from neuro_models.evaluate import logits_of
from neuro_models.experiment import Arm, Experiment, Scale, fit_floors, smoke_scale
from neuro_models.experiment.stats import paired, t_quantile

VOCAB = 1024
#: Documents and shortest document of the notebook's eval cell (``notebook_eval_ppl`` defaults).
NOTEBOOK_DOCS = 20
#: The Colab script's ``AuraLoss``: label smoothing and entropy bonus (reference-systems §3.2).
COLAB_SMOOTHING = 0.1
COLAB_ENTROPY_BONUS = 0.05
#: The published claim (reference-systems §3.3): "Perplexity 8–12".
CLAIMED_PPL = (8.0, 12.0)

#: The model per scale: our HippocampalTransformer (place cells, our theta-gamma code, prosody
#: and memory query gates with zero prosody, GELU FFN, tied head), reference-systems §3.4's CPU
#: shape scaled to the budget. Dropout 0: each run sees the train split about once.
MODELS = {
    "smoke": AuraConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, ffn_dim=64,
                        max_seq_len=64, n_place_cells=64, dropout=0.0),
    "cpu": AuraConfig(vocab_size=VOCAB, d_model=96, n_layers=2, n_heads=4, ffn_dim=384,
                      max_seq_len=128, n_place_cells=256, dropout=0.0),
}  # fmt: skip

SCALES: dict[str, Scale] = {
    # CI: every code path in well under a minute; the numbers mean nothing (never informative).
    "smoke": smoke_scale(steps=6, batch_size=4, lr_grid=(2e-3, 4e-3, 8e-3), dev_tokens=2048,
                         eval_tokens=2048, curve_tokens=512),
    # One core, ~19 minutes for every run: 2 arms x (3 sweep points at 1/4 + 3 seeds) x 1.33M
    # tokens at ~116 µs per token, evaluations included (timed on a 600-step pilot run).
    "cpu": Scale(name="cpu", steps=650, batch_size=16, seq_len=128, seeds=(0, 1, 2),
                 lr_grid=(3e-3, 6e-3, 1.2e-2), sweep_fraction=0.25, max_grid_extensions=1,
                 dev_tokens=32_768, eval_tokens=32_768, curve_tokens=8192,
                 note="a 0.37M-parameter HippocampalTransformer (published: 131.6M) with a "
                      "1,024-token BPE (published: the 32,100-token FLAN-T5 SentencePiece), "
                      "1.33M tokens per run (published: ~253M); it shows what each protocol "
                      "measures, not the published model's absolute numbers."),
}  # fmt: skip


def shifted_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Next-token cross-entropy ``−(1/N) Σ_t log p(x_{t+1} | x_{≤t})`` (ours)."""
    return training_loss(model, inputs, targets)


def copy_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The notebook's loss without label smoothing: ``−(1/N) Σ_t log p(x_t | x_{≤t})`` (labels =
    inputs; ``targets`` unused), a copy task that causal attention solves at position t."""
    return training_loss(model, inputs, targets, published_labels=True)


# --------------------------------------------------------------------------- measurements


@torch.no_grad()
def stream_nll(model: nn.Module, tokens: np.ndarray, seq_len: int) -> dict[str, Any]:
    """Mean NLL on the non-overlapping windows of ``seq_len + 1`` tokens of ``tokens`` (as
    :func:`neuro_models.evaluate.evaluate`, full windows only), with and without the shift:

    ``shift = −(1/N) Σ log p(x_{t+1} | x_{≤t})``, ``no_shift = −(1/N) Σ log p(x_t | x_{≤t})``,
    both from the same logits of window positions ``0 … seq_len − 1``; N = windows · seq_len.
    """
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ValueError(f"tokens must hold at least seq_len + 1 = {seq_len + 1} tokens")
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    windows = torch.from_numpy(tokens[idx].astype(np.int64))
    was_training = model.training
    model.eval()
    sums = {"shift": 0.0, "no_shift": 0.0}
    try:
        for i in range(0, n, 32):
            w = windows[i : i + 32]
            x = w[:, :-1]
            logp = logits_of(model, x).float().log_softmax(-1)
            sums["shift"] -= float(logp.gather(-1, w[:, 1:, None]).double().sum())
            sums["no_shift"] -= float(logp.gather(-1, x[:, :, None]).double().sum())
    finally:
        model.train(was_training)
    count = n * seq_len
    return {"shift": sums["shift"] / count, "no_shift": sums["no_shift"] / count, "n_tokens": count}


@torch.no_grad()
def colab_pbar_loss(model: nn.Module, tokens: np.ndarray, seq_len: int) -> float:
    """The Colab script's progress-bar loss (its "ppl" is exp of it) on the windows of
    ``tokens``, in eval mode: ``L = CE_ε(shift) − λ·H̄`` with label smoothing ε = 0.1 and entropy
    bonus λ = 0.05 (:func:`neuro_models.aura.training_loss`), averaged over batches of 32 windows
    weighted by size."""
    n = (len(tokens) - 1) // seq_len
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    windows = torch.from_numpy(tokens[idx].astype(np.int64))
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, n, 32):
            w = windows[i : i + 32]
            loss, _ = training_loss(model, w[:, :-1], w[:, 1:], label_smoothing=COLAB_SMOOTHING,
                                    entropy_bonus=COLAB_ENTROPY_BONUS)  # fmt: skip
            total += float(loss) * len(w)
    finally:
        model.train(was_training)
    return total / n


def documents(tokens: np.ndarray, eos_id: int, n: int, min_tokens: int = 10) -> list[list[int]]:
    """The first ``n`` documents of a stream ``eos d1 eos d2 …`` with at least ``min_tokens``
    tokens (the notebook keeps documents of ≥ 10 tokens)."""
    cuts = np.flatnonzero(tokens == eos_id)
    bounds = [*cuts.tolist(), len(tokens)]
    out: list[list[int]] = []
    start = 0
    for b in bounds:
        doc = tokens[start:b].tolist()
        start = b + 1
        if len(doc) >= min_tokens:
            out.append(doc)
            if len(out) == n:
                break
    return out


def seen_windows(tokens: int, seq_len: int, batch_size: int, seed: int, steps: int,
                 n_prefix: int) -> dict[str, Any]:  # fmt: skip
    """How often a run of ``steps`` batches of ``DataOrder(train, seq_len, batch_size, seed)``
    visited each of the first ``n_prefix`` windows of the train split."""
    order = DataOrder(np.zeros(tokens, dtype=np.int64), seq_len, batch_size, seed=seed)
    visits = np.zeros(n_prefix, dtype=np.int64)
    for k in range(steps):
        ids = order.window_ids(k)
        np.add.at(visits, ids[ids < n_prefix], 1)
    return {"windows": n_prefix, "fraction_seen": float((visits > 0).mean()),
            "min_visits": int(visits.min()), "mean_visits": float(visits.mean())}  # fmt: skip


_FLOORS: dict[tuple[str, str], dict[str, float]] = {}


def _floors(ctx: Any, which: str, tokens: np.ndarray) -> dict[str, float]:
    """Unigram and bigram floors (fit on train, smoothed on dev) on exactly ``tokens`` (cached per
    data set; the training prefix is in-sample for these count models)."""
    key = (ctx.data_id, which)
    if key not in _FLOORS:
        f = fit_floors(ctx.train, ctx.dev, tokens, ctx.tokenizer.vocab_size)
        _FLOORS[key] = {"unigram_nll": f.unigram_nll, "bigram_nll": f.bigram_nll}
    return _FLOORS[key]


def analyze(scale: Scale, arm: Arm, model: nn.Module, context: Mapping[str, Any]) -> dict[str, Any]:
    """The 2 × 2 × 2 evaluations of one trained model (module docstring)."""
    ctx, seed = context["ctx"], context["seed"]
    seq = scale.seq_len
    n_eval = len(ctx.evaluated) - 1
    sets = {"held_out": ctx.evaluated, "train": ctx.train[: n_eval + 1]}
    eos = ctx.tokenizer.eos_id
    out: dict[str, Any] = {}
    for name, tokens in sets.items():
        docs = documents(tokens, eos, NOTEBOOK_DOCS)
        entry: dict[str, Any] = {"stream": stream_nll(model, tokens, seq), "notebook": {}}
        for shift in (True, False):
            ppl = notebook_eval_ppl(model, docs, pad_id=eos, shift=shift, n_documents=NOTEBOOK_DOCS)
            entry["notebook"]["shift" if shift else "no_shift"] = math.log(ppl)
        entry["notebook"]["n_documents"] = len(docs)
        entry["colab_pbar"] = colab_pbar_loss(model, tokens, seq)
        entry["floors"] = _floors(ctx, name, tokens)
        out[name] = entry
    out["train_prefix"] = seen_windows(len(ctx.train), seq, scale.batch_size, seed, scale.steps,
                                       n_eval // seq)  # fmt: skip
    return out


# --------------------------------------------------------------------------- report


CELLS = (
    ("held_out", "stream", "held-out tokens (stream)"),
    ("train", "stream", "training tokens (stream)"),
    ("held_out", "notebook", f"held-out documents (notebook Eval PPL, {NOTEBOOK_DOCS} docs)"),
    ("train", "notebook", f"training documents (notebook Eval PPL, {NOTEBOOK_DOCS} docs)"),
)


def _ci(xs: Sequence[float]) -> tuple[float, float, float]:
    """Mean and t-based 95% CI over seeds."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan"), float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return m, m - h, m + h


def _cell(xs: Sequence[float]) -> str:
    m, lo, hi = _ci(xs)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}] (ppl {math.exp(m):.2f})"


def values(by_arm: Mapping[str, Sequence[Mapping[str, Any]]], arm: str, where: str, protocol: str,
           shift: str) -> list[float]:  # fmt: skip
    """Per-seed NLL of one cell of the 2 × 2 × 2 table."""
    return [float(a[where][protocol][shift]) for a in by_arm[arm]]


def report(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict]]:
    """The 2 × 2 × 2 tables, floors, paired differences and the verdicts of CLAIM.md."""
    arms = list(summary["arms"])
    by: dict[str, list[Mapping[str, Any]]] = {a: [] for a in arms}
    for r in sorted(runs, key=lambda r: r["seed"]):
        by[r["arm"]].append(r["analysis"])
    seeds = summary["scale_config"]["seeds"]
    first = by[arms[0]][0]
    n_tok = first["held_out"]["stream"]["n_tokens"]
    tp = [a["train_prefix"] for arm in arms for a in by[arm]]
    lines = [
        "## What each protocol measures (2 × 2 × 2 per arm)", "",
        f"Each cell: mean NLL (nats/token) over seeds {', '.join(map(str, seeds))} with its "
        "t-based 95% CI, and exp(mean). *Shift*: label of position t is x_{t+1} (next-token "
        "prediction); *no shift*: label = x_t, the token the model is reading (the notebook's "
        f"labels). *Stream*: {n_tok:,} tokens in non-overlapping windows of "
        f"{summary['scale_config']['seq_len']}, as the framework's held-out NLL. *Notebook Eval "
        f"PPL*: `neuro_models.aura.notebook_eval_ppl`, the first {NOTEBOOK_DOCS} documents (≥ 10 "
        "tokens) each truncated to the context and scored alone, exp of the mean per-document "
        "CE; shown as its log. Held-out = the first tokens of the validation split (the "
        "framework's evaluated tokens); training = the first "
        f"{n_tok + 1:,} tokens of the train split, a fixed prefix: every run visited "
        f"{min(t['fraction_seen'] for t in tp):.1%}–{max(t['fraction_seen'] for t in tp):.1%} of "
        f"its {tp[0]['windows']} windows (each {min(t['min_visits'] for t in tp)}–"
        f"{max(t['min_visits'] for t in tp)} times at least), replayed from the run's data "
        "order.", "",
    ]  # fmt: skip
    for arm in arms:
        lines += [f"### Arm `{arm}`: {summary['arms'][arm]['description']}", "",
                  "| evaluated on | with shift (next token) | without shift (labels = inputs) |",
                  "| --- | --- | --- |"]  # fmt: skip
        for where, protocol, label in CELLS:
            lines.append(f"| {label} | {_cell(values(by, arm, where, protocol, 'shift'))} | "
                         f"{_cell(values(by, arm, where, protocol, 'no_shift'))} |")  # fmt: skip
        lines.append("")
    fl = {w: first[w]["floors"] for w in ("held_out", "train")}
    lines += ["### Floors on the evaluated stream tokens", "",
              "| tokens | unigram NLL (shift) | bigram NLL (shift) | floor without shift |",
              "| --- | ---: | ---: | --- |",
              f"| held-out | {fl['held_out']['unigram_nll']:.4f} | {fl['held_out']['bigram_nll']:.4f}"
              " | 0 (copy the input: ppl 1) |",
              f"| training prefix (in-sample for the count models) | "
              f"{fl['train']['unigram_nll']:.4f} | {fl['train']['bigram_nll']:.4f} | 0 (copy the "
              "input: ppl 1) |", "",
              "Count models fit on the train split (dev-chosen smoothing) and scored on exactly "
              "these tokens. Without the shift the label is visible to the model, so the floor is "
              "a perplexity of exactly 1, reached by copying.", ""]  # fmt: skip
    if len(seeds) >= 2:
        lines += ["### Paired differences `copy − shift` (same seed, same data order)", "",
                  "| evaluated on | with shift: Δ NLL [95% CI] | without shift: Δ NLL [95% CI] |",
                  "| --- | --- | --- |"]  # fmt: skip
        for where, protocol, label in CELLS:
            cells = []
            for sh in ("shift", "no_shift"):
                st = paired(values(by, "copy", where, protocol, sh),
                            values(by, "shift", where, protocol, sh))  # fmt: skip
                cells.append(f"{st.mean:+.3f} [{st.ci_low:+.3f}, {st.ci_high:+.3f}]")
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
        lines.append("")
    lines += ["### Gap between training and held-out tokens (stream, same model)", "",
              "Paired over seeds, `training − held-out` NLL; the two sets come from different "
              "splits (files) of the corpus, so the gap mixes memorisation with a change of "
              "distribution.", "",
              "| arm | with shift: Δ [95% CI] | without shift: Δ [95% CI] |", "| --- | --- | --- |"]  # fmt: skip
    for arm in arms:
        cells = []
        for sh in ("shift", "no_shift"):
            tr, ho = (
                values(by, arm, "train", "stream", sh),
                values(by, arm, "held_out", "stream", sh),
            )
            if len(tr) >= 2:
                st = paired(tr, ho)
                cells.append(f"{st.mean:+.3f} [{st.ci_low:+.3f}, {st.ci_high:+.3f}]")
            else:
                cells.append(f"{tr[0] - ho[0]:+.3f}")
        lines.append(f"| {arm} | {cells[0]} | {cells[1]} |")
    colab = {arm: [a["train"]["colab_pbar"] for a in by[arm]] for arm in arms}
    lines += ["", "### The Colab script's progress-bar \"ppl\" on the training tokens", "",
              f"exp of the training loss with label smoothing {COLAB_SMOOTHING} and the entropy "
              f"bonus {COLAB_ENTROPY_BONUS} subtracted (with the shift, as that script trains), in "
              "eval mode on the training prefix; it is not a perplexity of any distribution:", "",
              "| arm | loss [95% CI] | its \"ppl\" | the same tokens' plain NLL (ppl) |",
              "| --- | --- | ---: | --- |"]  # fmt: skip
    for arm in arms:
        m, lo, hi = _ci(colab[arm])
        plain = _ci(values(by, arm, "train", "stream", "shift"))[0]
        lines.append(f"| {arm} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {math.exp(m):.2f} | "
                     f"{plain:.3f} ({math.exp(plain):.2f}) |")  # fmt: skip
    lr = {arm: summary["arms"][arm]["lr"]["lr"] for arm in arms}
    lines += ["", "Learning rates: every arm's was chosen by the framework's protocol, i.e. by its "
              "*next-token* dev NLL (" + ", ".join(f"{a} {v:.3g}" for a, v in lr.items())
              + "); the notebook trained at 3e-4 with warmup 1500 at its own scale. The copy arm's "
              "numbers above are at its chosen rate only; its sweep is in the Tuning table.", ""]  # fmt: skip
    verdicts = judge(summary, by)
    lines += ["## Verdicts (rules in CLAIM.md)", "", "| claim | measured | verdict |",
              "| --- | --- | --- |"]  # fmt: skip
    lines += [f"| {v['claim']} | {v['measured']} | **{v['outcome']}**: {v['reason']} |"
              for v in verdicts]  # fmt: skip
    return "\n".join(lines), verdicts


def judge(summary: Mapping[str, Any], by: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict]:
    """The verdicts of CLAIM.md, from the per-seed tables."""
    ok = summary["informative"]["ok"]
    n_seeds = len(summary["scale_config"]["seeds"])
    verdicts: list[dict[str, str]] = []
    honest = values(by, "shift", "held_out", "stream", "shift")
    pub_copy = values(by, "copy", "train", "notebook", "no_shift")
    pub_shift = values(by, "shift", "train", "notebook", "no_shift")
    copy_honest = values(by, "copy", "held_out", "stream", "shift")
    m, lo, hi = _ci(honest)
    measured_ppl = (
        f"published protocol (no shift, {NOTEBOOK_DOCS} training documents): copy-trained "
        f"ppl {math.exp(_ci(pub_copy)[0]):.3f}, shift-trained ppl {math.exp(_ci(pub_shift)[0]):.2f}; "
        f"honest (shift, held-out stream) ppl of the shift-trained model "
        f"{math.exp(m):.2f} [{math.exp(lo):.2f}, {math.exp(hi):.2f}], of the copy-trained model "
        f"{math.exp(_ci(copy_honest)[0]):.1f}"
    )
    verdicts.append({
        "claim": "Aura: perplexity 8–12 (the 131.6M-parameter model on ~253M private tokens)",
        "outcome": "not testable",
        "measured": measured_ppl,
        "reason": "no held-out evaluation exists in the published code and its data is private; "
                  "at this scale neither protocol reproduces the published model's number, and "
                  "the published protocol measures a different quantity (next row)",
    })  # fmt: skip
    # The published protocol measures next-token prediction only if it ranks models as the
    # honest protocol does. Refuted: it ranks the copy-trained model better while the honest
    # protocol ranks it worse, both paired CIs excluding 0.
    reason_nt = None
    if not ok:
        reason_nt = summary["informative"]["reason"]
    elif n_seeds < 3:
        reason_nt = f"{n_seeds} seed(s): a verdict needs ≥ 3"
    if reason_nt is not None:
        outcome, why, measured = "not testable", reason_nt, "–"
    else:
        pub = paired(pub_copy, pub_shift)
        hon = paired(copy_honest, honest)
        measured = (
            f"copy − shift, published protocol: {pub.mean:+.3f} nats [{pub.ci_low:+.3f}, "
            f"{pub.ci_high:+.3f}]; honest protocol (held-out, shift): {hon.mean:+.3f} "
            f"[{hon.ci_low:+.3f}, {hon.ci_high:+.3f}]"
        )
        if pub.ci_high < 0 < hon.ci_low:
            outcome = "refuted"
            why = ("the published protocol ranks the copy-trained model better and the honest one "
                   "ranks it worse (both CIs exclude 0): it rewards copying the visible token, "
                   "not predicting the next one")  # fmt: skip
        elif pub.ci_low > 0 and hon.ci_low > 0:
            outcome, why = "confirmed", "both protocols rank the shift-trained model better"
        else:
            outcome, why = "inconclusive", "the two protocols' rankings are not both resolved"
    verdicts.append({"claim": "the published Eval PPL (labels = inputs, training documents) "
                              "measures next-token prediction", "outcome": outcome,
                     "measured": measured, "reason": why})  # fmt: skip
    return verdicts


def experiment(scale: str) -> Experiment:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    s = SCALES[scale]
    config = MODELS[scale].replace(max_seq_len=s.seq_len)
    arms = [
        Arm(name="shift", description="HippocampalTransformer, next-token labels (ours)",
            config=config, build=HippocampalTransformer, loss=shifted_loss),
        Arm(name="copy", description="the same model, labels = inputs (published copy task)",
            config=config, build=HippocampalTransformer, loss=copy_loss),
    ]  # fmt: skip
    return Experiment(
        name="aura-perplexity",
        title="Aura's \"perplexity 8–12\": what the published protocol measures",
        corpus="tinystories-v1v2", substitute="ptb", tokenizer="bpe", vocab_size=VOCAB, arms=arms,
        reference="shift", comparisons=[], scale=s, analyze=functools.partial(analyze, s),
        report=report, extra={"notebook_docs": NOTEBOOK_DOCS},
    )  # fmt: skip


__all__ = ["analyze", "copy_loss", "documents", "experiment", "report", "seen_windows",
           "shifted_loss", "stream_nll"]  # fmt: skip
