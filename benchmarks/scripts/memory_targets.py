"""neuro-memory speed targets, measured in one process.

1. ``--knn``: exact kNN over N = 262,144 keys (D = 64, top-32, 512 queries, fp32, CPU):
   ``knn_search`` with ``backend="mixed"`` (certified bf16 filter + exact re-score),
   ``"blocked"`` and ``"auto"`` against torch ``topk(Q @ K.T, 32)`` (the reference), and FAISS
   ``IndexFlatIP`` when installed (its time includes adding the keys to a fresh flat index:
   the one-shot cost). The backends run interleaved, ``--runs`` rounds (each
   round runs every backend once, in a rotating order); the script prints every run, the median,
   min and max per backend, the ratio of medians and the per-round paired ratios, and checks
   that the blocked indices equal the reference's.
2. ``--map``: the cognitive map grown to ``--map-max`` nodes (default 131,072) by inserts of
   ``--grow`` nodes. At each power of two from 1024 it times, ``--runs`` times each (median
   printed): inserting 1 node, inserting 64 nodes (the map is pure, so timed inserts are not
   kept), one ``map_query`` (1 query, top-16), and one hop of ``spread_activation`` from one
   seed. Linear cost per insert shows as time ∝ n; a rebuild would be ∝ n².

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/scripts/memory_targets.py --knn --map \
        [--runs 5] [--threads 1] [--map-max 131072] [--grow 4096]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import torch

from neuro_memory import (
    CognitiveMapParams,
    init_map,
    knn_search,
    map_insert,
    map_query,
    spread_activation,
)
from neuro_memory import knn as knn_module


def _header(args: argparse.Namespace) -> None:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"# memory_targets.py  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}")
    print(
        f"# cpu: {cpu}; cores visible: {os.cpu_count()}; torch threads: {torch.get_num_threads()}"
    )
    print(f"# torch {torch.__version__}; load average at start: {load}")
    print(f"# args: {vars(args)}")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def knn(args: argparse.Namespace) -> None:
    n, d, q, k = 262_144, 64, 512, 32
    gen = torch.Generator().manual_seed(0)
    keys, queries = torch.randn(n, d, generator=gen), torch.randn(q, d, generator=gen)
    backends = {
        "torch matmul+topk": lambda: torch.topk(queries @ keys.T, k, dim=1),
        "knn_search mixed": lambda: knn_search(keys, queries, k, backend="mixed"),
        "knn_search blocked": lambda: knn_search(keys, queries, k, backend="blocked"),
        "knn_search auto": lambda: knn_search(keys, queries, k),
    }
    try:
        import faiss  # noqa: F401

        backends["faiss IndexFlatIP"] = lambda: knn_search(keys, queries, k, backend="faiss")
    except ImportError:
        print("# faiss not installed: FAISS column skipped")
    ref = torch.topk(queries @ keys.T, k, dim=1)
    print(f"\n## kNN N={n} D={d} Q={q} k={k} fp32; native bf16: {knn_module._native_bf16()}")
    for backend in ("blocked", "mixed"):
        got = knn_search(keys, queries, k, backend=backend)
        same = bool((ref.indices == got.indices).all())
        err = float((got.scores - ref.values).abs().max())
        print(f"{backend}: indices == reference: {same}; max |score diff| {err:.2e}")
    names = list(backends)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.runs):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(_time(backends[name]))
        print(
            f"round {r}: " + ", ".join(f"{name} {times[name][-1] * 1e3:.1f} ms" for name in names)
        )
    base = statistics.median(times[names[0]])
    for name in names:
        t = times[name]
        med = statistics.median(t)
        print(
            f"{name:22s} median {med * 1e3:8.1f} ms  min {min(t) * 1e3:8.1f}  max {max(t) * 1e3:8.1f}"
            f"  speed-up vs matmul+topk (ratio of medians) {base / med:.2f}x"
        )
    for other in names[1:3]:
        paired = [a / b for a, b in zip(times[names[0]], times[other])]
        print(
            f"paired per-round ratio matmul+topk / {other}: "
            + ", ".join(f"{p:.2f}" for p in paired)
            + f"  (median {statistics.median(paired):.2f})"
        )


def cognitive_map(args: argparse.Namespace) -> None:
    d = 64
    params = CognitiveMapParams(n_neighbors=16)
    gen = torch.Generator().manual_seed(1)
    graph = init_map(d, params)
    print(
        f"\n## cognitive map D={d} k={params.n_neighbors}, grown by {args.grow} up to {args.map_max}"
    )
    print(
        f"{'n':>8s} {'insert 1 (ms)':>14s} {'insert 64 (ms)':>15s} {'query 1 (ms)':>13s} "
        f"{'spread 1 hop (ms)':>18s} {'grow time (s)':>14s}"
    )
    one, many = torch.randn(1, d, generator=gen), torch.randn(64, d, generator=gen)
    query = torch.randn(1, d, generator=gen)
    checkpoint, grow_time = 1024, 0.0
    while checkpoint <= args.map_max:
        while graph.size < checkpoint:
            m = min(args.grow, checkpoint - graph.size)
            x = torch.randn(m, d, generator=gen)
            t0 = time.perf_counter()
            graph = map_insert(graph, x, params)
            grow_time += time.perf_counter() - t0
        seed = torch.zeros(graph.size)
        seed[0] = 1.0
        calls = [
            lambda g=graph: map_insert(g, one, params),
            lambda g=graph: map_insert(g, many, params),
            lambda g=graph: map_query(g, query, 16, params),
            lambda g=graph, a0=seed: spread_activation(g, a0, hops=1),
        ]
        cols = [[_time(fn) for _ in range(args.runs)] for fn in calls]
        meds = [statistics.median(c) * 1e3 for c in cols]
        print(
            f"{graph.size:8d} {meds[0]:14.2f} {meds[1]:15.2f} {meds[2]:13.2f} {meds[3]:18.2f} "
            f"{grow_time:14.1f}"
        )
        checkpoint *= 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--knn", action="store_true")
    parser.add_argument("--map", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--map-max", type=int, default=131_072)
    parser.add_argument("--grow", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _header(args)
    if args.knn:
        knn(args)
    if args.map:
        cognitive_map(args)


if __name__ == "__main__":
    main()
