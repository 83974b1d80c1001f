"""Calibrated readouts: output spike counts → next-token distribution.

Two readouts of a count vector ``c [V]`` (spikes of each token's output group in the readout
window after token t), both with one scalar fitted on held-out (count, next token) pairs:

* **softmax** with temperature τ > 0 (reference-systems.md §2.5):
  ``p(v) = exp(c_v/τ) / Σ_u exp(c_u/τ)``;
* **Laplace** (additive smoothing) with pseudo-count α > 0:
  ``p(v) = (c_v + α) / (Σ_u c_u + V·α)``.

Both take an optional prior ``π [V]`` (a distribution; None = uniform 1/V, the two formulas
above): softmax ``p(v) ∝ π_v · exp(c_v/τ)`` (a log-prior bias), and the Laplace readout becomes
the Dirichlet-smoothed estimate ``p(v) = (c_v + V·α·π_v) / (Σ_u c_u + V·α)``, which falls back to
π where the counts are silent. With π the unigram of the training targets (HebLLM's output
groups counting their own teacher spikes), a readout whose counts carry no information scores
the unigram floor instead of log V.

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


def _check_prior(prior: torch.Tensor | None, v: int) -> torch.Tensor | None:
    if prior is None:
        return None
    check_tensor("prior", prior, shape=(v,), floating=True, finite=True)
    p = prior.double()
    if bool((p <= 0).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
        raise ValueError("prior must be a distribution with every entry > 0 (summing to 1)")
    return p


def readout_log_probs(
    counts: torch.Tensor,
    scale: float,
    kind: Readout = "softmax",
    prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log p [..., V]`` of counts ``[..., V]`` (float64; module docstring): ``scale`` is τ for
    ``"softmax"`` and α for ``"laplace"``; ``prior [V]`` π (None: uniform)."""
    check_tensor("counts", counts, ndim=None, finite=True)
    check_positive("scale", scale)
    c = counts.double()
    v = c.shape[-1]
    pi = _check_prior(prior, v)
    if kind == "softmax":
        z = c / scale
        return torch.log_softmax(z if pi is None else z + pi.log(), dim=-1)
    if kind == "laplace":
        if bool((c < 0).any()):
            raise ValueError("counts must be ≥ 0 for the Laplace readout")
        num = c + scale if pi is None else c + (v * scale) * pi
        return num.log() - (c.sum(-1, keepdim=True) + v * scale).log()
    raise ValueError(f"kind must be 'softmax' or 'laplace', got {kind!r}")


def readout_nll(
    counts: torch.Tensor,
    targets: torch.Tensor,
    scale: float,
    kind: Readout = "softmax",
    prior: torch.Tensor | None = None,
) -> float:
    """Mean ``−log p(targets | counts)`` in nats; ``counts [N, V]``, ``targets [N]`` int64."""
    check_tensor("counts", counts, ndim=2)
    check_tensor("targets", targets, shape=(counts.shape[0],), dtype=torch.int64)
    if counts.shape[0] == 0:
        raise ValueError("counts must hold at least one row")
    if int(targets.min()) < 0 or int(targets.max()) >= counts.shape[1]:
        raise ValueError(f"targets must lie in [0, {counts.shape[1]})")
    lp = readout_log_probs(counts, scale, kind, prior)
    return float(-lp.gather(1, targets[:, None]).mean())


def fit_readout(
    counts: torch.Tensor,
    targets: torch.Tensor,
    kind: Readout = "softmax",
    *,
    prior: torch.Tensor | None = None,
    low: float = 1e-2,
    high: float = 1e3,
) -> float:
    """The τ (softmax) or α (Laplace) in ``[low, high]`` minimising :func:`readout_nll` (with
    ``prior``)."""
    check_positive("low", low)
    if not high > low:
        raise ValueError(f"high must be > low, got {low} and {high}")

    def f(log_s: float) -> float:
        return readout_nll(counts, targets, math.exp(log_s), kind, prior)

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
