"""Calibrated readouts: output spike counts → next-token distribution.

Two readouts of a count vector ``c [V]`` (spikes of each token's output group in the readout
window after token t), both with one scalar fitted on held-out (count, next token) pairs:

* **softmax** with temperature τ > 0 (reference-systems.md §2.5):
  ``p(v) = exp(c_v/τ) / Σ_u exp(c_u/τ)``;
* **Laplace** (additive smoothing) with pseudo-count α > 0:
  ``p(v) = (c_v + α) / (Σ_u c_u + V·α)``.

The fit minimises the mean NLL ``−(1/N) Σ_n log p(y_n | c_n)`` over a log-spaced grid refined
by golden-section search on log τ (or log α); both NLLs are unimodal enough in the log scalar
for this to find the minimum to 1e-4 relative on the ranges used here (tests compare against a
brute-force grid).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from neuro_core.validation import check_positive, check_tensor

Readout = Literal["softmax", "laplace"]

__all__ = ["Readout", "fit_readout", "readout_log_probs", "readout_nll"]


def readout_log_probs(
    counts: torch.Tensor, scale: float, kind: Readout = "softmax"
) -> torch.Tensor:
    """``log p [..., V]`` of counts ``[..., V]`` (float64; module docstring): ``scale`` is τ for
    ``"softmax"`` and α for ``"laplace"``."""
    check_tensor("counts", counts, ndim=None, finite=True)
    check_positive("scale", scale)
    c = counts.double()
    if kind == "softmax":
        return torch.log_softmax(c / scale, dim=-1)
    if kind == "laplace":
        if bool((c < 0).any()):
            raise ValueError("counts must be ≥ 0 for the Laplace readout")
        v = c.shape[-1]
        return (c + scale).log() - (c.sum(-1, keepdim=True) + v * scale).log()
    raise ValueError(f"kind must be 'softmax' or 'laplace', got {kind!r}")


def readout_nll(
    counts: torch.Tensor, targets: torch.Tensor, scale: float, kind: Readout = "softmax"
) -> float:
    """Mean ``−log p(targets | counts)`` in nats; ``counts [N, V]``, ``targets [N]`` int64."""
    check_tensor("counts", counts, ndim=2)
    check_tensor("targets", targets, shape=(counts.shape[0],), dtype=torch.int64)
    if counts.shape[0] == 0:
        raise ValueError("counts must hold at least one row")
    if int(targets.min()) < 0 or int(targets.max()) >= counts.shape[1]:
        raise ValueError(f"targets must lie in [0, {counts.shape[1]})")
    lp = readout_log_probs(counts, scale, kind)
    return float(-lp.gather(1, targets[:, None]).mean())


def fit_readout(
    counts: torch.Tensor,
    targets: torch.Tensor,
    kind: Readout = "softmax",
    *,
    low: float = 1e-2,
    high: float = 1e3,
) -> float:
    """The τ (softmax) or α (Laplace) in ``[low, high]`` minimising :func:`readout_nll`."""
    check_positive("low", low)
    if not high > low:
        raise ValueError(f"high must be > low, got {low} and {high}")

    def f(log_s: float) -> float:
        return readout_nll(counts, targets, math.exp(log_s), kind)

    a, b = math.log(low), math.log(high)
    grid = [a + (b - a) * i / 40 for i in range(41)]
    vals = [f(g) for g in grid]
    i = min(range(len(grid)), key=vals.__getitem__)
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    # golden-section search on the bracket around the best grid point
    r = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(40):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - r * (hi - lo)
            f1 = f(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + r * (hi - lo)
            f2 = f(x2)
    best = (x1 + x2) / 2
    return math.exp(best if f(best) <= vals[i] else grid[i])
