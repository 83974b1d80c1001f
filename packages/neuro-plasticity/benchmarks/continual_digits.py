"""Continual-learning benchmark on scikit-learn's 8×8 digits (no download).

Scenarios (5 tasks each):
  class    Split-digits, classes (0,1), (2,3), ..., (8,9); one 10-way head, no task id at test.
  task     Split-digits with the task id: logits restricted to the task's two classes.
  permuted each task is the 10-way problem on a fixed random pixel permutation (task 0: identity).

Methods: naive fine-tuning, EWC (λ sweep), online EWC (λ sweep), SI (c sweep), uniform replay
(several buffer sizes), prioritized replay, replay + sleep consolidation, and replay + rehearsal
(the equal-budget control of sleep: the same extra replayed examples at full plasticity, no
pruning). Metrics after the last task: average accuracy over all tasks and forgetting (mean over
tasks but the last of best-earlier minus final accuracy).

Protocol. Each seed splits the images 70/30 into train and test (stratified), then carves a
validation split (20 % of train, stratified) off train; models train on the rest. Every choice —
λ of EWC and online EWC, c of SI, and the "best method" — is made on the mean validation accuracy
over seeds; the test split is only reported. Replay budgets are equal where methods are compared:
the same buffer sizes, the same 32 replayed examples per step, and sleep is compared with
rehearsal that replays exactly as many extra examples. Spread: sample sd (n − 1) and the t-based
95 % CI half-width over ≥ 5 seeds.

    nice -n 10 python packages/neuro-plasticity/benchmarks/continual_digits.py --seeds 0 1 2 3 4

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
    *[Method(f"online EWC λ={lam:g}", "ewc_online", lam) for lam in (1e3, 1e4, 1e5)],
    *[Method(f"SI c={c:g}", "si", c) for c in (0.1, 1.0, 10.0)],
    *[Method(f"replay {n}", "replay", buffer=n) for n in (50, 200, 500)],
    Method("prioritized replay 200", "replay_prio", buffer=200),
    Method("replay 200 + sleep", "replay_sleep", buffer=200),
    Method("replay 500 + sleep", "replay_sleep", buffer=500),
    Method("replay 200 + rehearsal", "replay_rehearse", buffer=200),
    Method("replay 500 + rehearsal", "replay_rehearse", buffer=500),
]
#: Hyperparameter families: one member each is selected on validation accuracy.
FAMILIES = {"EWC": "ewc", "online EWC": "ewc_online", "SI": "si"}
#: One sleep phase after each task (HebLLM's 0.3× plasticity, pruning |w| < 1e-3), and its
#: equal-budget control: the same replayed examples at full plasticity without pruning.
SLEEP = SleepConfig(steps=100, batch_size=64, plasticity=0.3, prune_threshold=1e-3)
REHEARSAL = SleepConfig(steps=100, batch_size=64, plasticity=1.0, prune_threshold=0.0)


def make_tasks(scenario: str, seed: int):
    """Five tasks ``(x_train, y_train, x_val, y_val, x_test, y_test, classes)``: train/test 70/30,
    then 20 % of train carved off as validation (both stratified, seeded)."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=0.2, random_state=seed, stratify=ytr)
    tasks = []
    if scenario in ("class", "task"):
        for pair in PAIRS:
            m = [np.isin(v, pair) for v in (ytr, yva, yte)]
            tasks.append((Xtr[m[0]], ytr[m[0]], Xva[m[1]], yva[m[1]], Xte[m[2]], yte[m[2]],
                          list(pair)))  # fmt: skip
    else:
        rng = np.random.default_rng(seed)
        for t in range(5):
            perm = np.arange(64) if t == 0 else rng.permutation(64)
            tasks.append((Xtr[:, perm], ytr, Xva[:, perm], yva, Xte[:, perm], yte, list(range(10))))
    return [(*(torch.tensor(a) for a in task[:6]), task[6]) for task in tasks]


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


def evaluate(model: nn.Module, tasks, scenario: str, split: str) -> list[float]:
    """Accuracy on every task's ``split`` ("val" or "test")."""
    model.eval()
    accs = []
    at = {"val": 2, "test": 4}[split]
    with torch.no_grad():
        for task in tasks:
            x, y, cls = task[at], task[at + 1], task[6]
            logits = masked_logits(model(x), cls if scenario == "task" else None)
            accs.append(float((logits.argmax(-1) == y).float().mean()))
    model.train()
    return accs


def _summary(matrix: list[list[float]]) -> tuple[float, float]:
    """(average final accuracy, forgetting) of an accuracy matrix [after task i][on task j]."""
    final = matrix[-1]
    n = len(final)
    forgetting = [max(matrix[i][j] for i in range(n - 1)) - final[j] for j in range(n - 1)]
    return float(np.mean(final)), float(np.mean(forgetting))


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
    matrix: dict[str, list[list[float]]] = {"val": [], "test": []}
    replayed = 0
    for xtr, ytr, *_, cls in tasks:
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
                    replayed += len(s.y)
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
            if method.kind in ("replay_sleep", "replay_rehearse"):
                phase = SLEEP if method.kind == "replay_sleep" else REHEARSAL
                sleep(
                    model, opt, buf, lambda lg, y: F.cross_entropy(lg, y, reduction="none"), phase
                )
                replayed += phase.steps * phase.batch_size
        for split in matrix:
            matrix[split].append(evaluate(model, tasks, scenario, split))
    acc, forgetting = _summary(matrix["test"])
    val_acc, val_forgetting = _summary(matrix["val"])
    return {"acc": acc, "forgetting": forgetting, "val_acc": val_acc,
            "val_forgetting": val_forgetting, "replayed_examples": replayed, "matrix": matrix}  # fmt: skip


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (n − 1) and the t-based 95 % CI half-width over seeds."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    half = (
        float(stats.t.ppf(0.975, len(v) - 1) * sd / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    )
    return {"mean": float(v.mean()), "sd": sd, "ci95": half}


def select(rows: dict[str, dict]) -> dict[str, str]:
    """The member of each family with the best mean validation accuracy, and the best method
    overall by the same rule (ties: the first listed). The test split plays no part."""
    chosen = {}
    for family, kind in FAMILIES.items():
        members = [m.name for m in METHODS if m.kind == kind]
        chosen[family] = max(members, key=lambda n: rows[n]["val_acc"]["mean"])
    chosen["best method"] = max(rows, key=lambda n: rows[n]["val_acc"]["mean"])
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
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
    if len(args.seeds) < 5:
        ap.error("the protocol needs >= 5 seeds (sample sd and 95% CI over seeds)")
    torch.set_num_threads(1)
    import datetime
    import platform

    results: dict = {
        "seeds": args.seeds,
        "protocol": "choices on validation (20% of train), test only reported; sample sd and t 95% CI",
        "environment": {"date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                        "machine": platform.processor() or platform.machine(), "threads": 1,
                        "torch": torch.__version__, "precision": "fp32"},
        "scenarios": {}, "selected": {},
    }  # fmt: skip
    t0 = time.time()
    for scenario in args.scenarios:
        epochs = args.epochs_permuted if scenario == "permuted" else args.epochs_split
        rows = {}
        for m in METHODS:
            runs = [run(m, scenario, s, epochs) for s in args.seeds]
            rows[m.name] = {k: spread([r[k] for r in runs])
                            for k in ("acc", "forgetting", "val_acc", "val_forgetting")}  # fmt: skip
            rows[m.name]["replayed_examples"] = spread([r["replayed_examples"] for r in runs])
            rows[m.name]["runs"] = runs
            a = rows[m.name]["acc"]
            print(f"[{time.time() - t0:6.0f}s] {scenario:8s} {m.name:24s} val acc "
                  f"{rows[m.name]['val_acc']['mean']:.3f}  test acc {a['mean']:.3f} "
                  f"± {a['ci95']:.3f}", flush=True)  # fmt: skip
        results["scenarios"][scenario] = rows
        results["selected"][scenario] = select(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)
    plot(results, args.plot)


def print_table(results: dict) -> None:
    """Test accuracy and forgetting, mean ± 95 % CI half-width; ``*`` marks the family member
    (and ``**`` the best method) selected on validation in that scenario."""
    scen = list(results["scenarios"])
    header = ["method"] + [f"{s} acc" for s in scen] + [f"{s} forgetting" for s in scen]
    rows = []
    for name in results["scenarios"][scen[0]]:
        r = [name]
        for key in ("acc", "forgetting"):
            for s in scen:
                d = results["scenarios"][s][name][key]
                chosen = results["selected"][s]
                mark = (
                    "**"
                    if chosen["best method"] == name
                    else "*"
                    if name in chosen.values()
                    else ""
                )
                r.append(f"{d['mean']:.3f} ± {d['ci95']:.3f}{mark if key == 'acc' else ''}")
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
    import matplotlib.pyplot as plt

    scen = list(results["scenarios"])
    names = list(results["scenarios"][scen[0]])
    fig, axes = plt.subplots(1, len(scen), figsize=(5 * len(scen), 5), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, scen):
        d = results["scenarios"][s]
        means = [d[n]["acc"]["mean"] for n in names]
        half = [d[n]["acc"]["ci95"] for n in names]
        ax.barh(range(len(names)), means, xerr=half, color="tab:blue", alpha=0.8)
        ax.set_title(f"{s}-incremental" if s != "permuted" else "permuted digits")
        ax.set_xlim(0, 1)
        ax.axvline(0.8, color="k", ls=":", lw=1)
        ax.set_xlabel(f"test accuracy after 5 tasks (mean, 95% CI; {len(results['seeds'])} seeds)")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
