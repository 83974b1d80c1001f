"""Aggregate the runs of ``run.py`` into results/*.json, plots, the verdict table and REPORT.md.

Every verdict is computed from the numbers by the rule written next to it here and in the report,
so a re-run with other numbers cannot keep a stale verdict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from configs import ARM_DESCRIPTIONS, ARMS, EPOCH_TOKENS, NCN_ARMS, ScalePreset

from neuro_models.evaluate import mean_std
from neuro_models.ncn import Signals, plot_scan

#: ΔNLL implied by the claim "≥ 5.5 ppl for a standard transformer vs 4.5 for NCN".
CLAIMED_GAP = math.log(5.5) - math.log(4.5)
#: Paired (same seed, same data order) differences of held-out NLL and what each isolates.
PAIRS = (
    ("B", "A", "NCN (causal, intended init) vs the Llama-style baseline"),
    ("B", "A'", "NCN (causal, intended init) vs its own backbone without the control network"),
    ("A'", "A", "published GPT-2-like backbone vs Llama-style backbone"),
    ("D", "B", "published (zeroed) init vs intended init, both causal"),
    ("C", "D", "non-causal vs causal pooling, both with the published init (the leak)"),
    ("C", "A'", "the published NCN vs its backbone without the control network"),
)
PUBLISHED_INIT_REG = 0.01 * ((math.log(2) + 0.01 - 1) ** 2 + 0.25)


def _ms(values: list[float]) -> dict[str, float]:
    m, s = mean_std(values)
    return {"mean": m, "std": s, "n": len(values)}


def _fmt(d: dict[str, float], digits: int = 4) -> str:
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"


def select_runs(
    runs: list[dict], extra: list[dict], sweep_lr: dict[str, float], n_seeds: int
) -> tuple[list[dict], dict[str, float], dict[str, str], list[dict[str, Any]]]:
    """Pick each arm's learning rate among its full-budget runs by mean **dev** NLL.

    ``runs`` used the sweep's choice; ``extra`` are supplementary full-budget runs of some arms at
    other rates (``run.py --arms X --lr R``). A rate needs all ``n_seeds`` seeds to compete. The
    validation stories are never used for the choice.

    Returns ``(chosen runs, lr per arm, source per arm, candidate table)``.
    """
    pool = [*runs, *extra]
    chosen_lr, source, table = dict(sweep_lr), dict.fromkeys(ARMS, "sweep"), []
    for a in ARMS:
        by_lr: dict[float, list[dict]] = {}
        for r in pool:
            if r["arm"] == a:
                by_lr.setdefault(r["lr"], []).append(r)
        for lr, rs in sorted(by_lr.items()):
            table.append({"arm": a, "lr": lr, "n": len(rs), "dev_nll": _ms([r["dev_nll"] for r in rs]),
                          "valid_nll": _ms([r["valid"]["nll"] for r in rs]),
                          "from": "sweep choice" if lr == sweep_lr[a] else "supplementary"})  # fmt: skip
        complete = {lr: rs for lr, rs in by_lr.items() if len(rs) == n_seeds}
        if len(complete) > 1:
            best = min(complete, key=lambda lr: sum(r["dev_nll"] for r in complete[lr]))
            if best != sweep_lr[a]:
                chosen_lr[a], source[a] = best, "full-budget dev NLL"
    chosen = [r for r in pool if r["lr"] == chosen_lr[r["arm"]]]
    chosen.sort(key=lambda r: (ARMS.index(r["arm"]), r["seed"]))
    return chosen, chosen_lr, source, table


def summarize(
    p: ScalePreset,
    scale: str,
    seeds: tuple[int, ...],
    counts: dict[str, dict[str, int]],
    configs: dict[str, Any],
    sweep: list[dict],
    best_lr: dict[str, float],
    runs: list[dict],
    n_train: int,
    n_valid: int,
    wall_s: float,
) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for a in ARMS:
        rs = [r for r in runs if r["arm"] == a]
        entry: dict[str, Any] = {
            "description": ARM_DESCRIPTIONS[a],
            "params": counts[a],
            "lr": best_lr[a],
            "valid_nll": _ms([r["valid"]["nll"] for r in rs]),
            "valid_ppl": _ms([r["valid"]["ppl"] for r in rs]),
            "valid_bpb": _ms([r["valid"]["bpb"] for r in rs]),
            "dev_nll": _ms([r["dev_nll"] for r in rs]),
            "leak_delta_nll": _ms([r["leak"]["delta_nll"] for r in rs]),
            "leak_delta_nll_at_t": _ms([r["leak"]["delta_nll_at_t"] for r in rs]),
            "train_s": _ms([r["train_s"] for r in rs]),
        }
        if a in NCN_ARMS:
            sig = [r["signals"] for r in rs]
            n_layers = len(sig[0]["precision"]["mean"])
            deep = list(range(n_layers // 2, n_layers))
            but = [r["reaction"].get(" but", {}) for r in rs]
            controls = [w for w in rs[0]["reaction"] if w != " but"]

            def max_abs(entries: list[dict], layers: list[int]) -> float:
                vals = [abs(e[n][i]) for e in entries for n in ("gain", "precision", "gate")
                        if e.get(n) is not None for i in layers]  # fmt: skip
                return max(vals) if vals else float("nan")

            beta_means = [[s["precision"]["mean"][i] for s in sig] for i in range(n_layers)]
            layer_beta = [sum(v) / len(v) for v in beta_means]
            within_sd = [math.sqrt(sum(s["precision"]["var_within"][i] for s in sig) / len(sig))
                         for i in range(n_layers)]  # fmt: skip
            entry.update({
                "init_signals": {k: _ms([r["init_signals"][k] for r in rs])
                                 for k in ("gain", "precision", "gate", "homeostatic")},
                "final_homeostatic": _ms([s["homeostatic"] for s in sig]),
                "gate_below_0.1": _ms([s["gate_below"] for s in sig]),
                "gain_p01": min(s["gain_p01_p99"][0] for s in sig),
                "gain_p99": max(s["gain_p01_p99"][1] for s in sig),
                "signal_mean": {n: [sum(s[n]["mean"][i] for s in sig) / len(sig)
                                    for i in range(n_layers)]
                                for n in ("gain", "precision", "gate")},
                "within_fraction": {n: _ms([s[n]["within_fraction"] for s in sig])
                                    for n in ("gain", "precision", "gate")},
                "layer_precision_mean": layer_beta,
                "precision_sd": sum(sum(s["precision"]["std"]) / n_layers for s in sig) / len(sig),
                "layer_precision_within_sd": within_sd,
                "but_count": sum(b.get("count", 0) for b in but),
                "but_max_abs_z_deep": max_abs(but, deep),
                "controls_max_abs_z_deep": max_abs(
                    [r["reaction"][w] for r in rs for w in controls], deep
                ),
            })  # fmt: skip
        arms[a] = entry
    pairs = {}
    for x, y, meaning in PAIRS:
        dx = {r["seed"]: r["valid"]["nll"] for r in runs if r["arm"] == x}
        dy = {r["seed"]: r["valid"]["nll"] for r in runs if r["arm"] == y}
        diffs = [dx[k] - dy[k] for k in sorted(dx) if k in dy]
        pairs[f"{x} - {y}"] = {**_ms(diffs), "meaning": meaning}
    return {
        "scale": scale,
        "paired_differences": pairs,
        "preset": p.to_dict(),
        "seeds": list(seeds),
        "train_tokens_available": n_train,
        "valid_tokens": n_valid,
        "tokens_per_run": p.tokens_per_run,
        "passes_over_train_head": p.tokens_per_run / n_train,
        "fraction_of_epoch": p.tokens_per_run / EPOCH_TOKENS,
        "configs": {a: _config_dict(c) for a, c in configs.items()},
        "lr_sweep": [{k: r[k] for k in ("arm", "lr", "seed", "steps", "dev_nll")} for r in sweep],
        "arms": arms,
        "verdicts": verdicts(arms),
        "wall_s": wall_s,
    }


def _config_dict(c: Any) -> dict[str, Any]:
    import dataclasses

    d = c.to_dict() if hasattr(c, "to_dict") else dataclasses.asdict(c)
    d["class"] = type(c).__name__
    return d


def verdicts(arms: dict[str, Any]) -> list[dict[str, str]]:
    """One row per claim: claim, measured, verdict, reason."""
    out = []
    b, c = arms["B"], arms["C"]
    base = min(("A", "A'"), key=lambda a: arms[a]["valid_nll"]["mean"])
    x = arms[base]
    n = b["valid_nll"]["n"]
    d = b["valid_nll"]["mean"] - x["valid_nll"]["mean"]
    se = math.sqrt((b["valid_nll"]["std"] ** 2 + x["valid_nll"]["std"] ** 2) / max(n, 1))
    out.append({
        "claim": "18M NCN, 1 epoch: val loss 1.5082 / ppl 4.5",
        "measured": "not run at that scale (see budget)",
        "verdict": "inconclusive",
        "reason": "needs the 520M-token epoch; our data is a 2,316-story head, and C's own number "
                  "is not a causal-LM loss (leak row)",
    })  # fmt: skip
    if n < 2:
        v2 = "inconclusive"
    elif d < -2 * se:
        v2 = "confirmed"
    else:
        v2 = "not confirmed"
    out.append({
        "claim": "NCN beats a standard transformer of similar size (5.5 vs 4.5 ppl, "
                 f"ΔNLL ≈ {CLAIMED_GAP:.2f})",
        "measured": f"B − best baseline ({base}) = {d:+.4f} nats (2·se = {2 * se:.4f}); "
                    f"C − {base} = {c['valid_nll']['mean'] - x['valid_nll']['mean']:+.4f}",
        "verdict": v2,
        "reason": "rule: confirmed iff B is lower than the better of A/A' by > 2 standard errors "
                  "(seeds); equal tokens, data order, schedule, matched parameters",
    })  # fmt: skip
    leak_c, leak_b = c["leak_delta_nll"], b["leak_delta_nll"]
    if leak_c["mean"] > max(3 * leak_c["std"], 1e-3) and abs(leak_b["mean"]) < 1e-5:
        v3 = "not confirmed"
        r3 = (
            "C's held-out NLL at positions ≤ t rises when only tokens after t are randomized: "
            "its loss uses the future (B: no change, as causality requires)"
        )
    else:
        v3 = "inconclusive"
        r3 = (
            "C breaks the causality contract (tests), but at this scale the trained model's loss "
            "does not measurably depend on the future"
        )
    out.append({
        "claim": "the published validation loss is a held-out causal-LM loss",
        "measured": f"leak ΔNLL: C {_fmt(leak_c, 5)}, B {_fmt(leak_b, 5)}, at t: C "
                    f"{_fmt(c['leak_delta_nll_at_t'], 5)}",
        "verdict": v3, "reason": r3,
    })  # fmt: skip
    ic = c["init_signals"]
    off = abs(ic["precision"]["mean"] - 1) > 0.1 or abs(ic["gate"]["mean"] - 0.95) > 0.1
    out.append({
        "claim": "bias-init protocol starts at β ≈ 1, γ ≈ 0.95, g = 1",
        "measured": f"as published (C): β {ic['precision']['mean']:.3f}, γ {ic['gate']['mean']:.3f}"
                    f", g {ic['gain']['mean']:.3f}; ours (B): β "
                    f"{b['init_signals']['precision']['mean']:.3f}, γ "
                    f"{b['init_signals']['gate']['mean']:.3f}",
        "verdict": "not confirmed" if off else "confirmed",
        "reason": "the global weight init zeroes the signal biases after the protocol sets them"
                  if off else "init signals at the protocol's set points",
    })  # fmt: skip
    reg0, reg1 = ic["homeostatic"]["mean"], c["final_homeostatic"]["mean"]
    static = abs(reg1 - reg0) <= 0.15 * reg0
    out.append({
        "claim": "the flat L_reg ≈ 0.0033 shows homeostasis preventing control collapse",
        "measured": f"C: L_reg at init {reg0:.4f} (closed form {PUBLISHED_INIT_REG:.4f}), after "
                    f"training {reg1:.4f}",
        "verdict": "not confirmed" if static else "inconclusive",
        "reason": "the plateau is the value of the zeroed-bias init: the signals' mean levels "
                  "did not move, so the flat term shows no regulation" if static else
                  "L_reg moved away from its init value",
    })  # fmt: skip
    lo, hi = c["gain_p01"], c["gain_p99"]
    out.append({
        "claim": "gain g stays in a tight range 0.99-1.05",
        "measured": f"C: 1st-99th percentile {lo:.3f}-{hi:.3f}; B: {b['gain_p01']:.3f}-"
                    f"{b['gain_p99']:.3f}",
        "verdict": "confirmed" if lo >= 0.99 and hi <= 1.05 else "not confirmed",
        "reason": "g starts at exactly 1 with a near-zero-weight MLP; staying there is also what "
                  "an unused control network does",
    })  # fmt: skip
    gc, gb = c["gate_below_0.1"]["mean"], b["gate_below_0.1"]["mean"]
    out.append({
        "claim": "metabolic gating: γ near 0 for specific tokens/layers",
        "measured": f"fraction of (token, layer) with γ < 0.1: C {gc:.2%}, B {gb:.2%}",
        "verdict": "confirmed" if max(gc, gb) > 0.01 else "not confirmed",
        "reason": "rule: confirmed iff > 1% of entries have γ < 0.1 in C or B",
    })  # fmt: skip
    zb, zc = c["but_max_abs_z_deep"], c["controls_max_abs_z_deep"]
    zbb, zcb = b["but_max_abs_z_deep"], b["controls_max_abs_z_deep"]
    react = (zb > 2 and zb > zc) or (zbb > 2 and zbb > zcb)
    out.append({
        "claim": "signals react to the disjunction 'but' in deeper layers",
        "measured": f"max abs z of ' but' in the deeper half (C {zb:.2f}, B {zbb:.2f}) vs the most "
                    f"reactive control word (C {zc:.2f}, B {zcb:.2f})",
        "verdict": "confirmed" if react else "not confirmed",
        "reason": "rule: confirmed iff ' but' moves a deep-layer signal by > 2 sd and more than "
                  "any of ' and', ' the', ' was', ' so', ' then', '.'",
    })  # fmt: skip
    lp = c["layer_precision_mean"]
    spread = max(lp) - min(lp)
    wsd = sum(c["layer_precision_within_sd"]) / len(lp)
    out.append({
        "claim": "laminar specialization: some layers high β ('focuser'), others low ('scanner')",
        "measured": f"C per-layer mean β {', '.join(f'{v:.3f}' for v in lp)} (spread {spread:.3f},"
                    f" mean within-layer sd {wsd:.3f})",
        "verdict": "confirmed" if spread > 0.2 and spread > 2 * wsd else "not confirmed",
        "reason": "rule: confirmed iff per-layer mean β differ by > 0.2 and by > 2 within-layer "
                  "sd; the published scans came from a network with its tanh replaced",
    })  # fmt: skip
    wf = c["within_fraction"]["precision"]["mean"]
    wfb = b["within_fraction"]["precision"]["mean"]
    sd_c, sd_b = c["precision_sd"], b["precision_sd"]
    out.append({
        "claim": "phasic (token-driven) rather than tonic modulation",
        "measured": f"share of β variance across tokens within a sequence: C {wf:.2f}, B {wfb:.2f}"
                    f"; β sd over tokens: C {sd_c:.4f}, B {sd_b:.4f}",
        "verdict": "confirmed" if min(wf, wfb) > 0.5 and min(sd_c, sd_b) > 0.01 else
                   "not confirmed",
        "reason": "rule: confirmed iff most of β's variance is within sequences in both C and B "
                  "and β varies at all (sd > 0.01)",
    })  # fmt: skip
    return out


def verdict_table(rows: list[dict[str, str]]) -> str:
    lines = ["| claim | measured | verdict |", "| --- | --- | --- |"]
    lines += [f"| {r['claim']} | {r['measured']} | **{r['verdict']}** |" for r in rows]
    return "\n".join(lines)


def _plot_curves(path: Path, runs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for a in ARMS:
        rs = [r for r in runs if r["arm"] == a]
        tok = np.array([row["tokens"] for row in rs[0]["curve"]])
        ys = np.array([[row["lm_loss"] for row in r["curve"]] for r in rs])
        k = max(1, len(tok) // 15)
        kernel = np.ones(k) / k
        smooth = np.array([np.convolve(y, kernel, mode="valid") for y in ys])
        t = tok[k - 1 :]
        ax.plot(t, smooth.mean(0), label=f"{a}: {ARM_DESCRIPTIONS[a]}")
        ax.fill_between(t, smooth.min(0), smooth.max(0), alpha=0.2)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("training LM loss (nats/token, running mean)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("NCN TinyStories: LM loss, mean and range over seeds")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, summary: dict[str, Any], runs: list[dict], sweep: list[dict]) -> str:
    import torch

    res = out / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "summary.json").write_text(json.dumps(summary, indent=1))
    slim = [{k: v for k, v in r.items() if k not in ("curve", "scan")} for r in runs]
    (res / "runs.json").write_text(json.dumps(slim, indent=1))
    (res / "curves.json").write_text(
        json.dumps(
            [{k: r[k] for k in ("arm", "seed", "lr", "kind", "curve")} for r in [*sweep, *runs]]
        )
    )
    scans = {f"{r['arm']}-seed{r['seed']}": r["scan"] for r in runs if "scan" in r}
    (res / "scans.json").write_text(json.dumps(scans))
    _plot_curves(out / "loss_curves.png", runs)
    seed0 = summary["seeds"][0]
    for a in NCN_ARMS:
        s = scans[f"{a}-seed{seed0}"]
        sig = Signals(*(torch.tensor(s[n]) for n in ("gain", "precision", "gate")))
        plot_scan(
            sig,
            s["tokens"],
            str(out / f"scan_{a}.png"),
            title=f"arm {a} ({ARM_DESCRIPTIONS[a]}), seed {seed0}: g, β, γ per layer",
        )
    table = verdict_table(summary["verdicts"])
    (out / "REPORT.md").write_text(_report(summary, table))
    return table


def _report(s: dict[str, Any], table: str) -> str:
    p = s["preset"]
    arms = s["arms"]
    env = s["environment"]
    lines = [
        "# NCN on TinyStories: report",
        "",
        f"Scale **{s['scale']}**, seeds {s['seeds']}, run {env['date_utc']} on {env['cpu_count']} "
        f"CPU cores ({env['machine']}, torch {env['torch']}, {env['workers']} parallel runs), "
        f"{s['wall_s'] / 60:.1f} min wall. Load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in env['load_average_at_end'])} (the machine was shared).",
        "",
        "Reproduce: `python reproductions/ncn-tinystories/run.py --scale "
        f"{s['scale']}` (or `nox -s reproduce`); the raw numbers are in `results/`.",
        "",
    ]
    check = s.get("rerun_check")
    if check:
        lines += [
            f"Re-run check: {check['what']}; largest difference of any validation NLL, dev NLL "
            f"or sweep dev NLL between the two: {check['max_abs_diff']:g}.",
            "",
        ]
    lines += [
        "## Budget: what fraction of the claim's setting this covers",
        "",
        f"- Model: d {p['d_model']}, {p['n_layers']} layers, {p['n_heads']} heads, context "
        f"{p['seq_len']}, byte-level BPE V = {p['vocab_size']} trained on the train head; NCN "
        f"hidden {p['ncn_hidden']}, {p['ncn_heads']} pooling heads (published: d 256, 6 layers, "
        "8 heads, context 512, GPT-2 BPE V = 50,257, NCN hidden 64, 18.0M parameters).",
        f"- Tokens per run: {s['tokens_per_run']:,} ({p['steps']} steps × {p['batch_size']} × "
        f"{p['seq_len']}) = **{s['fraction_of_epoch']:.3%} of one TinyStories epoch** (520.3M "
        f"tokens in the published run) and {s['passes_over_train_head']:.2f} passes over the "
        f"{s['train_tokens_available']:,}-token train head we have (2,316 stories; the last "
        f"{p['dev_tokens']:,} tokens are held out as a dev set for the LR choice).",
        f"- Evaluation: TinyStories V1 **validation** head (800 stories, never trained on, never "
        f"used for a choice), {'all ' + format(s['valid_tokens'], ',') if p['eval_tokens'] is None else 'first ' + format(p['eval_tokens'], ',')}"
        " tokens, non-overlapping windows, dropout off, no regularizer in the number.",
        f"- Identical for all arms: tokenizer, data order per seed, {p['steps']} steps, AdamW "
        "(β 0.9/0.95, wd 0.1 on matrices, clip 1.0), warmup + cosine to lr/10, fp32, dropout "
        f"{p['dropout']}. Homeostatic λ = {p['reg_weight']} on the NCN arms (published). LR per "
        f"arm from a sweep over {p['sweep_lrs']} of {p['sweep_steps']} steps on seed "
        f"{s['seeds'][0]}, chosen on the dev set.",
        "",
        "## Arms and parameters (matched within 2% of B, asserted)",
        "",
        "| arm | description | params | vs B | control net | best lr |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    tb = arms["B"]["params"]["total"]
    src = s.get("lr_selection", {}).get("source", {})
    for a in ARMS:
        c = arms[a]["params"]
        lines.append(
            f"| {a} | {arms[a]['description']} | {c['total']:,} | "
            f"{c['total'] / tb - 1:+.2%} | {c['control']:,} | {arms[a]['lr']:g}"
            f"{' (full-budget dev)' if src.get(a, 'sweep') != 'sweep' else ''} |"
        )
    sel = s.get("lr_selection")
    if sel and len(sel["candidates"]) > len(ARMS):
        lines += [
            "",
            "Full-budget runs at more than one rate (supplementary runs, `run.py --arms X --lr R`);"
            " the rate with the lower mean **dev** NLL is used (validation never chooses):",
            "",
            "| arm | lr | from | seeds | dev NLL | valid NLL | used |",
            "| --- | ---: | --- | ---: | --- | --- | --- |",
        ]
        for c in sel["candidates"]:
            if sum(1 for d in sel["candidates"] if d["arm"] == c["arm"]) < 2:
                continue
            used = "yes" if arms[c["arm"]]["lr"] == c["lr"] else ""
            lines.append(f"| {c['arm']} | {c['lr']:g} | {c['from']} | {c['n']} | "
                         f"{_fmt(c['dev_nll'])} | {_fmt(c['valid_nll'])} | {used} |")  # fmt: skip
    lines += [
        "",
        "## Held-out results (mean ± sd over seeds)",
        "",
        "| arm | valid NLL (nats/token) | valid ppl | valid bits/byte | dev NLL | leak ΔNLL |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for a in ARMS:
        r = arms[a]
        lines.append(
            f"| {a} | {_fmt(r['valid_nll'])} | {_fmt(r['valid_ppl'], 2)} | "
            f"{_fmt(r['valid_bpb'])} | {_fmt(r['dev_nll'])} | "
            f"{_fmt(r['leak_delta_nll'], 5)} |"
        )
    lines += [
        "",
        "Paired differences of held-out NLL (same seed and data order; negative = first arm "
        "better), mean ± sd over seeds:",
        "",
        "| difference | nats/token | isolates |",
        "| --- | --- | --- |",
    ]
    for k, v in s["paired_differences"].items():
        lines.append(f"| {k} | {v['mean']:+.4f} ± {v['std']:.4f} | {v['meaning']} |")
    edge = [a for a in ARMS if arms[a]["lr"] == max(p["sweep_lrs"])]
    if edge:
        lines += [
            "",
            f"Note: the sweep picked the largest rate tried ({max(p['sweep_lrs']):g}) for "
            f"{', '.join(edge)}; a short sweep favours large rates, and the optimum for the full "
            "run may lie above the grid. Every arm had the same grid and rule.",
        ]
    lines += [
        "",
        "Leak ΔNLL: change of the held-out NLL at positions ≤ t = T/2 when every token after t is "
        f"replaced by a random one ({p['probe_windows']} validation windows). Zero for a causal "
        "model.",
        "",
        "## Signals of the trained NCN arms (validation windows)",
        "",
        "| arm | init g / β / γ | L_reg init → trained | g 1st-99th pct | γ < 0.1 | "
        "β within-seq var share | per-layer mean β | ' but' max abs z (deep) vs controls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in NCN_ARMS:
        r = arms[a]
        i = r["init_signals"]
        lines.append(
            f"| {a} | {i['gain']['mean']:.3f} / {i['precision']['mean']:.3f} / "
            f"{i['gate']['mean']:.3f} | {i['homeostatic']['mean']:.4f} → "
            f"{r['final_homeostatic']['mean']:.4f} | {r['gain_p01']:.3f}-{r['gain_p99']:.3f} | "
            f"{r['gate_below_0.1']['mean']:.2%} | {r['within_fraction']['precision']['mean']:.2f} "
            f"| {', '.join(f'{v:.2f}' for v in r['layer_precision_mean'])} | "
            f"{r['but_max_abs_z_deep']:.2f} vs {r['controls_max_abs_z_deep']:.2f} "
            f"(n = {r['but_count']}) |"
        )
    lines += [
        "",
        "## Verdicts",
        "",
        table,
        "",
        "Reasons and rules:",
        "",
    ]
    lines += [f"- *{r['claim']}*: {r['reason']}." for r in s["verdicts"]]
    lines += [
        "",
        "## What this run cannot say",
        "",
        "- Nothing about the absolute 1.5082 / 4.5 numbers: those need ~1,700× more tokens than a "
        "run here sees, the full train split (we have its first 2,316 stories), and GPT-2's "
        "tokenizer. Our perplexities are per BPE token of a much smaller vocabulary and are not "
        "comparable with them; bits per byte is the tokenizer-free number.",
        "- The NCN effect could grow or shrink with scale; the `gpu` scale (published shapes) has "
        "not been run yet (no GPU in this session).",
        "- Signal claims are tested on small models after a fraction of an epoch; 'not confirmed' "
        "means not seen here under the stated rule, not shown impossible.",
        "",
        "## Plots",
        "",
        "![loss curves](loss_curves.png)",
        "",
        "Signal scans of the trained, unmodified models (seed "
        f'{s["seeds"][0]}) on "Timmy wanted an apple. He looked in the box, but it was empty.":',
        "",
        "![scan B](scan_B.png)",
        "![scan C](scan_C.png)",
        "![scan D](scan_D.png)",
        "",
    ]
    return "\n".join(lines)
