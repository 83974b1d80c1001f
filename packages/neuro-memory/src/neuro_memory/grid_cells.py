"""Hexagonal grid-cell codes of 2-D positions: three plane waves 60° apart, at several scales.

Cell ``n`` with spacing ``λ_n``, orientation ``θ_n`` and spatial phase ``c_n [2]`` responds to a
position ``x [2]`` with

    g_n(x) = (1/3) Σ_{j=0}^{2} cos(κ_n u(θ_n + jπ/3) · (x − c_n)),   κ_n = 4π / (√3 λ_n),

``u(φ) = (cos φ, sin φ)`` (Solstad, Moser & Einevoll 2006; Burgess, Barry & O'Keefe 2007). The
code lies in ``[−1/2, 1]``, equals 1 on the triangular lattice ``c_n + i a₁ + j a₂`` with
``a₁ = λ_n u(θ_n + π/6)``, ``a₂ = λ_n u(θ_n + π/2)`` (peaks ``λ_n`` apart), and is unchanged by a
60° rotation about ``c_n``. Grid cells come in discrete modules of shared spacing and orientation
(Stensola et al. 2012); :func:`grid_cell_layout` builds such modules.

Source: the grid cells of Aura's ``HippocampalFormation`` (auralmn/aura-snn-rag,
``src/core/hippocampal.py``; reference-systems §3.2): 200 cells with spacings spread continuously
over ``2^0 … 2^2``, random orientations in ``[0, π/3)`` and random phases, rate
``25 · relu(g + 1/2)``. What we keep and change:

* **Nothing reads them.** In Aura the location is never updated from text and the grid rates are
  never passed to the language model. Here the code is a function of whatever 2-D coordinate the
  caller supplies; it does not pretend to know where a token is.
* **The ReLU is a no-op.** ``g ≥ −1/2`` everywhere (the three phases sum to a multiple of 2π),
  so ``relu(g + 1/2) = g + 1/2``; Aura's rate is the affine map ``25 (g + 1/2)`` of the code
  returned here.
* **Exact directions.** Aura writes the second and third wave vectors with ``0.866`` for ``√3/2``,
  which breaks the 60° symmetry at the 10⁻⁵ level; we use ``u(θ + jπ/3)``. (Waves at 0°, 120°,
  240°, as in Aura, give the same code as 0°, 60°, 120°: cosine is even.)
* **Modules.** Spacings are discrete modules (``spacings``), each with its own orientation, rather
  than a continuum in which no two cells share a lattice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_int, check_positive, check_tensor


@dataclass(frozen=True, kw_only=True)
class GridCellParams:
    """Layout of a grid-cell population (see :func:`grid_cell_layout`).

    Attributes:
        spacings: lattice spacing ``λ`` of each module, in the unit of the positions. Default
            ``(1, 2, 4)``: the ends and midpoint of Aura's ``2^0 … 2^2`` range.
        n_orientations: orientations per module, evenly spread over ``[θ₀, θ₀ + π/3)`` from a
            random ``θ₀`` per module (60° covers every distinct orientation of a hexagonal lattice).
        n_phases: cells per (module, orientation), with phases uniform over the lattice's unit
            cell. Default 16.
    """

    spacings: tuple[float, ...] = (1.0, 2.0, 4.0)
    n_orientations: int = 1
    n_phases: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.spacings, tuple) or len(self.spacings) == 0:
            raise ValueError(f"spacings must be a non-empty tuple, got {self.spacings!r}")
        for s in self.spacings:
            check_positive("spacings", s)
        for name in ("n_orientations", "n_phases"):
            v = getattr(self, name)
            check_int(name, v)

    @property
    def n_cells(self) -> int:
        """``len(spacings) · n_orientations · n_phases``."""
        return len(self.spacings) * self.n_orientations * self.n_phases


class GridLayout(NamedTuple):
    """Per-cell lattice parameters.

    Attributes:
        spacing: ``[N]`` ``λ_n``.
        orientation: ``[N]`` ``θ_n`` in radians.
        phase: ``[N, 2]`` ``c_n``.
    """

    spacing: torch.Tensor
    orientation: torch.Tensor
    phase: torch.Tensor


def grid_cell_layout(
    params: GridCellParams,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> GridLayout:
    """Random modules: one ``θ₀ ~ U[0, π/3)`` per module, phases ``c = α a₁ + β a₂``, α, β ~ U[0, 1).

    Cells are ordered module-major, then orientation, then phase.
    """
    m, o, p = len(params.spacings), params.n_orientations, params.n_phases
    theta0 = torch.rand(m, 1, generator=generator, dtype=torch.float64) * (math.pi / (3 * o))
    theta = (theta0 + torch.arange(o, dtype=torch.float64) * (math.pi / (3 * o)))[:, :, None]
    lam = torch.tensor(params.spacings, dtype=torch.float64)[:, None, None]
    theta, lam = theta.expand(m, o, p), lam.expand(m, o, p)
    ab = torch.rand(m, o, p, 2, generator=generator, dtype=torch.float64)
    a1 = lam[..., None] * torch.stack(
        [torch.cos(theta + math.pi / 6), torch.sin(theta + math.pi / 6)], -1
    )
    a2 = lam[..., None] * torch.stack(
        [torch.cos(theta + math.pi / 2), torch.sin(theta + math.pi / 2)], -1
    )
    phase = ab[..., :1] * a1 + ab[..., 1:] * a2
    return GridLayout(
        lam.reshape(-1).to(dtype), theta.reshape(-1).to(dtype), phase.reshape(-1, 2).to(dtype)
    )


def grid_code(positions: torch.Tensor, layout: GridLayout) -> torch.Tensor:
    """Reference grid code ``g_n(x) = (1/3) Σ_j cos(κ_n u(θ_n + jπ/3)·(x − c_n))``.

    Args:
        positions: ``x`` ``[..., 2]``, floating point.
        layout: :class:`GridLayout` with ``N`` cells.

    Returns:
        ``[..., N]`` in ``[−1/2, 1]``, dtype of ``positions``. The phases are computed in float64
        so that large coordinates keep their precision.
    """
    x = check_tensor("positions", positions, floating=True, finite=True)
    if x.ndim < 1 or x.shape[-1] != 2:
        raise ValueError(f"positions must have shape [..., 2], got {tuple(x.shape)}")
    spacing = check_tensor("layout.spacing", layout.spacing, ndim=1, floating=True, device=x.device)
    n = spacing.shape[0]
    check_tensor(
        "layout.orientation", layout.orientation, shape=(n,), floating=True, device=x.device
    )
    check_tensor("layout.phase", layout.phase, shape=(n, 2), floating=True, device=x.device)
    lam = spacing.double()
    theta = layout.orientation.double()
    kappa = 4 * math.pi / (math.sqrt(3) * lam)
    rel = x.double()[..., None, :] - layout.phase.double()  # [..., N, 2]
    total = torch.zeros(rel.shape[:-1], dtype=torch.float64, device=x.device)
    for j in range(3):
        ang = theta + j * math.pi / 3
        proj = rel[..., 0] * torch.cos(ang) + rel[..., 1] * torch.sin(ang)
        total = total + torch.cos(kappa * proj)
    return (total / 3).to(x.dtype)


class GridCells(nn.Module):
    """A fixed grid-cell population (buffers, no parameters): ``x [..., 2]`` → ``g [..., N]``.

    Args:
        params: :class:`GridCellParams`.
        generator: seeds the random orientations and phases.
    """

    def __init__(
        self, params: GridCellParams | None = None, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.params = params if params is not None else GridCellParams()
        self.spacing: torch.Tensor
        self.orientation: torch.Tensor
        self.phase: torch.Tensor
        layout = grid_cell_layout(self.params, generator=generator)
        self.register_buffer("spacing", layout.spacing)
        self.register_buffer("orientation", layout.orientation)
        self.register_buffer("phase", layout.phase)

    @property
    def layout(self) -> GridLayout:
        return GridLayout(self.spacing, self.orientation, self.phase)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return grid_code(positions, self.layout)

    def extra_repr(self) -> str:
        return f"params={self.params} (N={self.params.n_cells})"
