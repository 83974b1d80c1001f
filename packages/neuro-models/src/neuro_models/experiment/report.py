"""Summaries, verdicts, plots and REPORT.md of one experiment run, computed from its run records.

Nothing in a report is written by hand: every sentence that depends on scale, machine or results
is generated from the numbers here, so a re-run with other numbers cannot keep a stale sentence.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neuro_models._fileio import atomic_write_bytes
from neuro_models.experiment.spec import Experiment
from neuro_models.experiment.stats import paired, seeds_needed, t_quantile, verdict

__all__ = ["curve_trend", "informative", "summarize", "write"]

MIN_SEEDS = 3


def _ms(values: Sequence[float]) -> dict[str, float]:
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
            "n": len(v)}  # fmt: skip


def informative(ref_nll: float, bigram_nll: float, margin: float) -> tuple[bool, str]:
    """Whether the reference arm beats the bigram floor by at least ``margin`` nats."""
    gap = bigram_nll - ref_nll
    if gap >= margin:
        return True, (f"the reference arm is {gap:.3f} nats below the bigram floor "
                      f"(≥ {margin} required): the comparison is informative at this scale")  # fmt: skip
    where = f"only {gap:.3f} nats below" if gap > 0 else f"{-gap:.3f} nats above"
    return False, (f"the reference arm is {where} the bigram floor ({margin} below required): "
                   "the comparison is not informative at this scale; raise the budget")  # fmt: skip


def curve_trend(diffs_by_point: Sequence[float], final_se: float) -> str:
    """``"stable"``, ``"growing"``, ``"shrinking"`` or ``"changes sign"``: the mean paired
    difference at the last curve point against the middle one (more than one final standard
    error apart counts as a change)."""
    if len(diffs_by_point) < 2:
        return "stable"
    mid, last = diffs_by_point[len(diffs_by_point) // 2], diffs_by_point[-1]
    if mid * last < 0 and min(abs(mid), abs(last)) > final_se:
        return "changes sign"
    if abs(last) - abs(mid) > final_se:
        return "growing"
    if abs(mid) - abs(last) > final_se:
        return "shrinking"
    return "stable"


def summarize(
    exp: Experiment,
    *,
    ctx: Mapping[str, Any],
    floors: Mapping[str, Any],
    curve_floors: Mapping[str, Any],
    counts: Mapping[str, int],
    sweep: Sequence[Mapping[str, Any]],
    choice: Mapping[str, Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    code: str,
    environment: Mapping[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    """Everything the report and ``results.json`` hold, from the run records."""
    s = exp.scale
    seeds = list(s.seeds)
    by = {(r["arm"], r["seed"]): r for r in runs}
    ref_n = counts[exp.reference]
    arms: dict[str, Any] = {}
    for a in exp.arms:
        rs = [by[(a.name, sd)] for sd in seeds]
        pts = [c["tokens"] for c in rs[0]["curve"]]
        arms[a.name] = {
            "description": a.description, "params": counts[a.name],
            "params_vs_reference": counts[a.name] / ref_n - 1, "lr": choice[a.name],
            "valid_nll": _ms([r["valid"]["nll"] for r in rs]),
            "valid_ppl": _ms([r["valid"]["ppl"] for r in rs]),
            "valid_bpb": _ms([r["valid"]["bpb"] for r in rs]),
            "dev_nll": _ms([r["dev_nll"] for r in rs]),
            "per_seed_nll": [r["valid"]["nll"] for r in rs],
            "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in rs),
            "curve": {"tokens": pts, "per_seed": [[c["nll"] for c in r["curve"]] for r in rs]},
        }  # fmt: skip
    ref = arms[exp.reference]
    ok, why = informative(ref["valid_nll"]["mean"], floors["bigram_nll"], s.informative_margin)
    comps = []
    for c in exp.comparisons:
        entry: dict[str, Any] = {"claim": c.claim, "arm": c.arm, "reference": c.reference,
                                 "claimed": c.claimed, "smallest_of_interest": c.smallest_of_interest,
                                 "what": c.what, "headline": c.headline}  # fmt: skip
        a_vals, r_vals = arms[c.arm]["per_seed_nll"], arms[c.reference]["per_seed_nll"]
        st = paired(a_vals, r_vals) if len(seeds) >= 2 else None
        reason = None
        if not ok:
            reason = why
        elif len(seeds) < MIN_SEEDS:
            reason = f"{len(seeds)} seed(s): a verdict needs ≥ {MIN_SEEDS}"
        entry["stats"] = st.as_dict() if st else None
        entry["verdict"] = verdict(st, claimed=c.claimed, smallest_of_interest=c.smallest_of_interest,
                                   not_testable=reason).as_dict()  # fmt: skip
        if st is not None:
            entry["mde_ok"] = st.mde <= c.claimed / 2
            entry["seeds_for_half_claim"] = seeds_needed(max(st.sd, 1e-12), c.claimed / 2)
            per_point = [
                statistics.fmean(x - y for x, y in zip(pa, pr))
                for pa, pr in zip(zip(*arms[c.arm]["curve"]["per_seed"]),
                                  zip(*arms[c.reference]["curve"]["per_seed"]))
            ]  # fmt: skip
            entry["curve_diffs"] = per_point
            entry["trend"] = curve_trend(per_point, st.sd / math.sqrt(st.n))
        comps.append(entry)
    stale: dict[str, int] = {}
    for r in [*runs, *sweep]:
        if r.get("stale"):
            stale[r["code"]] = stale.get(r["code"], 0) + 1
    return {
        "experiment": exp.name, "title": exp.title, "scale": s.name, "scale_config": s.to_dict(),
        "declared_corpus": exp.corpus, "data": dict(ctx), "floors": dict(floors),
        "curve_floors": dict(curve_floors), "reference": exp.reference, "arms": arms,
        "informative": {"ok": ok, "reason": why, "margin": s.informative_margin},
        "comparisons": comps, "code": code, "stale_runs": stale,
        "run_hours": sum(r.get("wall_s", 0.0) for r in [*runs, *sweep]) / 3600,
        "environment": dict(environment), "wall_s": wall_s,
        "passes_over_train": s.tokens_per_run / max(1, ctx["train_tokens"]),
        "sweep": [{k: r[k] for k in ("arm", "lr", "seed", "steps", "tokens", "dev_nll")}
                  for r in sweep],
    }  # fmt: skip


# --------------------------------------------------------------------------- outputs


def runs_csv(runs: Sequence[Mapping[str, Any]], sweep: Sequence[Mapping[str, Any]]) -> str:
    """One row per run (sweep and main), for polars/pandas."""
    buf = io.StringIO()
    cols = ["kind", "arm", "lr", "seed", "steps", "tokens", "dev_nll", "valid_nll", "valid_ppl",
            "valid_bpb", "train_s", "tokens_per_s", "precision", "threads", "code"]  # fmt: skip
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for r in [*sweep, *runs]:
        v = r.get("valid", {})
        w.writerow({**{k: r.get(k) for k in cols}, "valid_nll": v.get("nll"),
                    "valid_ppl": v.get("ppl"), "valid_bpb": v.get("bpb")})  # fmt: skip
    return buf.getvalue()


def plot_curves(summary: Mapping[str, Any], path: Path) -> None:
    """Held-out NLL against training tokens: mean over seeds and the min–max band per arm."""
    # A bare Figure (no pyplot): the caller's matplotlib backend is never switched.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.subplots()
    for name, a in summary["arms"].items():
        x = a["curve"]["tokens"]
        cols = list(zip(*a["curve"]["per_seed"]))
        mean = [statistics.fmean(c) for c in cols]
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=f"{name} ({a['params'] / 1e6:.2f}M)")
        ax.fill_between(x, [min(c) for c in cols], [max(c) for c in cols],
                        color=line.get_color(), alpha=0.2)  # fmt: skip
    cf = summary["curve_floors"]
    ax.axhline(
        cf["bigram_nll"], color="k", ls="--", lw=1, label=f"bigram floor {cf['bigram_nll']:.3f}"
    )
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel(f"held-out NLL (nats/token, first {cf['n_eval_tokens']:,} validation tokens)")
    vals = [v for a in summary["arms"].values() for c in a["curve"]["per_seed"] for v in c]
    # Everything from the best point up to the unigram floor (early points above it say little).
    ax.set_ylim(min(vals) - 0.1, min(max(vals), cf["unigram_nll"]) + 0.1)
    data = summary["data"]
    ax.set_title(f"{summary['experiment']} [{summary['scale']}] on {data['corpus']}"
                 + (" (substitute)" if data["substitute"] else ""), fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def _f(x: float | None, d: int = 3, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:+.{d}f}" if sign else f"{x:.{d}f}"


def _mean_ci(values: Sequence[float]) -> str:
    n = len(values)
    if n < 2:
        return "– (one seed)"
    m, sd = statistics.fmean(values), statistics.stdev(values)
    h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return f"[{m - h:.4f}, {m + h:.4f}]"


def render(
    summary: Mapping[str, Any], extra_md: str, plot_rel: str, results_rel: str, repo_rel: str
) -> str:
    """REPORT.md text; links relative to the report, commands relative to the repository root."""
    s, d, fl = summary["scale_config"], summary["data"], summary["floors"]
    env = summary["environment"]
    ref = summary["reference"]
    corpus = d["corpus"] + (f" — **substitute corpus** (the claim is about "
                            f"{summary['declared_corpus']}; these numbers are not evidence about "
                            "that corpus)" if d["substitute"] else "")  # fmt: skip
    title = summary["title"] + (
        f" — on the substitute corpus {d['corpus']}" if d["substitute"] else ""
    )
    out = [f"# {title}", "",
           f"Generated by `neuro_models.experiment` from the runs in `{results_rel}` "
           f"(scale `{summary['scale']}`, code `{summary['code']}`, git `{env.get('git', 'unknown')}`, "
           f"{env['date_utc']}). "
           "The claims, their sources and the smallest effects of interest are in `CLAIM.md`.", ""]  # fmt: skip
    if s.get("note"):
        out += [f"*Scale note:* {s['note']}", ""]
    out += ["## Setup", "",
            f"- Corpus: {corpus}; read from "
            + ("the data directory" if os.path.isabs(d["corpus_source"]) else f"`{d['corpus_source']}`")
            + ".",
            f"- Tokenizer: `{d['tokenizer'][:12]}` (vocabulary {d['vocab_size']:,}, trained on the "
            "train split).",
            f"- Train: {d['train_tokens']:,} tokens; dev (last {d['dev_tokens']:,} train tokens, "
            "used for every choice); evaluated: the first "
            f"{d['evaluated_tokens']:,} validation tokens ({d['eval_bytes']:,.0f} bytes), never "
            "used for a choice.",
            f"- Budget per run: {s['steps']:,} steps × {s['batch_size']} × {s['seq_len']} = "
            f"{s['steps'] * s['batch_size'] * s['seq_len']:,} tokens "
            f"({summary['passes_over_train']:.2f} passes over the train tokens); seeds "
            f"{', '.join(map(str, s['seeds']))} (seed = data order + init, shared by every arm).",
            f"- Optimizer: AdamW (β 0.9/0.95, weight decay {s['weight_decay']}), clip "
            f"{s['grad_clip']}, warmup {s['warmup_fraction']:.0%} then cosine to "
            f"{s['min_lr_ratio']}× the peak rate; precision {env['precision']} "
            f"(CPU bf16: {'yes' if env['cpu_bf16'] else 'no'}).",
            f"- Machine: {env['machine']}, {env['cpu_count']} CPUs, {env['workers']} worker(s), "
            f"torch {env['torch']}, Python {env['python']}; the runs took "
            f"{summary.get('run_hours', 0.0):.2f} worker-hours in all (per-run times in "
            "`runs.csv`).", ""]  # fmt: skip
    out += ["## Arms", "", "| arm | what | parameters | vs reference | peak LR (dev-chosen) | "
            "held-out NLL | ppl | bits/byte | − bigram floor | tokens/s (median) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, a in summary["arms"].items():
        v = a["valid_nll"]
        out.append(
            f"| {name}{' (reference)' if name == ref else ''} | {a['description']} | "
            f"{a['params']:,} | {a['params_vs_reference']:+.2%} | {a['lr']['lr']:.3g} | "
            f"{v['mean']:.4f} ± {v['sd']:.4f} | {a['valid_ppl']['mean']:.2f} | "
            f"{a['valid_bpb']['mean']:.4f} | {v['mean'] - fl['bigram_nll']:+.3f} | "
            f"{a['tokens_per_s_median']:,.0f} |"
        )
    out += ["", "NLL in nats per token (mean ± sd over seeds), perplexity = exp(mean NLL). "
            "95% CI of each arm's mean NLL (t, n − 1 df): "
            + "; ".join(f"{name} {_mean_ci(a['per_seed_nll'])}" for name, a in summary["arms"].items())
            + ".", ""]  # fmt: skip
    if not summary["comparisons"]:
        out += ["This reproduction makes no comparison between arms, so it has no paired 95% CI and "
                "no minimum detectable effect (MDE).", ""]  # fmt: skip
    out += ["## Floors", "",
            "Count models fit on the train tokens, smoothing chosen on dev, scored on exactly the "
            "evaluated tokens:", "",
            "| floor | held-out NLL | bits/byte | smoothing (dev-chosen) | dev NLL |",
            "| --- | ---: | ---: | --- | ---: |",
            f"| unigram (additive) | {fl['unigram_nll']:.4f} | "
            f"{fl['unigram_nll'] * fl['n_eval_tokens'] / (math.log(2) * d['eval_bytes']):.4f} | "
            f"α = {fl['alpha']:g} | {fl['dev_unigram_nll']:.4f} |",
            f"| bigram (interpolated absolute discounting) | {fl['bigram_nll']:.4f} | "
            f"{fl['bigram_nll'] * fl['n_eval_tokens'] / (math.log(2) * d['eval_bytes']):.4f} | "
            f"D = {fl['discount']:g} | {fl['dev_bigram_nll']:.4f} |", "",
            f"**Informative?** {summary['informative']['reason'][0].upper()}"
            f"{summary['informative']['reason'][1:]}.", ""]  # fmt: skip
    out += ["## Learning curves", "", f"![held-out NLL against training tokens]({plot_rel})", "",
            f"Held-out NLL on the first {summary['curve_floors']['n_eval_tokens']:,} evaluated "
            "tokens at log-spaced budgets along each main run; line = mean over seeds, band = "
            "min–max over seeds, dashed = bigram floor on the same tokens.", ""]  # fmt: skip
    comps = summary["comparisons"]
    if comps:
        toks = summary["arms"][ref]["curve"]["tokens"]
        out += ["Mean paired difference (arm − reference, nats) at each budget:", "",
                "| comparison | " + " | ".join(f"{t / 1e6:.2g}M" for t in toks) + " | trend |",
                "| --- | " + " | ".join("---:" for _ in toks) + " | --- |"]  # fmt: skip
        for c in comps:
            if c.get("curve_diffs") is not None:
                out.append(f"| {c['arm']} − {c['reference']} | "
                           + " | ".join(f"{x:+.3f}" for x in c["curve_diffs"])
                           + f" | {c['trend']} |")  # fmt: skip
        out += ["", "Trend: the last budget's difference against the middle one; a change of "
                "more than one standard error of the final paired difference counts as growing or "
                "shrinking.", ""]  # fmt: skip
    if comps:
        out += ["## Comparisons and verdicts", "",
                "Paired by seed (same data order and init seed); t-based 95% CI with n − 1 degrees of "
                "freedom; MDE = minimum detectable effect (α 0.05, power 0.8). Rule "
                "(`neuro_models.experiment.stats.verdict`): **confirmed** if the CI excludes 0 in the "
                "claimed direction, **refuted** if it excludes the claimed improvement (or every "
                "improvement above the smallest effect of interest), **inconclusive** otherwise, "
                "**not testable** when the scale is not informative or has fewer than 3 seeds.", "",
                "| claim | comparison | what it isolates | mean Δ (nats) | paired sd | 95% CI | MDE | "
                "claimed | MDE ≤ claimed/2 | verdict |",
                "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |"]  # fmt: skip
        for c in comps:
            st = c["stats"]
            ci = f"[{st['ci_low']:+.3f}, {st['ci_high']:+.3f}]" if st else "–"
            mde_ok = ("yes" if c.get("mde_ok") else f"no (≈ {c['seeds_for_half_claim']} seeds needed)"
                      ) if st else "–"  # fmt: skip
            out.append(
                f"| {c['claim']} | {c['arm']} − {c['reference']} | {c['what']} | "
                f"{_f(st['mean'] if st else None, sign=True)} | {_f(st['sd'] if st else None)} | {ci} | "
                f"{_f(st['mde'] if st else None)} | −{c['claimed']:.3g} | {mde_ok} | "
                f"**{c['verdict']['outcome']}**: {c['verdict']['reason']} |"
            )
    out += [""]
    if extra_md:
        out += [extra_md.rstrip(), ""]
    out += ["## Tuning", "",
            f"Identical for every arm: peak LR swept on seed {s['seeds'][0]} at "
            f"{s['sweep_fraction']:.0%} of the main budget (schedule compressed to the sweep "
            "length), scored by dev NLL; the grid grows past an edge minimum (at most "
            f"{s['max_grid_extensions']} times) so that each chosen rate is interior. Nothing was "
            "re-tuned after results were seen.", "",
            "| arm | LR → dev NLL | chosen | interior |", "| --- | --- | ---: | --- |"]  # fmt: skip
    for name, a in summary["arms"].items():
        pts = sorted((r["lr"], r["dev_nll"]) for r in summary["sweep"] if r["arm"] == name)
        cells = ", ".join(f"{lr:.3g} → {v:.4f}" for lr, v in pts)
        interior = "yes" if a["lr"]["interior"] else "**no** (grid limit reached)"
        out.append(f"| {name} | {cells} | {a['lr']['lr']:.3g} | {interior} |")
    out += [""]
    if summary["stale_runs"]:
        n_all = len(summary["sweep"]) + len(summary["arms"]) * len(s["seeds"])
        out += ["## Runs from another code version", "",
                f"This report was rendered by code `{summary['code']}` from run records reused with "
                "`--allow-stale` (same configuration, other code version):", "",
                *[f"- {n} of the {n_all} runs were made by code `{c}`"
                  for c, n in sorted(summary["stale_runs"].items())],
                "", "Re-run them with the current code (`--compare-committed` prints both):", ""]  # fmt: skip
    out += ["## Reproduce", "",
            "```bash",
            f"nox -s reproduce -- --only {summary['experiment']} --scale {summary['scale']}"
            + (" --compare-committed" if summary["stale_runs"] else ""),
            f"python -m neuro_models.evaluate {repo_rel}/weights/<arm>-seed{s['seeds'][0]} "
            "--text FILE   # score a committed model on any UTF-8 text",
            "```", "",
            f"Per-run records: `{results_rel}/runs/`; all numbers: `{results_rel}/results.json`, "
            f"`{results_rel}/runs.csv`.", ""]  # fmt: skip
    return "\n".join(out)


def _repo_relative(path: Path) -> str:
    """``path`` relative to the enclosing repository root (the folder with ``packages/``)."""
    p = path.resolve()
    for parent in p.parents:
        if (parent / "packages").is_dir() and (parent / "pyproject.toml").is_file():
            return p.relative_to(parent).as_posix()
    return str(path)


def write(
    exp: Experiment,
    summary: dict[str, Any],
    runs: Sequence[Mapping[str, Any]],
    sweep: Sequence[Mapping[str, Any]],
    out: Path,
    report_path: Path | None = None,
) -> Path:
    """Write results.json, runs.csv, curves.png and REPORT.md; return the report's path."""
    report_path = report_path or out / "REPORT.md"
    rel = os.path.relpath(out, report_path.parent)
    rel = "." if rel == "." else rel
    extra_md, extra_verdicts = "", list[dict[str, str]]()
    if exp.report is not None:
        extra_md, extra_verdicts = exp.report(summary, runs)
        # "{results}" in the hook's markdown is the results folder, relative to the report.
        extra_md = extra_md.replace("{results}", rel)
    if exp.plots is not None:
        exp.plots(summary, runs, out)
    summary["other_verdicts"] = list(extra_verdicts)
    atomic_write_bytes(out / "results.json", json.dumps(summary, indent=1).encode())
    atomic_write_bytes(out / "runs.csv", runs_csv(runs, sweep).encode())
    plot_curves(summary, out / "curves.png")
    text = render(summary, extra_md, f"{rel}/curves.png", rel, _repo_relative(out))
    atomic_write_bytes(report_path, text.encode())
    return report_path
