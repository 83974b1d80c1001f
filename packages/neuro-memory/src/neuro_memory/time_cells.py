"""Time cells: a population tuned to log-spaced intervals since an event.

Cell ``j`` of ``n`` prefers the interval ``τ_j = τ_min (τ_max / τ_min)^{j/(n−1)}`` (log-spaced:
``τ_{j+1} / τ_j`` is constant) and responds to the elapsed time ``t`` with

    log-Gaussian (ours):  r_j(t) = exp(−(ln t − ln τ_j)² / (2σ²))   for t > 0, 0 for t ≤ 0,
    Gaussian (Aura):      r_j(t) = exp(−(t − τ_j)² / (2 (σ τ_j)²)).

Both peak at ``t = τ_j`` with value 1 and have a width proportional to ``τ_j`` (the scalar property
of interval timing, Gibbon 1977). The log-Gaussian is exactly scale-invariant,
``r_{j+1}(ρ t) = r_j(t)`` for ``ρ = τ_{j+1}/τ_j``, and is skewed towards long intervals, as
hippocampal time cells are (MacDonald et al. 2011; Howard et al. 2014, a log-compressed timeline).
The two shapes agree near the peak, since ``ln(t/τ) ≈ t/τ − 1``.

Source: the time cells of Aura's ``HippocampalFormation`` (auralmn/aura-snn-rag,
``src/core/hippocampal.py``; reference-systems §3.2): 100 cells from 1 s to 1000 s, rate
``15 · exp(−(t − τ)² / (2 (w/3)²))`` with a "width" ``w = 0.3 τ``, i.e. ``σ = 0.1`` here. What goes
wrong there: ``t`` is the **wall-clock** time since the formation was built, so the same text gets a
different code on every run and machine, and nothing feeds the rates to the language model. Here
the elapsed time is an argument (tokens, steps or seconds since an event, the caller's unit), so
the code is reproducible; ``shape="gaussian"`` keeps Aura's tuning curve (without the rate 15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_int, check_positive, check_tensor

TimeShape = Literal["log_gaussian", "gaussian"]
_SHAPES: tuple[str, ...] = ("log_gaussian", "gaussian")


@dataclass(frozen=True, kw_only=True)
class TimeCellParams:
    """Options of :class:`TimeCells`.

    Attributes:
        n_cells: number of cells ``n``. Default 100 = Aura's.
        min_interval: ``τ_min > 0``, in the unit of the elapsed time. Default 1 (Aura: 1 s).
        max_interval: ``τ_max ≥ τ_min``. Default 1000 (Aura: 1000 s).
        width: ``σ``: the standard deviation of ``ln t`` (log-Gaussian) or of ``t / τ_j``
            (Gaussian). Default 0.1 = Aura's effective width (``0.3 τ / 3``).
        shape: ``"log_gaussian"`` (ours) or ``"gaussian"`` (Aura's tuning curve).
    """

    n_cells: int = 100
    min_interval: float = 1.0
    max_interval: float = 1000.0
    width: float = 0.1
    shape: TimeShape = "log_gaussian"

    def __post_init__(self) -> None:
        check_int("n_cells", self.n_cells)
        check_positive("min_interval", self.min_interval)
        check_positive("max_interval", self.max_interval)
        if self.max_interval < self.min_interval:
            raise ValueError(
                f"max_interval must be ≥ min_interval={self.min_interval}, got {self.max_interval}"
            )
        if self.n_cells == 1 and self.max_interval != self.min_interval:
            raise ValueError(
                "n_cells=1 needs max_interval == min_interval (one preferred interval)"
            )
        check_positive("width", self.width)
        if self.shape not in _SHAPES:
            raise ValueError(f"shape must be one of {_SHAPES}, got {self.shape!r}")

    @property
    def intervals(self) -> tuple[float, ...]:
        """Preferred intervals ``τ_j``, log-spaced from ``min_interval`` to ``max_interval``."""
        n = self.n_cells
        if n == 1:
            return (float(self.min_interval),)
        log_lo, log_hi = math.log(self.min_interval), math.log(self.max_interval)
        return tuple(math.exp(log_lo + (log_hi - log_lo) * j / (n - 1)) for j in range(n))


def time_cell_code(
    elapsed: torch.Tensor, intervals: torch.Tensor, *, width: float, shape: TimeShape
) -> torch.Tensor:
    """Reference time-cell rates ``r_j(t)`` (see the module docstring for both shapes).

    Args:
        elapsed: ``t`` ``[...]``, floating point, any sign (``t ≤ 0`` gives 0 for the log-Gaussian).
        intervals: ``τ`` ``[n]``, positive, same dtype and device.
        width: ``σ > 0``.
        shape: ``"log_gaussian"`` or ``"gaussian"``.

    Returns:
        ``[..., n]`` in ``[0, 1]``.
    """
    t = check_tensor("elapsed", elapsed, floating=True, finite=True)
    tau = check_tensor("intervals", intervals, ndim=1, dtype=t.dtype, device=t.device, finite=True)
    check_positive("width", width)
    if shape not in _SHAPES:
        raise ValueError(f"shape must be one of {_SHAPES}, got {shape!r}")
    t = t[..., None]
    if shape == "gaussian":
        return torch.exp(-((t - tau) ** 2) / (2 * (width * tau) ** 2))
    positive = t > 0
    # log of a clamped t keeps the masked branch finite (and its gradient zero, not NaN).
    log_t = torch.log(torch.where(positive, t, torch.ones_like(t)))
    r = torch.exp(-((log_t - torch.log(tau)) ** 2) / (2 * width**2))
    return torch.where(positive, r, torch.zeros_like(r))


class TimeCells(nn.Module):
    """A fixed time-cell population: ``elapsed [...]`` → rates ``[..., n]`` (no parameters).

    The intervals are computed in float64 and cast to the input's dtype on each call.
    """

    def __init__(self, params: TimeCellParams | None = None) -> None:
        super().__init__()
        self.params = params if params is not None else TimeCellParams()

    def forward(self, elapsed: torch.Tensor) -> torch.Tensor:
        check_tensor("elapsed", elapsed, floating=True)
        tau = torch.tensor(self.params.intervals, dtype=elapsed.dtype, device=elapsed.device)
        return time_cell_code(elapsed, tau, width=self.params.width, shape=self.params.shape)

    def extra_repr(self) -> str:
        return f"params={self.params}"
