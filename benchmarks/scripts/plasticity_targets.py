"""neuro-plasticity speed targets, measured as ratios in one process.

1. Chunked fast weights vs the recurrent loop (the spec), forward + backward, fp32, at
   B=2, H=4, T=2048, D=64 (target: ≥ 10× faster, outputs and gradients within 1e-4).
2. Pair STDP on a sparse (CSR) 10,000-neuron network at 1 % connectivity (~1M synapses):
   synapse updates per second of one plasticity step, Poisson spikes at 20 Hz, dt = 0.1 ms
   (the network of the Brian2 figure in ``shared/specs/peers.md``).

    nice -n 10 python benchmarks/scripts/plasticity_targets.py [--threads 1] [--t 2048]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from neuro_plasticity import CSR, on_topology, pair_stdp
from neuro_plasticity.ops.fast_weights import fast_weights


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


def stdp_sparse(n: int, p: float, steps: int, rate_hz: float, dt_ms: float) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(n, n, generator=g) < p
    mask.fill_diagonal_(False)
    topo = CSR.from_dense_mask(mask)
    del mask
    rule = on_topology(pair_stdp(dt_ms=dt_ms), topo)
    w = torch.rand(topo.nnz, generator=g)
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
    return {
        "nnz": topo.nnz,
        "steps_per_s": steps / dt,
        "synapse_updates_per_s": topo.nnz * steps / dt,
        "bio_time_per_wall_s": steps * dt_ms / 1000.0 / dt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--t", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stdp-steps", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} threads {args.threads} {platform.processor()}"
    )
    r = fast_weight_ratio(2, 4, args.t, 64, args.chunk, args.repeats)
    print(
        f"fast weights fwd+bwd B=2 H=4 T={args.t} D=64 fp32: recurrent {r['recurrent_s'] * 1e3:.0f} ms, "
        f"chunked(C={args.chunk}) {r['chunked_s'] * 1e3:.1f} ms, ratio {r['ratio']:.1f}x (target >= 10x); "
        f"max |diff| out {r['max_abs_diff_out']:.2e}, grads {r['max_abs_diff_grad']:.2e} (target <= 1e-4)"
    )
    s = stdp_sparse(10_000, 0.01, args.stdp_steps, 20.0, 0.1)
    print(
        f"pair STDP on CSR, {s['nnz']:,} synapses: {s['steps_per_s']:.1f} steps/s, "
        f"{s['synapse_updates_per_s'] / 1e6:.1f} M synapse-updates/s, "
        f"{s['bio_time_per_wall_s']:.3f} s biological time per wall second at dt=0.1 ms"
    )


if __name__ == "__main__":
    main()
