"""Grid cells: numpy reference, hexagonal symmetry, lattice periodicity, range, layout, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import GridCellParams, GridCells, GridLayout, grid_cell_layout, grid_code


def _one_cell(spacing: float, theta: float, c: tuple[float, float]) -> GridLayout:
    return GridLayout(
        torch.tensor([spacing], dtype=torch.float64),
        torch.tensor([theta], dtype=torch.float64),
        torch.tensor([c], dtype=torch.float64),
    )


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    r = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return v @ r.T


def _numpy_grid(x: np.ndarray, spacing, theta, phase) -> np.ndarray:
    """Independent reference: wave vectors as explicit 2-vectors, mean of three cosines."""
    out = np.zeros((*x.shape[:-1], len(spacing)))
    for n in range(len(spacing)):
        k = 4 * math.pi / (math.sqrt(3) * spacing[n])
        waves = [
            k
            * np.array([math.cos(theta[n] + j * math.pi / 3), math.sin(theta[n] + j * math.pi / 3)])
            for j in range(3)
        ]
        rel = x - phase[n]
        out[..., n] = sum(np.cos(rel @ w) for w in waves) / 3
    return out


coords = st.floats(-50, 50, allow_nan=False)
cell = st.tuples(st.floats(0.3, 8.0), st.floats(0.0, 2 * math.pi), coords, coords)


def test_matches_numpy_reference():
    cells = GridCells(
        GridCellParams(spacings=(0.7, 1.4, 3.1), n_orientations=2, n_phases=3),
        generator=torch.Generator().manual_seed(0),
    )
    x = torch.randn(4, 5, 2, dtype=torch.float64) * 10
    ref = _numpy_grid(
        x.numpy(), cells.spacing.numpy(), cells.orientation.numpy(), cells.phase.numpy()
    )
    np.testing.assert_allclose(cells(x).numpy(), ref, rtol=0, atol=1e-12)
    assert cells(x.float()).dtype == torch.float32


@settings(max_examples=60, deadline=None)
@given(c=cell, x=st.tuples(coords, coords), turns=st.integers(1, 5))
def test_sixty_degree_rotational_symmetry(c, x, turns):
    spacing, theta, cx, cy = c
    layout = _one_cell(spacing, theta, (cx, cy))
    centre = np.array([cx, cy])
    rotated = centre + _rotate(np.array(x) - centre, turns * math.pi / 3)
    g = grid_code(torch.tensor([x, tuple(rotated)], dtype=torch.float64), layout)
    torch.testing.assert_close(g[1], g[0], rtol=0, atol=1e-9)


def test_not_symmetric_under_other_rotations():
    """The symmetry test can fail: a 30° or 45° turn changes the code."""
    layout = _one_cell(2.0, 0.3, (0.0, 0.0))
    x = np.array([0.9, 0.4])
    for angle in (math.pi / 6, math.pi / 4):
        g = grid_code(torch.tensor(np.stack([x, _rotate(x, angle)])), layout)
        assert abs(float(g[1] - g[0])) > 1e-3


@settings(max_examples=60, deadline=None)
@given(c=cell, x=st.tuples(coords, coords), i=st.integers(-3, 3), j=st.integers(-3, 3))
def test_lattice_periodicity_and_peaks(c, x, i, j):
    spacing, theta, cx, cy = c
    layout = _one_cell(spacing, theta, (cx, cy))
    a1 = spacing * np.array([math.cos(theta + math.pi / 6), math.sin(theta + math.pi / 6)])
    a2 = spacing * np.array([math.cos(theta + math.pi / 2), math.sin(theta + math.pi / 2)])
    shifted = np.array(x) + i * a1 + j * a2
    peak = np.array([cx, cy]) + i * a1 + j * a2
    g = grid_code(torch.tensor(np.stack([np.array(x), shifted, peak])), layout)
    torch.testing.assert_close(g[1], g[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(g[2], torch.ones(1, dtype=torch.float64), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(c=cell, x=st.tuples(coords, coords))
def test_range_and_minimum(c, x):
    """g ∈ [−1/2, 1], so Aura's relu(g + 1/2) never clips; −1/2 is reached at the centroid of a
    lattice triangle (the three phases are then 2π/3, 4π/3, 2π/3)."""
    spacing, theta, cx, cy = c
    layout = _one_cell(spacing, theta, (cx, cy))
    g = grid_code(torch.tensor([x], dtype=torch.float64), layout)
    assert -0.5 - 1e-12 <= float(g) <= 1 + 1e-12
    a1 = spacing * np.array([math.cos(theta + math.pi / 6), math.sin(theta + math.pi / 6)])
    a2 = spacing * np.array([math.cos(theta + math.pi / 2), math.sin(theta + math.pi / 2)])
    centroid = np.array([cx, cy]) + (a1 + (a1 - a2)) / 3  # triangle (0, a1, a1 − a2)
    g_min = grid_code(torch.tensor(centroid[None]), layout)
    torch.testing.assert_close(
        g_min, torch.full((1, 1), -0.5, dtype=torch.float64), rtol=0, atol=1e-9
    )


def test_layout_modules_orientations_phases():
    prm = GridCellParams(spacings=(1.0, 1.5, 2.25), n_orientations=3, n_phases=40)
    lay = grid_cell_layout(prm, generator=torch.Generator().manual_seed(1))
    assert lay.spacing.shape == (prm.n_cells,) == (3 * 3 * 40,)
    spacing = lay.spacing.reshape(3, 3, 40)
    theta = lay.orientation.reshape(3, 3, 40)
    for m, lam in enumerate(prm.spacings):
        assert (spacing[m] == lam).all()
        # orientations evenly spread by 60°/3 within a module, starting in [0, 20°)
        t = theta[m, :, 0]
        assert 0 <= float(t[0]) < math.pi / 9
        torch.testing.assert_close(t.diff(), torch.full((2,), math.pi / 9, dtype=torch.float64))
        assert (theta[m] == theta[m, :, :1]).all()
    # phases inside the unit cell: c = α a1 + β a2 with α, β ∈ [0, 1)
    th, lam = lay.orientation, lay.spacing
    a1 = torch.stack([torch.cos(th + math.pi / 6), torch.sin(th + math.pi / 6)], -1) * lam[:, None]
    a2 = torch.stack([torch.cos(th + math.pi / 2), torch.sin(th + math.pi / 2)], -1) * lam[:, None]
    basis = torch.stack([a1, a2], -1)  # [N, 2, 2]
    ab = torch.linalg.solve(basis, lay.phase)
    assert ((ab >= -1e-12) & (ab < 1 + 1e-12)).all()
    # same seed, same layout
    again = grid_cell_layout(prm, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.phase, lay.phase)


def test_validation_names_the_argument():
    cells = GridCells(GridCellParams(n_phases=2))
    with pytest.raises(ValueError, match="positions must have shape"):
        cells(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="positions must be floating"):
        cells(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="positions contains NaN"):
        cells(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"layout\.phase"):
        grid_code(
            torch.zeros(1, 2), GridLayout(cells.spacing, cells.orientation, cells.phase[:, :1])
        )
    with pytest.raises(ValueError, match="spacings"):
        GridCellParams(spacings=(1.0, -2.0))
    with pytest.raises(ValueError, match="n_phases"):
        GridCellParams(n_phases=0)


def test_gradcheck_float64_positions():
    cells = GridCells(GridCellParams(n_phases=2), generator=torch.Generator().manual_seed(2))
    x = (torch.randn(3, 2, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(cells, (x,))
