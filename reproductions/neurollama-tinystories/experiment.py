"""NeuroLlama on TinyStories (``specs/reference-systems.md`` §1.12): the ablation ladder at equal
parameters, inference-time hooks on the trained baseline, and per-token early exit.

* Ladder: one NeuroLlama toggle at a time on a small Llama, each treatment's SwiGLU width re-chosen
  so that every arm has the reference arm's parameter count within 2 % (training-only heads
  included), same tokenizer, data order, token budget and LR protocol; then every toggle at once.
* Hooks (claim B) on each seed's trained ``base`` model: greedy continuations of 100 held-out
  prompts (16 tokens + 256 new) without and with each hook; repetition and diversity; held-out NLL.
* Early exit (claim C): arm ``exit`` is the baseline with exit heads after blocks 0, 1, 2 trained
  by deep supervision; exit temperatures fitted on the dev split; held-out NLL, mean layers used
  and measured FLOPs as the threshold sweeps 0.5-0.99, beside the ``base`` model truncated at each
  depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neuro_models.config import swiglu_hidden
from neuro_models.experiment import Arm, Comparison, Experiment, Scale, paired, smoke_scale
from neuro_models.generate import SamplingConfig, generate
from neuro_models.neurollama import (
    NeuroLlama,
    NeuroLlamaConfig,
    calibrate_exits,
    count_total,
    early_exit_decode,
    match_ffn,
    truncated_nll,
)
from neuro_models.neurollama import training_loss as neurollama_loss
from neuro_models.neurollama.hooks import HookConfig, apply_hooks
from neuro_objectives import distinct_n, rep_n, repeated_ngram_fraction

#: No numeric claim exists for the ladder (§1.1): the smallest improvement that matters is set to
#: 0.02 nats and the "claimed" effect to 0.05 nats (a module worth its complexity); see CLAIM.md.
SMALLEST_OF_INTEREST = 0.02
CLAIMED = 0.05
#: Claims B and C: the largest NLL cost that still counts as "without hurting" (nats).
NLL_TOLERANCE = 0.02

#: (d_model, n_layers, n_heads, n_kv_heads, vocab, seq_len) per scale.
SHAPES = {"smoke": (64, 2, 4, 2, 1024, 64), "cpu": (128, 4, 4, 2, 4096, 320)}
#: (prompts, prompt tokens, new tokens, exit-eval windows) per scale.
PROBE = {"smoke": (8, 8, 24, 2), "cpu": (100, 16, 256, 8)}
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)

SCALES = {
    "smoke": smoke_scale(),
    # 600 steps x 6 x 320 = 1.15M tokens per run (10 arms x 3.75 runs fit a 2-core session);
    # context 320 so that 16 + 256 generated tokens stay inside the trained length.
    "cpu": Scale(
        name="cpu", steps=600, batch_size=6, seq_len=320, seeds=(0, 1, 2),
        lr_grid=(1.5e-3, 3e-3, 6e-3), dev_tokens=32_768, eval_tokens=None, curve_tokens=32_768,
        note="about 0.3% of one TinyStories epoch; a small-model ablation, not the 8B design.",
    ),
}  # fmt: skip

OFF = dict(synaptic_modulation=False, cortical_columns=False, lateral_inhibition=False,
           predictive_coding=False, hebbian_attention=False, habituation=False,
           population_coding=False, early_exit=False, exit_layers=())  # fmt: skip

#: arm -> (toggles on top of OFF, description)
LADDER: dict[str, tuple[dict[str, Any], str]] = {
    "base": ({}, "Llama baseline (NeuroLlama with every toggle off)"),
    "scaling": ({"synaptic_modulation": True, "synaptic_mode": "static"},
                "+ synaptic scaling α_h (a reparameterization: the null control)"),
    "neuromod": ({"synaptic_modulation": True, "synaptic_mode": "context_dependent"},
                 "+ neuromodulated head gates from the causal prefix mean"),
    "matrix": ({"synaptic_modulation": True, "synaptic_mode": "full_matrix"},
               "+ synaptic modulation matrix (pair gate σ(a_i + b_j))"),
    "inhibition": ({"cortical_columns": True, "lateral_inhibition": True},
                   "+ lateral inhibition between columns (KV groups)"),
    "surprise": ({"predictive_coding": True}, "+ surprise loss (top-down prediction heads, 0.1)"),
    "hebbian": ({"hebbian_attention": True},
                "+ causal Hebbian fast-weight attention (odd layers)"),
    "voting": ({"population_coding": True}, "+ population tuning and entropy voting"),
    "all": ({"synaptic_modulation": True, "synaptic_mode": "context_dependent",
             "cortical_columns": True, "lateral_inhibition": True, "predictive_coding": True,
             "hebbian_attention": True, "population_coding": True},
            "every module above at once (gates as the synaptic mode)"),
    "exit": ({"early_exit": True},
             "baseline + exit heads after every block but the last, deep supervision (γ = 0.5)"),
}  # fmt: skip
LADDER_ARMS = [n for n in LADDER if n not in ("base", "exit")]

HOOKS = {
    "habituation": HookConfig(habituation=True),
    "hebbian": HookConfig(hebbian_strength=0.1),
    "temperature": HookConfig(adaptive_temperature=True),
    "voting": HookConfig(entropy_voting=True),
}


def _base(scale: str) -> NeuroLlamaConfig:
    d, n_layers, heads, kv, vocab, seq = SHAPES[scale]
    prompt, new = PROBE[scale][1:3]
    return NeuroLlamaConfig(vocab_size=vocab, num_layers=n_layers, hidden_dim=d, num_heads=heads,
                            num_kv_heads=kv, ffn_dim=swiglu_hidden(d),
                            max_seq_len=max(seq, prompt + new), rope_theta=10_000.0,
                            tie_embeddings=True, **OFF)  # fmt: skip


def arm_configs(scale: str) -> dict[str, NeuroLlamaConfig]:
    base = _base(scale)
    target = count_total(base)
    exits = {"exit_layers": tuple(range(base.num_layers - 1))}
    return {name: match_ffn(base.replace(**toggles, **(exits if name == "exit" else {})), target)
            if toggles else base for name, (toggles, _) in LADDER.items()}  # fmt: skip


def experiment(scale: str) -> Experiment:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    cfgs = arm_configs(scale)
    arms = [Arm(name=n, description=LADDER[n][1], config=c, build=NeuroLlama, loss=neurollama_loss)
            for n, c in cfgs.items()]  # fmt: skip
    comparisons = [
        Comparison(claim=f"A/{n}: the module lowers held-out NLL at equal size", arm=n,
                   reference="base", claimed=CLAIMED, smallest_of_interest=SMALLEST_OF_INTEREST,
                   what=LADDER[n][1])
        for n in LADDER_ARMS
    ]  # fmt: skip
    return Experiment(
        name="neurollama-tinystories", title="NeuroLlama on TinyStories: ablations, hooks, exits",
        corpus="tinystories", substitute="ptb", tokenizer="bpe", vocab_size=SHAPES[scale][4],
        arms=arms, reference="base", comparisons=comparisons, scale=SCALES[scale],
        analyze=analyze, report=report, plots=plots,
    )  # fmt: skip


# --------------------------------------------------------------------------- measurements


def _windows(tokens: np.ndarray, length: int, n: int) -> torch.Tensor:
    """The first ``n`` non-overlapping windows of ``length`` tokens, ``[n, length]``."""
    n = min(n, len(tokens) // length)
    idx = np.arange(n)[:, None] * length + np.arange(length)
    return torch.from_numpy(tokens[idx].astype(np.int64))


@torch.no_grad()
def _nll(model: torch.nn.Module, windows: torch.Tensor) -> float:
    total, count = 0.0, 0
    for chunk in windows.split(8):
        logits = model(chunk[:, :-1]).float()
        total += float(F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="sum"))
        count += chunk[:, 1:].numel()
    return total / count


def _repetition(seqs: list[list[int]]) -> dict[str, float]:
    return {"rep3": repeated_ngram_fraction(seqs, 3), "rep4": repeated_ngram_fraction(seqs, 4),
            "rep2_simctg": rep_n(seqs, 2), "distinct1": distinct_n(seqs, 1),
            "distinct2": distinct_n(seqs, 2)}  # fmt: skip


def _hooks(model: NeuroLlama, ctx: Any, scale: str) -> dict[str, Any]:
    n_prompts, prompt_len, new, _ = PROBE[scale]
    seq = model.config.max_seq_len
    prompts = _windows(ctx.evaluated, prompt_len, n_prompts)
    nll_windows = _windows(ctx.evaluated, min(seq, 321), 32)
    cfg = SamplingConfig(max_new_tokens=new, temperature=0)
    out: dict[str, Any] = {}
    for name, hooks in {"none": HookConfig(), **HOOKS}.items():
        hooked = apply_hooks(model, hooks) if hooks.active else model
        gen = generate(hooked, prompts, cfg, use_cache=not hooks.active)
        out[name] = {"nll": _nll(hooked, nll_windows), **_repetition(gen)}
    return out


def _exits(model: NeuroLlama, ctx: Any, scale: str) -> dict[str, Any]:
    seq = model.config.max_seq_len
    n_windows = PROBE[scale][3]
    dev = _windows(ctx.dev, min(seq, 321), 32)
    temps = calibrate_exits(model, dev)
    windows = _windows(ctx.evaluated, min(seq, 321), n_windows)
    sweep = []
    for thr in (None, *THRESHOLDS):
        r = early_exit_decode(model, windows, thr)
        sweep.append({"threshold": thr, "nll": r.mean_nll, "layers": r.mean_layers,
                      "compute": r.compute_fraction, "seconds": r.seconds})  # fmt: skip
    own = [
        float(truncated_nll(model, windows, k).mean()) for k in range(1, model.spec.n_layers + 1)
    ]
    return {"temperatures": temps, "sweep": sweep, "truncated": own}


def analyze(arm: Arm, model: torch.nn.Module, context: Mapping[str, Any]) -> dict[str, Any]:
    """Hooks and truncation on ``base``; the exit sweep on ``exit``; nothing on the ladder."""
    ctx = context["ctx"]
    scale = "smoke" if arm.config.hidden_dim == SHAPES["smoke"][0] else "cpu"
    assert isinstance(model, NeuroLlama)
    model.eval()
    if arm.name == "base":
        windows = _windows(ctx.evaluated, min(model.config.max_seq_len, 321), PROBE[scale][3])
        depths = range(1, model.spec.n_layers + 1)
        return {"hooks": _hooks(model, ctx, scale),
                "truncated": [float(truncated_nll(model, windows, k).mean()) for k in depths]}  # fmt: skip
    if arm.name == "exit":
        return {"exits": _exits(model, ctx, scale)}
    return {}


# --------------------------------------------------------------------------- claims B and C


def _ci(values: Sequence[float]) -> tuple[float, float, float]:
    st = paired(list(values), [0.0] * len(values))
    return st.mean, st.ci_low, st.ci_high


def _hook_section(by: dict[str, list[Mapping[str, Any]]], add: Any) -> list[str]:
    base = [a["hooks"] for a in by["base"]]
    lines = ["## B. Inference-time hooks on the trained baseline", "",
             f"{PROBE_TEXT}", "",
             "| hook | held-out NLL | Δ NLL vs none (95% CI) | repeated 3-grams | Δ (95% CI) | "
             "repeated 4-grams | distinct-2 |", "| --- | ---: | --- | ---: | --- | ---: | ---: |"]  # fmt: skip
    for name in ("none", *HOOKS):
        nll = [h[name]["nll"] for h in base]
        rep3 = [h[name]["rep3"] for h in base]
        row = f"| {name} | {np.mean(nll):.4f} | "
        if name == "none" or len(base) < 2:
            row += "– | "
        else:
            m, lo, hi = _ci([h[name]["nll"] - h["none"]["nll"] for h in base])
            row += f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
        row += f"{np.mean(rep3):.3f} | "
        if name == "none" or len(base) < 2:
            row += "– | "
        else:
            m, lo, hi = _ci([h[name]["rep3"] - h["none"]["rep3"] for h in base])
            row += f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
        row += f"{np.mean([h[name]['rep4'] for h in base]):.3f} | "
        row += f"{np.mean([h[name]['distinct2'] for h in base]):.3f} |"
        lines.append(row)
    if len(base) >= 2:
        dn = _ci([h["habituation"]["nll"] - h["none"]["nll"] for h in base])
        dr = _ci([h["habituation"]["rep3"] - h["none"]["rep3"] for h in base])
        measured = f"Δ rep-3 {dr[0]:+.3f} [{dr[1]:+.3f}, {dr[2]:+.3f}]; Δ NLL {dn[0]:+.4f} [{dn[1]:+.4f}, {dn[2]:+.4f}]"
        if dr[2] < 0 and dn[2] < NLL_TOLERANCE:
            outcome, why = "confirmed", "repetition CI below 0 and NLL cost CI below the tolerance"
        elif dr[1] >= 0 or dn[1] > NLL_TOLERANCE:
            outcome = "refuted"
            why = ("repetition does not fall (CI ≥ 0)" if dr[1] >= 0
                   else f"NLL rises by more than {NLL_TOLERANCE} nats (CI)")  # fmt: skip
        else:
            outcome, why = "inconclusive", "the CIs leave both answers open"
        add("B: habituation reduces repetition without hurting NLL", outcome, measured, why)
    return lines


def _exit_section(by: dict[str, list[Mapping[str, Any]]], add: Any) -> list[str]:
    runs = [a["exits"] for a in by["exit"]]
    base_trunc = [a["truncated"] for a in by["base"]]
    lines = ["## C. Per-token early exit", "", EXIT_TEXT, "",
             "| threshold | held-out NLL | mean layers used | compute vs full model | wall s |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    n_thr = len(runs[0]["sweep"])
    rows = []
    for i in range(n_thr):
        pts = [r["sweep"][i] for r in runs]
        thr = pts[0]["threshold"]
        row = {
            k: float(np.mean([p[k] for p in pts])) for k in ("nll", "layers", "compute", "seconds")
        }
        rows.append((thr, row, pts))
        label = "no exit" if thr is None else f"{thr:g}"
        lines.append(f"| {label} | {row['nll']:.4f} | {row['layers']:.2f} | {row['compute']:.3f} | "
                     f"{row['seconds']:.1f} |")  # fmt: skip
    depth = len(base_trunc[0])
    lines += ["", "Truncation at depth k (final norm and head read block k − 1's output):", "",
              "| depth k | base truncated NLL | exit model truncated NLL |", "| --- | ---: | ---: |"]  # fmt: skip
    for k in range(depth):
        lines.append(f"| {k + 1} | {np.mean([b[k] for b in base_trunc]):.4f} | "
                     f"{np.mean([r['truncated'][k] for r in runs]):.4f} |")  # fmt: skip
    lines += ["", "![early exit]({results}/early_exit.png)"]
    full = [p["nll"] for p in rows[0][2]]
    saving = []
    for thr, _row, pts in rows[1:]:
        d = _ci([p["nll"] - f for p, f in zip(pts, full)]) if len(pts) >= 2 else (0.0, 0.0, 0.0)
        saves = all(p["compute"] < 0.9 for p in pts)
        saving.append((thr, saves, d))
    ok = [s for s in saving if s[1] and s[2][2] < NLL_TOLERANCE]
    costly = all(not s[1] for s in saving)
    best = min(rows[1:], key=lambda r: r[1]["compute"])
    measured = (f"lowest compute {best[1]['compute']:.3f} of the full model at threshold {best[0]:g} "
                f"(mean {best[1]['layers']:.2f} layers, NLL {best[1]['nll']:.4f} vs {rows[0][1]['nll']:.4f})")  # fmt: skip
    if len(runs) < 2:
        add(
            "C: early exit saves compute at a confidence threshold",
            "not testable",
            measured,
            "fewer than 2 seeds",
        )
    elif ok:
        add(
            "C: early exit saves compute at a confidence threshold",
            "confirmed",
            measured,
            f"threshold {ok[0][0]:g}: < 90% of the FLOPs for every seed, NLL cost CI below {NLL_TOLERANCE}",
        )
    elif costly:
        add(
            "C: early exit saves compute at a confidence threshold",
            "refuted",
            measured,
            "no threshold brings any seed below 90% of the full model's FLOPs (the exit checks cost "
            "a d·V head each)",
        )
    else:
        add(
            "C: early exit saves compute at a confidence threshold",
            "inconclusive",
            measured,
            f"compute falls only where the NLL cost CI reaches {NLL_TOLERANCE} nats or more",
        )
    return lines


PROBE_TEXT = ("Greedy continuations of 100 held-out prompts (the first 16 tokens of 100 consecutive "
              "16-token windows of the evaluated split), 256 new tokens each; repeated n-grams: the "
              "fraction of n-gram occurrences whose n-gram occurs more than once in its continuation; "
              "held-out NLL on 32 windows of the evaluated split. Hooks change only inference; the "
              "weights are each seed's trained `base` model.")  # fmt: skip
EXIT_TEXT = ("Teacher-forced token-by-token decoding of 8 held-out windows with a KV cache; a token "
             "exits at the first exit whose calibrated max-probability reaches the threshold, and its "
             "keys/values for the skipped blocks come from the exited state. Compute counts the "
             "matmul FLOPs actually executed (blocks, K/V-only projections, exit heads, final head) "
             "over the full model's on the same tokens; exit temperatures are fitted on the dev "
             "split.")  # fmt: skip


def _plot_exits(by: dict[str, list[Mapping[str, Any]]], path: Any) -> None:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    fig = Figure(figsize=(10, 4), constrained_layout=True)
    ax = fig.subplots(1, 2)
    for run in by["exit"]:
        sw = run["exits"]["sweep"]
        ax[0].plot([p["layers"] for p in sw], [p["nll"] for p in sw], "o-", color="C0", alpha=0.6)
        ax[1].plot([p["compute"] for p in sw], [p["nll"] for p in sw], "o-", color="C0", alpha=0.6)
    for run in by["base"]:
        t = run["truncated"]
        ax[0].plot(range(1, len(t) + 1), t, "s--", color="C3", alpha=0.6)
    ax[0].set_xlabel("mean layers used")
    ax[0].set_ylabel("held-out NLL (nats)")
    ax[0].set_title("exit model (blue) vs base truncated (red)")
    ax[1].axvline(1.0, color="gray", lw=0.8)
    ax[1].set_xlabel("measured FLOPs / full model")
    ax[1].set_title("NLL against measured compute")
    fig.savefig(path, dpi=120)


def report(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> tuple[str, list]:
    cfgs = arm_configs(summary["scale_config"]["name"])
    arms = summary["arms"]
    lines = [
        "## A. Matched widths",
        "",
        "| arm | SwiGLU width | parameters |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {c.ffn_dim} | {arms[n]['params']:,} |" for n, c in cfgs.items() if n in arms
    ]
    verdicts: list[dict[str, str]] = []

    def add(claim: str, outcome: str, measured: str, reason: str) -> None:
        verdicts.append(
            {"claim": claim, "outcome": outcome, "measured": measured, "reason": reason}
        )

    by = _by_arm(runs)
    informative = summary["informative"]["ok"]
    if by["base"] and all("hooks" in a for a in by["base"]):
        lines += ["", *_hook_section(by, add if informative else lambda *a: None)]
    if _has_exits(by):
        lines += ["", *_exit_section(by, add if informative else lambda *a: None)]
    return "\n".join(lines), verdicts


def _by_arm(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by: dict[str, list[Mapping[str, Any]]] = {n: [] for n in LADDER}
    for r in sorted(runs, key=lambda r: r["seed"]):
        by[r["arm"]].append(r.get("analysis", {}))
    return by


def _has_exits(by: dict[str, list[Mapping[str, Any]]]) -> bool:
    return bool(by["exit"] and by["base"] and all("exits" in a for a in by["exit"])
                and all("truncated" in a for a in by["base"]))  # fmt: skip


def plots(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], out: Path) -> None:
    by = _by_arm(runs)
    if _has_exits(by):
        _plot_exits(by, out / "early_exit.png")
