"""Issue-5 CPU targets for neuro-spiking, measured side by side in one process.

Multi-step LIF forward+backward at T=64, B=32, N=4096, fp32 (hard reset to 0, β = 0.9 — the
matched parameterization of snnTorch ``Leaky(beta=0.9, reset_mechanism="zero")`` and
SpikingJelly ``LIFNode(tau=10, decay_input=False, v_reset=0, step_mode="m")``):

* time: every variant runs in this process, interleaved, best of ``--repeats`` after a warm-up;
  ratios are peer time / our time (target: ≥ 5× snnTorch, ≥ 1.5× SpikingJelly).
* peak memory: each variant runs in a fresh subprocess with a fixed glibc mmap threshold (so
  freed tensors leave the RSS); we report the rise of the peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs``) above the RSS after the inputs and one warm-up run
  (target: ours ≤ SpikingJelly).

Peers are optional: install them with
``pip install -c constraints/cpu.txt snntorch loguru && pip install --no-deps spikingjelly``.

Usage: ``python benchmarks/scripts/spiking_targets.py [--T 64 --B 32 --N 4096 --repeats 5]``

``--network``: the recurrent-simulation target instead — 10,000 LIF neurons (8,000 excitatory,
2,000 inhibitory), 1 % Bernoulli connectivity (~1M synapses), 1.5 ms delays, Poisson input
(100 sources at 10 Hz per neuron), dt = 0.1 ms, 1 s of biological time. With
``--brian2-python PATH`` (a Python with ``brian2==2.9.0``, ``numpy<2.3`` and ``cython``, kept out
of our environment) the *same* synapses are exported and simulated by Brian2 (cython target) in
a subprocess; wall times exclude Brian2's code generation and our warm-up (a 10 ms run first);
each side simulates ``--network-repeats`` consecutive spans of ``--seconds`` and reports the best
wall time; rates are averaged over all spans.
Brian2 applies synaptic input after the threshold test and counts refractoriness from the spike
step, so its delay is set to ``delay − dt`` and its refractory period to ``refractory + dt`` to
deliver every event on the same step as ours.

``--network --stdp``: also the same network with event-driven pair STDP on the excitatory →
excitatory projection (``event_driven(chain(pair_stdp(...), clip(w_min=0, w_max=2·w_exc)))``,
A₊ = 1 %, A₋ = 1.05 % of w_exc, τ± = 20 ms), from the same state, and the ratio of its wall time
to the static network's (issue 15 target: within 2×). Firing rates are printed for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

BETA = 0.9


def spikingjelly_lif() -> torch.nn.Module:
    """SpikingJelly's multi-step ``LIFNode`` with our matched parameterization (ImportError when
    SpikingJelly is not installed)."""
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(
        tau=1 / (1 - BETA),
        decay_input=False,
        v_reset=0.0,
        step_mode="m",
        surrogate_function=surrogate.ATan(),
    )


def make_inputs(T: int, B: int, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, B, N, generator=g) * 0.3
    up = torch.randn(T, B, N, generator=g)
    return x, up


def variants(x: torch.Tensor, up: torch.Tensor) -> dict[str, Callable[[], None]]:
    from neuro_spiking.ops.lif_scan import fused_lif_scan

    def ours(backend: str) -> Callable[[], None]:
        def run() -> None:
            xx = x.detach().requires_grad_()
            out = fused_lif_scan(xx, beta=BETA, reset="hard", backend=backend)
            out.spikes.backward(up)

        return run

    out: dict[str, Callable[[], None]] = {
        "neuro_spiking fused": ours("fused"),
        "neuro_spiking compile": ours("compile"),
        "neuro_spiking reference (eager autograd)": ours("reference"),
    }
    try:
        import snntorch

        def snn() -> None:
            lif = snntorch.Leaky(beta=BETA, reset_mechanism="zero")
            mem = lif.init_leaky()
            xx = x.detach().requires_grad_()
            spikes = []
            for t in range(xx.shape[0]):
                s, mem = lif(xx[t], mem)
                spikes.append(s)
            torch.stack(spikes).backward(up)

        out["snnTorch Leaky loop"] = snn
    except ImportError:
        pass
    try:
        spikingjelly_lif()

        def sj() -> None:
            node = spikingjelly_lif()
            xx = x.detach().requires_grad_()
            node(xx).backward(up)

        out["SpikingJelly LIFNode torch"] = sj
    except ImportError:
        pass
    return out


def time_all(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_memory_child(name: str, T: int, B: int, N: int) -> float:
    """In a subprocess: MB of peak RSS above the RSS once inputs exist (warm-up run first)."""
    x, up = make_inputs(T, B, N)
    fn = variants(x, up)[name]
    fn()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_kb("VmRSS")
    fn()
    return (_proc_kb("VmHWM") - before) / 1024


BRIAN2_SCRIPT = r"""
import json, sys, time
import numpy as np
from brian2 import (NeuronGroup, Synapses, PoissonInput, Network, SpikeMonitor, defaultclock,
                    prefs, ms, mV, Hz, second)
prefs.codegen.target = "cython"
d = np.load(sys.argv[1])
cfg = json.loads(sys.argv[2])
defaultclock.dt = cfg["dt_ms"] * ms
n = int(cfg["n"])
G = NeuronGroup(n, "dv/dt = -(v - v_rest) / tau : volt (unless refractory)",
                threshold="v >= theta", reset="v = v_reset",
                refractory=(cfg["refractory_ms"] + cfg["dt_ms"]) * ms, method="euler",
                namespace={"v_rest": cfg["v_rest"] * mV, "tau": cfg["tau_ms"] * ms,
                           "theta": cfg["theta"] * mV, "v_reset": cfg["v_reset"] * mV})
G.v = cfg["v_rest"] * mV
S = Synapses(G, G, "w : volt", on_pre="v_post += w * int(not_refractory_post)")
S.connect(i=d["pre"], j=d["post"])
S.w = d["w"] * mV
S.delay = (d["delay"] - cfg["dt_ms"]) * ms
w_ext = cfg["w_ext"] * mV  # resolved by Brian2 from this module's namespace
P = PoissonInput(G, "v", N=cfg["n_sources"], rate=cfg["rate_hz"] * Hz,
                 weight="w_ext * int(not_refractory)")
M = SpikeMonitor(G)
net = Network(G, S, P, M)
t0 = time.perf_counter(); net.run(10 * ms); codegen = time.perf_counter() - t0
k0 = M.num_spikes
walls = []
for r in range(int(cfg["repeats"])):
    t0 = time.perf_counter(); net.run(cfg["seconds"] * second); walls.append(time.perf_counter() - t0)
i = np.asarray(M.i)[k0:]
n_exc = int(cfg["n_exc"])
span = cfg["seconds"] * len(walls)
print(json.dumps({"wall_s": min(walls), "walls": walls, "first_run_s": codegen, "synapses": len(S),
                  "rate_exc_hz": float((i < n_exc).sum() / n_exc / span),
                  "rate_inh_hz": float((i >= n_exc).sum() / (n - n_exc) / span)}))
"""


def network_target(args: argparse.Namespace) -> None:
    import tempfile

    import numpy as np

    from neuro_spiking.network import PoissonInput, brunel_like

    cfg = dict(
        n_exc=8000,
        n_inh=2000,
        p=0.01,
        dt_ms=0.1,
        delay_ms=1.5,
        w_exc=args.w_exc,
        g=args.g,
        w_ext=args.w_ext,
        n_sources=100,
        rate_hz=10.0,
        seconds=args.seconds,
        repeats=args.network_repeats,
    )
    results = {}
    net = brunel_like(
        n_exc=8000,
        n_inh=2000,
        p=0.01,
        dt_ms=0.1,
        delay_ms=1.5,
        w_exc=args.w_exc,
        g=args.g,
        seed=0,
    )
    inp = PoissonInput(net, rate_hz=10.0, n_sources=100, weight=args.w_ext, seed=1)
    state, _ = net.run(100, inject=inp)
    n_steps = round(args.seconds * 1000 / 0.1)
    walls = []
    counts = {"exc": 0.0, "inh": 0.0}
    n_events = 0
    for _ in range(args.network_repeats):
        t0 = time.perf_counter()
        state, res = net.run(n_steps, state, inject=inp)
        walls.append(time.perf_counter() - t0)
        for k, v in res.spikes.items():
            counts[k] += float(v.sum()) / v.shape[1]
        n_events += res.n_events
    wall = min(walls)
    rates = {k: c / (args.seconds * args.network_repeats) for k, c in counts.items()}
    results["neuro_spiking"] = (wall, rates["exc"], rates["inh"])
    print(
        f"neuro_spiking: {net.syn_pre.numel()} synapses, "
        f"{args.seconds} s biological in {wall:.2f} s wall (best; median "
        f"{statistics.median(walls):.2f}; spans {', '.join(f'{w:.2f}' for w in walls)}), "
        f"rates exc {rates['exc']:.2f} Hz inh {rates['inh']:.2f} Hz, "
        f"{n_events / args.network_repeats:.0f} synaptic events per span",
        flush=True,
    )
    if args.stdp:
        stdp_target(args, net, n_steps)
    if args.brian2_python:
        lif = net.populations[0].lif
        signed = net._signed(list(net.init_state().weights))
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/net.npz"
            np.savez(
                path,
                pre=net.syn_pre[net.pre_order].numpy(),
                post=net.pm_post.numpy(),
                w=signed.numpy().astype(np.float64),
                delay=(net.pm_delay.double() * 0.1).numpy(),
            )
            bcfg = dict(
                cfg,
                n=net.size,
                tau_ms=lif.tau_mem_ms,
                theta=lif.v_threshold,
                v_reset=lif.v_reset,
                v_rest=lif.v_rest,
                refractory_ms=lif.refractory_ms,
            )
            out = subprocess.run(
                [args.brian2_python, "-c", BRIAN2_SCRIPT, path, json.dumps(bcfg)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"Brian2 run failed:\n{out.stderr[-3000:]}")
        b = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"Brian2 (cython): {b['synapses']} synapses, {args.seconds} s biological in "
            f"{b['wall_s']:.2f} s wall (best; median {statistics.median(b['walls']):.2f}; "
            f"spans {', '.join(f'{w:.2f}' for w in b['walls'])}; "
            f"first 10 ms run incl. code generation "
            f"{b['first_run_s']:.1f} s), rates exc {b['rate_exc_hz']:.2f} Hz "
            f"inh {b['rate_inh_hz']:.2f} Hz"
        )
        for name, (wall, r_exc, r_inh) in results.items():
            ok_t = wall <= b["wall_s"]
            d_exc = abs(r_exc - b["rate_exc_hz"]) / b["rate_exc_hz"]
            d_inh = abs(r_inh - b["rate_inh_hz"]) / b["rate_inh_hz"]
            print(
                f"{name}: wall {wall / b['wall_s']:.2f}x Brian2's ({'MET' if ok_t else 'NOT MET'}); "
                f"rate difference exc {d_exc:.1%} inh {d_inh:.1%} "
                f"({'MET' if max(d_exc, d_inh) <= 0.05 else 'NOT MET'} at 5%)"
            )


def stdp_target(args: argparse.Namespace, static: object, n_steps: int) -> None:
    """The same network with event-driven pair STDP on exc → exc; wall time vs the static one.

    Static and plastic spans alternate (round r: one static span, one plastic span, each
    continuing its own state), so that both see the same machine load; the ratio is reported
    per round (median and min-max) beside the medians of each side. The plastic network runs
    the hook's block form (``on_block``) with the compiled kernel when a C compiler is present
    (the line says which engine ran)."""
    from neuro_plasticity import CSR, chain, clip, event_driven, pair_stdp
    from neuro_plasticity.ops.event_stdp import native
    from neuro_spiking.network import Network, PoissonInput

    net0 = static
    assert isinstance(net0, Network)
    pr = net0.projections[0]
    assert (pr.pre, pr.post) == ("exc", "exc")
    rule = chain(
        pair_stdp(a_plus=0.01 * args.w_exc, a_minus=0.0105 * args.w_exc, dt_ms=0.1),
        clip(w_min=0.0, w_max=2 * args.w_exc),
    )
    hook = event_driven(rule, CSR(pr.crow_indices, pr.col_indices, pr.n_post), backend="events")
    net = Network(net0.populations, net0.projections, dt_ms=0.1, plasticity={0: hook})
    inp_s = PoissonInput(net0, rate_hz=10.0, n_sources=100, weight=args.w_ext, seed=1)
    inp = PoissonInput(net, rate_hz=10.0, n_sources=100, weight=args.w_ext, seed=1)
    s_state, _ = net0.run(100, inject=inp_s)
    state, _ = net.run(100, inject=inp)
    walls: list[float] = []
    s_walls: list[float] = []
    rates: list[float] = []
    for _ in range(args.network_repeats):
        t0 = time.perf_counter()
        s_state, _ = net0.run(n_steps, s_state, inject=inp_s)
        s_walls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        state, res = net.run(n_steps, state, inject=inp)
        walls.append(time.perf_counter() - t0)
        rates.append(float(res.spikes["exc"].sum()) / res.spikes["exc"].shape[1] / args.seconds)
    w = state.weights[0]
    ratios = [p / s for p, s in zip(walls, s_walls, strict=True)]
    print(
        f"neuro_spiking + event-driven pair STDP on exc→exc ({pr.nnz} plastic synapses; block "
        f"kernel: {native.status()}): {args.seconds} s biological in "
        f"{statistics.median(walls):.2f} s wall (median; best {min(walls):.2f}; spans "
        f"{', '.join(f'{x:.2f}' for x in walls)}), static spans interleaved with them "
        f"{', '.join(f'{x:.2f}' for x in s_walls)} (median {statistics.median(s_walls):.2f}), "
        f"rates exc {', '.join(f'{r:.2f}' for r in rates)} Hz per span, "
        f"final weights mean {float(w.mean()):.3f} min {float(w.min()):.3f} max {float(w.max()):.3f}; "
        f"plastic / static wall per round: median {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}-{max(ratios):.2f}] (target <= 2x)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--T", type=int, default=64)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--N", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip", nargs="*", default=["neuro_spiking reference (eager autograd)"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--network", action="store_true", help="run the recurrent-network target")
    ap.add_argument("--brian2-python", default=None, help="python with brian2 for --network")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument(
        "--network-repeats",
        type=int,
        default=3,
        help="--network: simulate this many consecutive seconds each; report the best wall time",
    )
    ap.add_argument("--w-exc", type=float, default=0.5, help="excitatory weight (mV)")
    ap.add_argument("--g", type=float, default=5.0, help="relative inhibitory weight")
    ap.add_argument("--w-ext", type=float, default=1.0, help="Poisson input weight (mV)")
    ap.add_argument(
        "--stdp", action="store_true", help="--network: also with event-driven STDP on exc→exc"
    )
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.network:
        network_target(args)
        return
    if args.memory_child:
        print(json.dumps(peak_memory_child(args.memory_child, args.T, args.B, args.N)))
        return
    x, up = make_inputs(args.T, args.B, args.N)
    fns = {k: v for k, v in variants(x, up).items() if k not in args.skip}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"T={args.T} B={args.B} N={args.N} fp32, forward+backward, best of {args.repeats}"
    )
    times = time_all(fns, args.repeats)
    mem = {}
    for name in fns:
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            name,
            "--T",
            str(args.T),
            "--B",
            str(args.B),
            "--N",
            str(args.N),
        ]
        # fixed glibc mmap threshold: every tensor ≥ 128 KiB is its own mapping, returned to the
        # OS when freed, so the peak RSS tracks live tensor memory (not allocator caching)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        mem[name] = float(res.stdout.strip().splitlines()[-1])
    ours = times["neuro_spiking fused"]
    for name in fns:
        print(
            f"  {name:42s} {times[name] * 1e3:9.1f} ms   peak +{mem[name]:7.1f} MB   "
            f"({times[name] / ours:5.2f}x our fused time)"
        )
    for peer, target in [("snnTorch Leaky loop", 5.0), ("SpikingJelly LIFNode torch", 1.5)]:
        if peer in times:
            for ours_name in ("neuro_spiking fused", "neuro_spiking compile"):
                if ours_name in times:
                    r = times[peer] / times[ours_name]
                    print(
                        f"speedup {ours_name} vs {peer}: {r:.2f}x (target ≥ {target}x) "
                        f"{'MET' if r >= target else 'NOT MET'}"
                    )
    if "SpikingJelly LIFNode torch" in mem:
        for ours_name in ("neuro_spiking fused", "neuro_spiking compile"):
            if ours_name in mem:
                ok = mem[ours_name] <= mem["SpikingJelly LIFNode torch"]
                print(
                    f"peak memory {ours_name} {mem[ours_name]:.1f} MB vs SpikingJelly "
                    f"{mem['SpikingJelly LIFNode torch']:.1f} MB: {'MET' if ok else 'NOT MET'}"
                )


if __name__ == "__main__":
    main()
