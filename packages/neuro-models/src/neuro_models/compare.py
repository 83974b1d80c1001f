"""Compare training runs: one row per run directory, mean ± std per arm, and a loss plot.

A run directory is what :func:`neuro_models.train.train` writes (``config.json``,
``metrics.jsonl``, ``eval.jsonl``). The *arm* of a run is, by default, the name of its parent
directory, so the layout ``runs/<arm>/seed<k>/`` groups seeds automatically::

    python -m neuro_models.compare runs/baseline/seed* runs/ncn/seed* --out table.md --plot cmp.png

Needs the ``[report]`` extra (polars; matplotlib for the plot).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["compare", "load_run", "main", "plot_runs", "summarize"]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def load_run(run_dir: str | os.PathLike[str], arm: str | None = None) -> dict[str, Any]:
    """One flat row for a run: arm, run, steps, tokens, last train loss, last eval values,
    parameter count (from ``config.json``'s model config when the model has one) and wall time.

    Raises:
        ValueError: ``run_dir`` has neither ``metrics.jsonl`` nor ``eval.jsonl``.
    """
    d = Path(run_dir)
    metrics, evals = _jsonl(d / "metrics.jsonl"), _jsonl(d / "eval.jsonl")
    if not metrics and not evals:
        raise ValueError(f"run_dir {str(d)!r} has no metrics.jsonl or eval.jsonl")
    row: dict[str, Any] = {"arm": arm if arm is not None else d.parent.name, "run": d.name}
    if metrics:
        last = metrics[-1]
        row.update(
            steps=last["step"],
            tokens=last["tokens"],
            train_loss=last["loss"],
            wall_s=last.get("wall_s"),
        )
    if evals:
        row.update({k: v for k, v in evals[-1].items() if k not in ("step", "tokens")})
    cfg_path = d / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        n = cfg.get("n_params")
        if n is not None:
            row["n_params"] = n
    return row


def compare(
    run_dirs: Sequence[str | os.PathLike[str]], *, arm_from: Literal["parent", "name"] = "parent"
) -> Any:
    """A ``polars.DataFrame`` with one :func:`load_run` row per run directory."""
    import polars as pl

    if not run_dirs:
        raise ValueError("run_dirs must name at least one run directory")
    rows = [load_run(r, arm=None if arm_from == "parent" else Path(r).name) for r in run_dirs]
    return pl.DataFrame(rows)


def summarize(table: Any, metrics: Sequence[str] | None = None) -> Any:
    """Mean, sample std (ddof 1) and count of each numeric metric per arm."""
    import polars as pl

    if metrics is None:
        skip = {"arm", "run", "steps", "tokens"}
        metrics = [
            c for c, t in zip(table.columns, table.dtypes) if c not in skip and t.is_numeric()
        ]
    aggs: list[Any] = [pl.len().alias("n_runs")]
    for m in metrics:
        aggs += [pl.col(m).mean().alias(f"{m}_mean"), pl.col(m).std(ddof=1).alias(f"{m}_std")]
    return table.group_by("arm", maintain_order=True).agg(aggs)


def plot_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    key: str = "val_loss",
    with_train: bool = False,
) -> Path:
    """Plot ``key`` from ``eval.jsonl`` (falls back to train ``loss``) against tokens, one line per
    run, one colour per arm; ``with_train`` adds each run's training loss as a thin line."""
    # A bare Figure (no pyplot): the caller's matplotlib backend is never switched.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    colours: dict[str, Any] = {}
    for r in run_dirs:
        d = Path(r)
        arm = d.parent.name
        rows = [e for e in _jsonl(d / "eval.jsonl") if key in e]
        label_key = key
        if not rows:
            rows = [{"tokens": m["tokens"], key: m["loss"]} for m in _jsonl(d / "metrics.jsonl")]
            label_key = "train loss"
        if not rows:
            continue
        if arm not in colours:
            colours[arm] = f"C{len(colours) % 10}"
            label = f"{arm} ({label_key})"
        else:
            label = None
        ax.plot(
            [e["tokens"] for e in rows], [e[key] for e in rows], color=colours[arm], label=label
        )
        train_rows = _jsonl(d / "metrics.jsonl") if with_train and label_key == key else []
        if train_rows:
            ax.plot(
                [m["tokens"] for m in train_rows],
                [m["loss"] for m in train_rows],
                color=colours[arm],
                lw=0.7,
                alpha=0.5,
                label=f"{arm} (train loss)" if label is not None else None,
            )
    ax.set_xlabel("tokens")
    ax.set_ylabel("nats per token" if with_train else key)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m neuro_models.compare RUN_DIR... [--out FILE] [--plot PNG]``."""
    import polars as pl

    p = argparse.ArgumentParser(prog="python -m neuro_models.compare")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default=None, help=".csv, .parquet or .md")
    p.add_argument("--plot", default=None)
    p.add_argument("--key", default="val_loss")
    args = p.parse_args(argv)
    table = compare(args.runs)
    summary = summarize(table)
    with pl.Config(tbl_rows=100, tbl_cols=30, tbl_width_chars=160):
        print(table)
        print(summary)
    if args.out:
        out = Path(args.out)
        if out.suffix == ".parquet":
            table.write_parquet(out)
        elif out.suffix == ".md":
            out.write_text(markdown_table(summary))
        else:
            table.write_csv(out)
    if args.plot:
        plot_runs(args.runs, args.plot, key=args.key)


def markdown_table(df: Any, digits: int = 4) -> str:
    """Render a small polars frame as a Markdown table (floats rounded to ``digits``)."""
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    lines = [head, sep]
    for row in df.iter_rows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
