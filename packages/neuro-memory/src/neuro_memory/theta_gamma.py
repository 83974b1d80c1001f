"""Theta-gamma positional encoding: gamma cycles nested in theta cycles, at many theta scales.

Position ``p`` (an integer token index) gets, for ``n = D/4`` bands ``b`` with theta periods
``T_b = T_min (T_max / T_min)^{b/(n−1)}`` tokens (geometric, as the wavelengths of the sinusoidal
encoding of Vaswani et al. 2017) and ``G`` gamma cycles per theta cycle,

    θ_b(p) = 2π frac(p / T_b),   γ_b(p) = 2π frac(G p / T_b),   m_b(p) = (1 + cos θ_b(p)) / 2,
    PE(p) = [sin θ, cos θ, m ⊙ sin γ, m ⊙ cos γ]      (four blocks of n, D = 4n).

The gamma amplitude ``m`` peaks at theta phase 0: phase-amplitude coupling, the theta-gamma code
in which each theta cycle holds a few gamma-indexed items (Lisman & Jensen 2013). ``frac`` is taken
from the integer position with an exact float64 remainder (``fmod``), so the phases are correct
to a few ulps at any ``|p| < 2⁵³ / G`` (integer ``G``), whereas at ``p = 10⁶`` a float32 product
``p · 2π/T`` puts errors of order 10⁻² into the encoding (a test measures both).
The encoding of ``p`` depends on ``p`` alone, so encoding one position during generation gives
exactly row ``p`` of the whole-sequence encoding.

Source: Aura's ``ThetaGammaPositionalEncoding`` (auralmn/aura-snn-rag,
``src/core/language_zone/theta_gamma_encoding.py``; reference-systems §3.1), kept as
``variant="published"``:

    φ(p) = 2π p / (L − 1),   PE_i(p) = A_i [sin(φ + a_i) + ½ · ½ (cos(φ + a_i) + 1) sin(Gφ + b_i)],

with ``L = max_seq_len`` (512), ``G = 40/8 = 5``, learnable ``a_i, b_i ~ N(0, 0.1²)`` and
``A_i = 1``. Where it goes wrong:

* **Rank ≤ 8.** Every dimension uses the same two frequencies, so PE lies in the span of
  ``{sin, cos}(kφ)``, ``k ∈ {1, 4, 5, 6}``: at most 8 independent directions, whatever ``D``.
* **Aliasing.** ``φ`` has period ``L − 1``: the last position of a full context (``p = L − 1``)
  gets the encoding of ``p = 0``, and generation past ``L − 1`` repeats earlier positions.
* **Resolution.** Neighbouring positions differ by ``2π/(L − 1)`` ≈ 0.012 rad of phase, so
  nearby positions have almost equal encodings (a test measures this against ours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_int, check_positive, check_tensor

ThetaGammaVariant = Literal["multiscale", "published"]
_VARIANTS: tuple[str, ...] = ("multiscale", "published")

#: Default fastest theta period (tokens): with G = 5 the fastest gamma period is 4 tokens, twice
#: the Nyquist limit of 2 samples per cycle (ours).
DEFAULT_MIN_PERIOD = 20.0
#: Default slowest theta period: 2π·10⁴, the longest wavelength of the sinusoidal encoding.
DEFAULT_MAX_PERIOD = 2 * math.pi * 10_000


@dataclass(frozen=True, kw_only=True)
class ThetaGammaParams:
    """Options of :class:`ThetaGammaEncoding`.

    Attributes:
        dim: encoding width ``D`` (a multiple of 4 for ``"multiscale"``).
        variant: ``"multiscale"`` (ours) or ``"published"`` (Aura's, see the module docstring).
        gamma_per_theta: ``G``, gamma cycles per theta cycle. Default 5 = Aura's 40 Hz / 8 Hz.
        min_period: fastest theta period ``T_min`` in tokens (``"multiscale"`` only; default
            :data:`DEFAULT_MIN_PERIOD`).
        max_period: slowest theta period ``T_max`` (``"multiscale"`` only; default
            :data:`DEFAULT_MAX_PERIOD`).
        max_seq_len: ``L`` of the published phase ``2π p / (L − 1)`` (``"published"`` only;
            Aura's default is 512).
    """

    dim: int
    variant: ThetaGammaVariant = "multiscale"
    gamma_per_theta: float = 5.0
    min_period: float | None = None
    max_period: float | None = None
    max_seq_len: int | None = None

    def __post_init__(self) -> None:
        check_int("dim", self.dim)
        if self.variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got {self.variant!r}")
        check_positive("gamma_per_theta", self.gamma_per_theta)
        if self.variant == "published":
            if self.min_period is not None or self.max_period is not None:
                raise ValueError("min_period and max_period are used only by variant='multiscale'")
            v = self.max_seq_len
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(
                    f"max_seq_len must be an int ≥ 2 for variant='published', got {v!r}"
                )
            return
        if self.max_seq_len is not None:
            raise ValueError("max_seq_len is used only by variant='published'")
        if self.dim % 4 != 0:
            raise ValueError(
                f"dim must be a multiple of 4 for variant='multiscale', got {self.dim}"
            )
        lo, hi = self.periods[0], self.periods[-1]
        check_positive("min_period", lo)
        check_positive("max_period", hi)
        if hi < lo:
            raise ValueError(f"max_period must be ≥ min_period={lo}, got {hi}")

    @property
    def periods(self) -> tuple[float, ...]:
        """Theta periods ``T_b`` of the ``D/4`` bands (``"multiscale"``), fastest first."""
        lo = DEFAULT_MIN_PERIOD if self.min_period is None else float(self.min_period)
        hi = DEFAULT_MAX_PERIOD if self.max_period is None else float(self.max_period)
        n = self.dim // 4
        if n == 1:
            return (lo,)
        return tuple(lo * (hi / lo) ** (b / (n - 1)) for b in range(n))


def _check_positions(positions: torch.Tensor) -> torch.Tensor:
    check_tensor("positions", positions)
    if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise ValueError(
            f"positions must be an integer tensor of token indices, got {positions.dtype}"
        )
    return positions


def theta_gamma_encoding(
    positions: torch.Tensor,
    periods: tuple[float, ...],
    *,
    gamma_per_theta: float,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Reference multiscale theta-gamma encoding (equation in the module docstring).

    Args:
        positions: ``p`` ``[...]``, an integer tensor (any sign; exact phases for ``|p| < 2⁵³ / G``
            when ``G`` is an integer).
        periods: theta periods ``T_b`` (``n`` bands), positive.
        gamma_per_theta: ``G > 0``.
        dtype: floating dtype of the result.

    Returns:
        ``[..., 4n]``: ``[sin θ, cos θ, m sin γ, m cos γ]``. The phases are computed in float64
        on ``positions``' device (a device without float64, such as MPS, cannot run this).
    """
    p = _check_positions(positions)
    if len(periods) == 0:
        raise ValueError("periods must not be empty")
    for t in periods:
        check_positive("periods", t)
    check_positive("gamma_per_theta", gamma_per_theta)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    period = torch.tensor(periods, dtype=torch.float64, device=p.device)
    pos = p.to(torch.float64)[..., None]

    def phase(x: torch.Tensor) -> torch.Tensor:
        # fmod of float64 numbers is exact (IEEE 754), so the phase keeps full precision at any p;
        # p · 2π / T would lose log2(p) bits.
        r = torch.fmod(x, period)
        r = torch.where(r < 0, r + period, r)
        return (2 * math.pi) * (r / period)

    theta = phase(pos)
    gamma = phase(pos * gamma_per_theta)
    m = 0.5 * (1 + torch.cos(theta))
    out = torch.cat(
        [torch.sin(theta), torch.cos(theta), m * torch.sin(gamma), m * torch.cos(gamma)], -1
    )
    return out.to(dtype)


def published_theta_gamma_encoding(
    positions: torch.Tensor,
    theta_offset: torch.Tensor,
    gamma_offset: torch.Tensor,
    amplitude: torch.Tensor,
    *,
    max_seq_len: int,
    gamma_per_theta: float = 5.0,
) -> torch.Tensor:
    """Aura's encoding ``A_i [sin(φ + a_i) + ¼ (cos(φ + a_i) + 1) sin(Gφ + b_i)]``, ``φ = 2πp/(L−1)``.

    As published, ``φ`` is computed in float32. Args: ``positions [...]`` integer; the three
    per-dimension tensors ``[D]``; ``max_seq_len`` = ``L ≥ 2``. Returns ``[..., D]``.
    """
    p = _check_positions(positions)
    a = check_tensor("theta_offset", theta_offset, ndim=1, floating=True, device=p.device)
    d = a.shape[0]
    check_tensor("gamma_offset", gamma_offset, shape=(d,), dtype=a.dtype, device=p.device)
    check_tensor("amplitude", amplitude, shape=(d,), dtype=a.dtype, device=p.device)
    check_int("max_seq_len", max_seq_len, low=2)
    check_positive("gamma_per_theta", gamma_per_theta)
    phi = (p.float() / float(max_seq_len - 1) * (2.0 * math.pi))[..., None]
    theta = phi + theta_offset
    gamma = phi * gamma_per_theta + gamma_offset
    coupled = (torch.cos(theta) + 1.0) * 0.5 * torch.sin(gamma)
    return (torch.sin(theta) + 0.5 * coupled) * amplitude


class ThetaGammaEncoding(nn.Module):
    """Positional encoding ``positions [...]`` (integer) → ``[..., D]``.

    ``"multiscale"`` has no parameters and returns ``dtype`` (float32 unless given).
    ``"published"`` owns Aura's learnable ``theta_offset``, ``gamma_offset`` (``N(0, 0.1²)``) and
    ``amplitude`` (ones), and returns their dtype (``dtype`` must then be None or equal to it).

    Args:
        params: :class:`ThetaGammaParams`.
        generator: seeds the published offsets.
    """

    def __init__(
        self, params: ThetaGammaParams, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.params = params
        self.theta_offset: nn.Parameter | None = None
        self.gamma_offset: nn.Parameter | None = None
        self.amplitude: nn.Parameter | None = None
        if params.variant == "published":
            d = params.dim
            self.theta_offset = nn.Parameter(torch.randn(d, generator=generator) * 0.1)
            self.gamma_offset = nn.Parameter(torch.randn(d, generator=generator) * 0.1)
            self.amplitude = nn.Parameter(torch.ones(d))

    def forward(self, positions: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        prm = self.params
        if prm.variant == "multiscale":
            return theta_gamma_encoding(
                positions,
                prm.periods,
                gamma_per_theta=prm.gamma_per_theta,
                dtype=torch.float32 if dtype is None else dtype,
            )
        # Set in __init__ for this variant; the asserts narrow the Optional types.
        assert self.theta_offset is not None
        assert self.gamma_offset is not None
        assert self.amplitude is not None
        assert prm.max_seq_len is not None
        if dtype is not None and dtype != self.theta_offset.dtype:
            raise ValueError(
                f"dtype must be None or {self.theta_offset.dtype} for variant='published', got {dtype}"
            )
        return published_theta_gamma_encoding(
            positions,
            self.theta_offset,
            self.gamma_offset,
            self.amplitude,
            max_seq_len=prm.max_seq_len,
            gamma_per_theta=prm.gamma_per_theta,
        )

    def extra_repr(self) -> str:
        return f"params={self.params}"
