"""neuro-plasticity speed targets, measured as ratios in one process.

1. Chunked fast weights vs the recurrent loop (the spec), forward + backward, fp32, at
   B=2, H=4, T=2048, D=64 (target: ≥ 10× faster, outputs and gradients within 1e-4).
2. Pair STDP on a sparse (CSR) 10,000-neuron network at 1 % connectivity (~1M synapses),
   Poisson spikes at 20 Hz, dt = 0.1 ms (the network size of the Brian2 figure in
   ``shared/specs/peers.md``):

   * the dense rule (``pair_stdp`` on ``CSR``, every synapse every step): ``--stdp-steps`` steps;
   * the event-driven rule (``event_driven(pair_stdp(...), CSR)``: lazy traces, only the
     synapses of the neurons that spiked): ``--runs`` consecutive spans of ``--seconds`` of
     biological time, each timed *including* drawing the Poisson spikes (one uniform per neuron
     and step, as Brian2's PoissonGroup does). Before timing, the event rule's weights after the
     dense rule's ``--stdp-steps`` steps on the same spikes are compared with the dense rule's
     (max |difference| printed).

With ``--brian2-python PATH`` (a Python with ``brian2==2.9.0``, ``numpy<2.3`` and ``cython``,
kept out of our environment) the same synapses run Brian2's event-driven pair STDP (cython
target, all-to-all additive, the same τ and amplitudes) driven by a 20 Hz PoissonGroup for
``--runs`` consecutive spans of ``--seconds``; Brian2's code generation is excluded (a 10 ms run
first). Both sides report the median, best and all spans (biological seconds per wall second).

    nice -n 10 python benchmarks/scripts/plasticity_targets.py [--threads 1] [--t 2048]
        [--brian2-python /path/to/python] [--skip-fast-weights] [--runs 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch

from neuro_plasticity import CSR, event_driven, on_topology, pair_stdp
from neuro_plasticity.ops.fast_weights import fast_weights

BRIAN2_SCRIPT = r'''
import json, sys, time
import numpy as np
from brian2 import PoissonGroup, Synapses, Network, defaultclock, prefs, ms, Hz, second
prefs.codegen.target = "cython"
d = np.load(sys.argv[1])
cfg = json.loads(sys.argv[2])
defaultclock.dt = cfg["dt_ms"] * ms
P = PoissonGroup(int(cfg["n"]), rates=cfg["rate_hz"] * Hz)
S = Synapses(P, P, """
    w : 1
    dapre/dt = -apre / (20*ms) : 1 (event-driven)
    dapost/dt = -apost / (20*ms) : 1 (event-driven)
    """, on_pre="""
    apre += 1
    w = w - 0.0105 * apost
    """, on_post="""
    apost += 1
    w = w + 0.01 * apre
    """)
S.connect(i=d["pre"], j=d["post"])
S.w = "rand()"
net = Network(P, S)
t0 = time.perf_counter(); net.run(10 * ms); first = time.perf_counter() - t0
walls = []
for _ in range(int(cfg["runs"])):
    t0 = time.perf_counter(); net.run(cfg["seconds"] * second); walls.append(time.perf_counter() - t0)
print(json.dumps({"walls": walls, "first_run_s": first, "synapses": len(S)}))
'''


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fast_weight_ratio(b: int, h: int, t: int, d: int, chunk: int, repeats: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, t, h, d, generator=g) * 0.3 for _ in range(3))
    up = torch.randn(b, t, h, d, generator=g)
    results = {}

    def step(backend: str):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        o, _ = fast_weights(*leaves, lr=0.5, decay=0.99, backend=backend, chunk_size=chunk)
        (o * up).sum().backward()
        return o.detach(), [x.grad for x in leaves]

    ref_o, ref_g = step("reference")
    chk_o, chk_g = step("chunked")
    results["max_abs_diff_out"] = float((ref_o - chk_o).abs().max())
    results["max_abs_diff_grad"] = max(float((a - c).abs().max()) for a, c in zip(ref_g, chk_g))
    results["chunked_s"] = _best(lambda: step("chunked"), repeats)
    results["recurrent_s"] = _best(lambda: step("reference"), max(1, repeats // 3))
    results["ratio"] = results["recurrent_s"] / results["chunked_s"]
    return results


def brian2_stdp(
    python: str, topo: CSR, n: int, rate_hz: float, dt_ms: float, seconds: float, runs: int
) -> dict:
    """Brian2's event-driven pair STDP on the same synapses, in a subprocess."""
    rows = topo.row_indices  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/syn.npz"
        np.savez(path, pre=topo.col_indices.numpy(), post=rows.numpy())
        cfg = {"n": n, "rate_hz": rate_hz, "dt_ms": dt_ms, "seconds": seconds, "runs": runs}
        out = subprocess.run(
            [python, "-c", BRIAN2_SCRIPT, path, json.dumps(cfg)],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(rates: list[float]) -> dict[str, float | list[float]]:
    return {"median": statistics.median(rates), "best": max(rates), "all": rates}


def stdp_sparse(
    n: int,
    p: float,
    steps: int,
    rate_hz: float,
    dt_ms: float,
    brian2_python: str | None = None,
    *,
    seconds: float = 1.0,
    runs: int = 1,
) -> dict:
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(n, n, generator=g) < p
    mask.fill_diagonal_(False)
    topo = CSR.from_dense_mask(mask)
    del mask
    rule = on_topology(pair_stdp(dt_ms=dt_ms), topo)
    w0 = torch.rand(topo.nnz, generator=g)
    w = w0.clone()
    state = rule.init(w)
    prob = rate_hz * dt_ms / 1000.0
    spikes = (torch.rand(steps + 5, n, generator=g) < prob).float()
    for i in range(5):
        _, state = rule.update(spikes[i], spikes[i], state, w)
    t0 = time.perf_counter()
    for i in range(5, steps + 5):
        dw, state = rule.update(spikes[i], spikes[i], state, w)
        w = w + dw
    dt = time.perf_counter() - t0
    out: dict = {
        "nnz": topo.nnz,
        "steps_per_s": steps / dt,
        "synapse_updates_per_s": topo.nnz * steps / dt,
        "bio_time_per_wall_s": steps * dt_ms / 1000.0 / dt,
    }

    # event-driven: the same rule; first its weights on the dense run's spikes
    ev = event_driven(pair_stdp(dt_ms=dt_ms), topo, backend="events")
    w_ev = w0.clone()
    st = ev.init(w_ev)
    for i in range(steps + 5):
        fired = spikes[i].nonzero().flatten()
        if fired.numel():
            index, value, st = ev.on_spikes(i, fired, fired, st, w_ev)
            if i >= 5:  # the dense run's first 5 steps only charge the traces
                w_ev[index] = value
    out["event_max_abs_diff_vs_dense"] = float((w_ev - w).abs().max())
    rng = np.random.default_rng(1)
    span = round(seconds * 1000.0 / dt_ms)
    step = steps + 5
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(span):
            fired = torch.from_numpy(np.flatnonzero(rng.random(n) < prob))
            if fired.numel():
                index, value, st = ev.on_spikes(step, fired, fired, st, w_ev)
                w_ev[index] = value
            step += 1
        rates.append(seconds / (time.perf_counter() - t0))
    out["event_bio_time_per_wall_s"] = _spread(rates)
    if brian2_python:
        b2 = brian2_stdp(brian2_python, topo, n, rate_hz, dt_ms, seconds, runs)
        out["brian2_bio_time_per_wall_s"] = _spread([seconds / w_ for w_ in b2["walls"]])
        out["brian2_first_run_s"] = b2["first_run_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--t", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stdp-steps", type=int, default=200)
    ap.add_argument("--brian2-python", default=None, help="a Python with brian2 2.9 (peer run)")
    ap.add_argument("--skip-fast-weights", action="store_true")
    ap.add_argument("--runs", type=int, default=5, help="event rule and Brian2: timed spans")
    ap.add_argument("--seconds", type=float, default=1.0, help="biological time per span")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} "
        f"threads {args.threads} {platform.processor()}"
    )
    if not args.skip_fast_weights:
        r = fast_weight_ratio(2, 4, args.t, 64, args.chunk, args.repeats)
        print(
            f"fast weights fwd+bwd B=2 H=4 T={args.t} D=64 fp32: recurrent "
            f"{r['recurrent_s'] * 1e3:.0f} ms, chunked(C={args.chunk}) {r['chunked_s'] * 1e3:.1f} ms, "
            f"ratio {r['ratio']:.1f}x (target >= 10x); max |diff| out {r['max_abs_diff_out']:.2e}, "
            f"grads {r['max_abs_diff_grad']:.2e} (target <= 1e-4)"
        )
    s = stdp_sparse(
        10_000,
        0.01,
        args.stdp_steps,
        20.0,
        0.1,
        args.brian2_python,
        seconds=args.seconds,
        runs=args.runs,
    )
    print(
        f"pair STDP on CSR, {s['nnz']:,} synapses, dense rule: {s['steps_per_s']:.1f} steps/s, "
        f"{s['synapse_updates_per_s'] / 1e6:.1f} M synapse-updates/s, "
        f"{s['bio_time_per_wall_s']:.4f} s biological time per wall second at dt=0.1 ms"
    )
    e = s["event_bio_time_per_wall_s"]
    print(
        f"event-driven pair STDP (same synapses, 20 Hz Poisson drawn inside the timed loop): "
        f"median {e['median']:.3f} s biological time per wall second, best {e['best']:.3f}, "
        f"{len(e['all'])} spans of {args.seconds} s: {', '.join(f'{r:.3f}' for r in e['all'])}; "
        f"weights after {args.stdp_steps + 5} steps vs the dense rule: max |diff| "
        f"{s['event_max_abs_diff_vs_dense']:.2e}"
    )
    if "brian2_bio_time_per_wall_s" in s:
        b2 = s["brian2_bio_time_per_wall_s"]
        print(
            f"Brian2 2.9 event-driven pair STDP, same synapses, 20 Hz PoissonGroup: median "
            f"{b2['median']:.3f} s biological time per wall second, best {b2['best']:.3f}, "
            f"spans: {', '.join(f'{r:.3f}' for r in b2['all'])} (first 10 ms run incl. code "
            f"generation {s['brian2_first_run_s']:.1f} s excluded)"
        )
        print(
            f"ours / Brian2: dense rule {s['bio_time_per_wall_s'] / b2['median']:.3f}; "
            f"event-driven median/median {e['median'] / b2['median']:.2f}, "
            f"best/best {e['best'] / b2['best']:.2f} (target >= 1)"
        )


if __name__ == "__main__":
    main()
