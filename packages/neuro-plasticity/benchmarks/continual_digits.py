"""Continual-learning benchmark on scikit-learn's 8×8 digits (no download).

Scenarios (5 tasks each):
  class    Split-digits, classes (0,1), (2,3), ..., (8,9); one 10-way head, no task id at test.
  task     Split-digits with the task id: logits restricted to the task's two classes.
  permuted each task is the 10-way problem on a fixed random pixel permutation (task 0: identity).

Methods: naive fine-tuning, EWC (λ sweep), online EWC, SI, uniform replay (several buffer sizes),
prioritized replay, replay + sleep consolidation. Metrics after the last task: average accuracy
over all tasks and forgetting (mean over tasks but the last of best-earlier minus final accuracy),
mean ± std over seeds.

    nice -n 10 python packages/neuro-plasticity/benchmarks/continual_digits.py --seeds 0 1 2

writes ``benchmarks/results/continual_digits.json`` beside this file, the plot
``docs/_static/plasticity/continual_digits.png`` and prints an RST table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from neuro_plasticity.continual import EWC, ReplayBuffer, SleepConfig, SynapticIntelligence, sleep

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # naive | ewc | ewc_online | si | replay | replay_prio | replay_sleep
    strength: float = 0.0  # λ for EWC, c for SI
    buffer: int = 0


METHODS = [
    Method("naive", "naive"),
    *[Method(f"EWC λ={lam:g}", "ewc", lam) for lam in (1e2, 1e3, 1e4, 1e5)],
    Method("online EWC λ=1e4", "ewc_online", 1e4),
    *[Method(f"SI c={c:g}", "si", c) for c in (0.1, 1.0)],
    *[Method(f"replay {n}", "replay", buffer=n) for n in (50, 200, 500)],
    Method("prioritized replay 200", "replay_prio", buffer=200),
    Method("replay 200 + sleep", "replay_sleep", buffer=200),
    Method("replay 500 + sleep", "replay_sleep", buffer=500),
]


def make_tasks(scenario: str, seed: int):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    tasks = []
    if scenario in ("class", "task"):
        for pair in PAIRS:
            mtr, mte = np.isin(ytr, pair), np.isin(yte, pair)
            tasks.append((Xtr[mtr], ytr[mtr], Xte[mte], yte[mte], list(pair)))
    else:
        rng = np.random.default_rng(seed)
        for t in range(5):
            perm = np.arange(64) if t == 0 else rng.permutation(64)
            tasks.append((Xtr[:, perm], ytr, Xte[:, perm], yte, list(range(10))))
    return [
        (torch.tensor(a), torch.tensor(b), torch.tensor(c), torch.tensor(d), cls)
        for a, b, c, d, cls in tasks
    ]


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def masked_logits(logits: torch.Tensor, classes: list[int] | None) -> torch.Tensor:
    if classes is None:
        return logits
    mask = torch.full((10,), -1e9)
    mask[classes] = 0.0
    return logits + mask


def evaluate(model: nn.Module, tasks, scenario: str) -> list[float]:
    model.eval()
    accs = []
    with torch.no_grad():
        for _, _, xte, yte, cls in tasks:
            logits = masked_logits(model(xte), cls if scenario == "task" else None)
            accs.append(float((logits.argmax(-1) == yte).float().mean()))
    model.train()
    return accs


def run(
    method: Method, scenario: str, seed: int, epochs: int, batch: int = 32, lr: float = 1e-3
) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tasks = make_tasks(scenario, seed)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ewc = None
    if method.kind == "ewc":
        ewc = EWC(model, method.strength)
    elif method.kind == "ewc_online":
        ewc = EWC(model, method.strength, mode="online", gamma=0.9)
    si = SynapticIntelligence(model, method.strength) if method.kind == "si" else None
    buf = None
    if method.buffer:
        buf = ReplayBuffer(method.buffer, prioritized=method.kind == "replay_prio", generator=gen)
    cls_mask = scenario == "task"
    matrix = []
    for xtr, ytr, _, _, cls in tasks:
        n = xtr.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                idx = order[i : i + batch]
                x, y = xtr[idx], ytr[idx]
                logits = masked_logits(model(x), cls if cls_mask else None)
                loss = F.cross_entropy(logits, y)
                if buf is not None and len(buf):
                    s = buf.sample(batch)
                    # task-incremental replay restricts each old example to its own task's pair
                    rl = model(s.x)
                    if cls_mask:
                        pair_lo = (s.y // 2) * 2
                        keep = torch.zeros_like(rl, dtype=torch.bool)
                        keep[torch.arange(len(s.y)), pair_lo] = True
                        keep[torch.arange(len(s.y)), pair_lo + 1] = True
                        rl = rl.masked_fill(~keep, -1e9)
                    per = F.cross_entropy(rl, s.y, reduction="none")
                    loss = loss + (per * s.weight).mean()
                    if buf.prioritized:
                        buf.update_priorities(s.indices, per.detach())
                if ewc is not None:
                    loss, _ = ewc.augment(loss)
                if si is not None:
                    loss, _ = si.augment(loss)
                opt.zero_grad()
                loss.backward()
                if si is not None:
                    si.step(opt)
                else:
                    opt.step()
        if ewc is not None:
            ewc.update_fisher([(xtr, ytr)])
            ewc.consolidate()
        if si is not None:
            si.consolidate()
        if buf is not None:
            buf.add(xtr, ytr)
            if method.kind == "replay_sleep":
                sleep(
                    model,
                    opt,
                    buf,
                    lambda lg, y: F.cross_entropy(lg, y, reduction="none"),
                    SleepConfig(steps=100, batch_size=64, plasticity=0.3, prune_threshold=1e-3),
                )
        matrix.append(evaluate(model, tasks, scenario))
    final = matrix[-1]
    forgetting = [
        max(matrix[i][j] for i in range(len(tasks) - 1)) - final[j] for j in range(len(tasks) - 1)
    ]
    return {
        "acc": float(np.mean(final)),
        "forgetting": float(np.mean(forgetting)),
        "matrix": matrix,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenarios", nargs="+", default=["class", "task", "permuted"])
    ap.add_argument("--epochs-split", type=int, default=20)
    ap.add_argument("--epochs-permuted", type=int, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "continual_digits.json")
    ap.add_argument(
        "--plot",
        type=Path,
        default=ROOT / "docs" / "_static" / "plasticity" / "continual_digits.png",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {"seeds": args.seeds, "scenarios": {}}
    t0 = time.time()
    for scenario in args.scenarios:
        epochs = args.epochs_permuted if scenario == "permuted" else args.epochs_split
        rows = {}
        for m in METHODS:
            runs = [run(m, scenario, s, epochs) for s in args.seeds]
            accs = [r["acc"] for r in runs]
            fgt = [r["forgetting"] for r in runs]
            rows[m.name] = {
                "acc_mean": float(np.mean(accs)),
                "acc_std": float(np.std(accs)),
                "forgetting_mean": float(np.mean(fgt)),
                "forgetting_std": float(np.std(fgt)),
                "runs": runs,
            }
            print(
                f"[{time.time() - t0:6.0f}s] {scenario:8s} {m.name:24s} acc {np.mean(accs):.3f} ± {np.std(accs):.3f}"
                f"  forgetting {np.mean(fgt):.3f} ± {np.std(fgt):.3f}",
                flush=True,
            )
        results["scenarios"][scenario] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)
    plot(results, args.plot)


def print_table(results: dict) -> None:
    scen = list(results["scenarios"])
    header = ["method"] + [f"{s} acc" for s in scen] + [f"{s} forgetting" for s in scen]
    rows = []
    for name in results["scenarios"][scen[0]]:
        r = [name]
        for s in scen:
            d = results["scenarios"][s][name]
            r.append(f"{d['acc_mean']:.3f} ± {d['acc_std']:.3f}")
        for s in scen:
            d = results["scenarios"][s][name]
            r.append(f"{d['forgetting_mean']:.3f} ± {d['forgetting_std']:.3f}")
        rows.append(r)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    line = " ".join("=" * w for w in widths)
    print(line)
    print(" ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print(" ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(line)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(results["scenarios"])
    names = list(results["scenarios"][scen[0]])
    fig, axes = plt.subplots(1, len(scen), figsize=(5 * len(scen), 5), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, scen):
        d = results["scenarios"][s]
        means = [d[n]["acc_mean"] for n in names]
        stds = [d[n]["acc_std"] for n in names]
        ax.barh(range(len(names)), means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.set_title(f"{s}-incremental" if s != "permuted" else "permuted digits")
        ax.set_xlim(0, 1)
        ax.axvline(0.8, color="k", ls=":", lw=1)
        ax.set_xlabel(f"average accuracy after 5 tasks ({len(results['seeds'])} seeds)")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
