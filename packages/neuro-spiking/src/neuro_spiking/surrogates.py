"""Surrogate gradients: one "spike forward, surrogate derivative backward" mechanism.

A spike is ``s = H(x)`` with ``x = v − threshold`` (Heaviside, ``H(0) = 1``). Its true derivative
is zero almost everywhere, so the backward pass replaces ``H'(x)`` by a smooth pseudo-derivative
``σ'(x)`` (Neftci, Mostafa & Zenke 2019, "Surrogate gradient learning in spiking neural
networks"). :func:`spike` is the single autograd mechanism; a surrogate is a small frozen
dataclass with a ``derivative(x)`` method (and optionally its own ``forward``, as the multi-bit
spike of Aura does). Adding a surrogate is one small class.

The ``kind`` class attribute names the surrogates the fused Triton kernels know how to evaluate;
a surrogate with ``kind = "custom"`` still works everywhere except in those kernels (the
dispatcher then falls back to the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from neuro_core.validation import check_positive


@dataclass(frozen=True, kw_only=True)
class Surrogate:
    """Base class: Heaviside forward; subclasses define ``derivative``.

    ``scale`` is the single shape parameter every built-in surrogate has (its slope or width);
    the fused kernels receive it as ``alpha``.
    """

    kind: ClassVar[str] = "custom"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The spike itself: ``H(x) = 1[x ≥ 0]`` in ``x.dtype``."""
        return (x >= 0).to(x.dtype)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """Pseudo-derivative ``σ'(x)`` used in place of ``H'(x)``."""
        raise NotImplementedError

    def derivative_(self, x: torch.Tensor) -> torch.Tensor:
        """``derivative(x)`` computed in place where a subclass knows how (``x`` is overwritten
        and returned); the fused CPU backward calls it on a scratch buffer. Equal to
        :meth:`derivative` bit for bit; the default simply calls it."""
        return self.derivative(x)

    @property
    def alpha(self) -> float:
        """The shape parameter passed to fused kernels."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class FastSigmoid(Surrogate):
    """SuperSpike / fast sigmoid: ``σ'(x) = 1 / (1 + slope·|x|)²``.

    Zenke & Ganguli 2018 (SuperSpike). Default ``slope = 25`` as in snnTorch's
    ``surrogate.fast_sigmoid``.
    """

    slope: float = 25.0
    kind: ClassVar[str] = "fast_sigmoid"

    def __post_init__(self) -> None:
        check_positive("slope", self.slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + self.slope * x.abs()).pow(2)

    def derivative_(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs_().mul_(self.slope).add_(1.0).square_().reciprocal_()

    @property
    def alpha(self) -> float:
        return self.slope


@dataclass(frozen=True, kw_only=True)
class ATan(Surrogate):
    """Arc-tangent: ``σ'(x) = (α/2) / (1 + (π/2·α·x)²)``.

    Fang et al. 2021 (PLIF); default ``alpha = 2`` as in snnTorch's ``surrogate.atan`` and
    SpikingJelly's ``surrogate.ATan``.
    """

    slope: float = 2.0
    kind: ClassVar[str] = "atan"

    def __post_init__(self) -> None:
        check_positive("slope", self.slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (self.slope / 2) / (1 + (math.pi / 2 * self.slope * x).pow(2))

    def derivative_(self, x: torch.Tensor) -> torch.Tensor:
        # ``scalar / tensor`` is ``tensor.reciprocal() * scalar`` in torch: same rounding here
        return x.mul_(math.pi / 2 * self.slope).square_().add_(1).reciprocal_().mul_(self.slope / 2)

    @property
    def alpha(self) -> float:
        return self.slope


@dataclass(frozen=True, kw_only=True)
class Sigmoid(Surrogate):
    """Logistic: ``σ'(x) = α·sig(αx)·(1 − sig(αx))``; default ``alpha = 4`` (SpikingJelly)."""

    slope: float = 4.0
    kind: ClassVar[str] = "sigmoid"

    def __post_init__(self) -> None:
        check_positive("slope", self.slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.slope * x)
        return self.slope * s * (1 - s)

    @property
    def alpha(self) -> float:
        return self.slope


@dataclass(frozen=True, kw_only=True)
class Triangle(Surrogate):
    """Triangle (Esser et al. 2016; Bellec et al. 2018): ``σ'(x) = max(0, 1 − |x|/w) / w``.

    Default half-width ``w = 1`` (the threshold-normalized choice of Bellec et al.).
    """

    width: float = 1.0
    kind: ClassVar[str] = "triangle"

    def __post_init__(self) -> None:
        check_positive("width", self.width)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - x.abs() / self.width).clamp_min(0) / self.width

    def derivative_(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs_().div_(self.width).neg_().add_(1).clamp_min_(0).div_(self.width)

    @property
    def alpha(self) -> float:
        return self.width


@dataclass(frozen=True, kw_only=True)
class Rectangular(Surrogate):
    """Straight-through box (Wu et al. 2018): ``σ'(x) = 1[|x| < w/2] / w``; default ``w = 1``."""

    width: float = 1.0
    kind: ClassVar[str] = "rectangular"

    def __post_init__(self) -> None:
        check_positive("width", self.width)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (x.abs() < self.width / 2).to(x.dtype) / self.width

    @property
    def alpha(self) -> float:
        return self.width


@dataclass(frozen=True, kw_only=True)
class MultiBit(Surrogate):
    """Aura's multi-bit spike: forward ``s = clamp(floor(u), 0, L)`` with ``u = v/θ``.

    Backward (Aura ``gif_neuron.py``): ``σ'(u) = max(0, 1 − 2·|u − round(u)|)`` for
    ``0 ≤ u ≤ L + 1`` and 0 outside; it peaks at every integer level crossing and vanishes at
    half-integers. Unlike the other surrogates its argument is the membrane in units of the
    threshold, not ``v − threshold``. Default ``levels = 8`` (Aura's SNN FFN; its GIF default
    is 16).
    """

    levels: int = 8
    kind: ClassVar[str] = "multibit"

    def __post_init__(self) -> None:
        if int(self.levels) != self.levels or self.levels < 1:
            raise ValueError(f"levels must be an integer ≥ 1, got {self.levels!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x).clamp(0, self.levels)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        tri = (1 - 2 * (x - torch.round(x)).abs()).clamp_min(0)
        inside = (x >= 0) & (x <= self.levels + 1)
        return tri * inside.to(x.dtype)

    @property
    def alpha(self) -> float:
        return float(self.levels)


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return surrogate.forward(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


def spike(x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
    """Spike ``surrogate.forward(x)`` whose backward uses ``surrogate.derivative(x)``.

    Args:
        x: any shape; ``v − threshold`` (or ``v/θ`` for :class:`MultiBit`).
        surrogate: a :class:`Surrogate` instance.

    Returns:
        Spikes with the shape and dtype of ``x``.
    """
    if not isinstance(surrogate, Surrogate):
        raise ValueError(f"surrogate must be a Surrogate instance, got {type(surrogate).__name__}")
    return _SurrogateSpike.apply(x, surrogate)


__all__ = [
    "ATan",
    "FastSigmoid",
    "MultiBit",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "Triangle",
    "spike",
]
