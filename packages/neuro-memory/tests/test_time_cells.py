"""Time cells: log-spaced peaks, scale invariance, Aura's tuning curve, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import TimeCellParams, TimeCells, time_cell_code


def test_intervals_are_log_spaced():
    prm = TimeCellParams(n_cells=7, min_interval=2.0, max_interval=2000.0)
    np.testing.assert_allclose(prm.intervals, np.geomspace(2.0, 2000.0, 7), rtol=1e-14)
    ratios = np.diff(np.log(prm.intervals))
    np.testing.assert_allclose(ratios, math.log(1000.0) / 6, rtol=1e-12)
    assert TimeCellParams(n_cells=1, min_interval=3.0, max_interval=3.0).intervals == (3.0,)


@pytest.mark.parametrize("shape", ["log_gaussian", "gaussian"])
def test_peaks_are_at_the_preferred_intervals(shape):
    """argmax over a fine grid of t lies at τ_j for every cell, and r_j(τ_j) = 1."""
    prm = TimeCellParams(n_cells=6, min_interval=1.0, max_interval=500.0, width=0.2, shape=shape)
    cells = TimeCells(prm).double()
    t = torch.logspace(-1, 3.5, 200_001, dtype=torch.float64)
    r = cells(t)
    peaks = t[r.argmax(0)]
    step = math.log(10) * 4.5 / 200_000  # grid spacing in ln t
    np.testing.assert_allclose(np.log(peaks.numpy()), np.log(prm.intervals), atol=step)
    at_tau = cells(torch.tensor(prm.intervals, dtype=torch.float64))
    torch.testing.assert_close(at_tau.diagonal(), torch.ones(6, dtype=torch.float64))
    # log-spaced peaks: equal steps in ln
    np.testing.assert_allclose(np.diff(np.log(peaks.numpy())), math.log(500) / 5, atol=2 * step)


@settings(max_examples=50, deadline=None)
@given(t=st.floats(1e-3, 1e4), n=st.integers(2, 12), width=st.floats(0.05, 1.0))
def test_log_gaussian_is_scale_invariant(t, n, width):
    """r_{j+1}(ρ t) = r_j(t) for ρ = τ_{j+1}/τ_j."""
    prm = TimeCellParams(n_cells=n, min_interval=1.0, max_interval=100.0, width=width)
    rho = prm.intervals[1] / prm.intervals[0]
    r = TimeCells(prm).double()(torch.tensor([t, rho * t], dtype=torch.float64))
    torch.testing.assert_close(r[1, 1:], r[0, :-1], rtol=1e-9, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(t=st.floats(-10.0, 1e4), width=st.floats(0.05, 1.0))
def test_matches_closed_forms(t, width):
    tau = np.geomspace(1.0, 1000.0, 9)
    tt = torch.tensor([t], dtype=torch.float64)
    ours = time_cell_code(tt, torch.from_numpy(tau), width=width, shape="log_gaussian")[0].numpy()
    expected = np.exp(-((math.log(t) - np.log(tau)) ** 2) / (2 * width**2)) if t > 0 else 0 * tau
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-300)
    # Aura: 15·exp(−(t − τ)² / (2 (w/3)²)) with w = 0.3 τ, without the rate 15
    aura = TimeCells(TimeCellParams(n_cells=9, shape="gaussian")).double()(tt)[0].numpy()
    expected_aura = np.exp(-((t - tau) ** 2) / (2 * (0.3 * tau / 3) ** 2))
    np.testing.assert_allclose(aura, expected_aura, rtol=1e-12, atol=1e-300)


def test_zero_and_negative_elapsed_give_zero_and_finite_gradients():
    t = torch.tensor([-1.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    r = TimeCells(TimeCellParams(n_cells=4, max_interval=10.0))(t)
    assert (r[:2] == 0).all()
    assert (r[2] > 0).any()
    r.sum().backward()
    assert t.grad is not None
    assert torch.isfinite(t.grad).all()
    assert (t.grad[:2] == 0).all()


def test_gradcheck_float64():
    tau = torch.tensor([1.0, 4.0, 16.0], dtype=torch.float64)
    t = torch.tensor([0.7, 3.0, 20.0], dtype=torch.float64, requires_grad=True)
    for shape in ("log_gaussian", "gaussian"):
        assert torch.autograd.gradcheck(
            lambda x, s=shape: time_cell_code(x, tau, width=0.5, shape=s), (t,)
        )


def test_validation_names_the_argument():
    cells = TimeCells(TimeCellParams(n_cells=3, max_interval=10.0))
    with pytest.raises(ValueError, match="elapsed must be floating"):
        cells(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="elapsed contains NaN"):
        cells(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="intervals must have dtype"):
        time_cell_code(
            torch.ones(2), torch.ones(3, dtype=torch.float64), width=0.1, shape="gaussian"
        )
    with pytest.raises(ValueError, match="max_interval"):
        TimeCellParams(min_interval=10.0, max_interval=1.0)
    with pytest.raises(ValueError, match="width"):
        TimeCellParams(width=0.0)
    with pytest.raises(ValueError, match="shape"):
        TimeCellParams(shape="box")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_cells=1"):
        TimeCellParams(n_cells=1)
