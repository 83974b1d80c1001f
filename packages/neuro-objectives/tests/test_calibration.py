import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    PlattScaling,
    calibration_loss,
    confidence_and_correct,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
)


def _np_ece(conf: list[float], correct: list[int], bins: int = 10) -> float:
    """Independent ECE: loop over bins ((m−1)/M, m/M], bin 0 also holding 0."""
    n = len(conf)
    total = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        members = [i for i, c in enumerate(conf) if (lo < c <= hi) or (m == 0 and c == 0.0)]
        if not members:
            continue
        acc = sum(correct[i] for i in members) / len(members)
        cf = sum(conf[i] for i in members) / len(members)
        total += len(members) / n * abs(acc - cf)
    return total


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=40
    )
)
def test_ece_matches_an_independent_loop_and_is_in_unit_interval(
    data: list[tuple[float, bool]],
) -> None:
    conf = torch.tensor([c for c, _ in data], dtype=torch.float64)
    ok = torch.tensor([a for _, a in data])
    got = float(expected_calibration_error(conf, ok))
    assert 0.0 <= got <= 1.0
    want = _np_ece([float(c) for c in conf], [int(a) for _, a in data])
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


def test_ece_extremes_and_mask() -> None:
    conf = torch.tensor([1.0, 1.0, 0.0, 0.0])
    wrong = torch.tensor([False, False, True, True])
    assert float(expected_calibration_error(conf, wrong)) == pytest.approx(1.0)
    assert float(expected_calibration_error(conf, ~wrong)) == pytest.approx(0.0)
    mask = torch.tensor([True, False, True, False])
    assert float(expected_calibration_error(conf, ~wrong, mask=mask)) == pytest.approx(0.0)


def test_soft_binning_tends_to_ece_at_small_temperature() -> None:
    g = torch.Generator().manual_seed(0)
    conf = torch.rand(500, generator=g, dtype=torch.float64)
    # keep away from the bin edges, where soft and hard assignment differ most
    conf = (torch.floor(conf * 10) + 0.1 + 0.8 * torch.rand(500, generator=g)) / 10
    ok = torch.rand(500, generator=g, dtype=torch.float64) < conf**2
    hard = float(expected_calibration_error(conf, ok))
    soft = float(calibration_loss(conf, ok, temperature=1e-5))
    assert soft == pytest.approx(hard, abs=1e-6)
    default = float(calibration_loss(conf, ok))
    assert 0.0 <= default <= 1.0


def test_squared_gap_matches_the_design_formula() -> None:
    g = torch.Generator().manual_seed(1)
    conf = torch.rand(60, generator=g, dtype=torch.float64)
    ok = torch.rand(60, generator=g) < 0.5
    got = float(calibration_loss(conf, ok, method="squared_gap"))
    want = 0.0
    for m in range(10):
        members = [i for i, c in enumerate(conf.tolist()) if m / 10 < c <= (m + 1) / 10]
        if members:
            cf = np.mean([conf[i].item() for i in members])
            acc = np.mean([float(ok[i]) for i in members])
            want += (cf - acc) ** 2
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("method", ["soft_binning", "squared_gap"])
def test_calibration_loss_gradcheck(method: str) -> None:
    # confidences strictly inside bins, so the hard bin assignment cannot flip under the probe
    conf = (torch.arange(12, dtype=torch.float64) % 10 + 0.5) / 10 + 0.01 * torch.rand(12)
    conf.requires_grad_(True)
    ok = torch.arange(12) % 3 == 0
    f = lambda c: calibration_loss(c, ok, method=method, temperature=0.01)  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(f, (conf,))


def test_gradient_descent_on_the_surrogate_calibrates() -> None:
    """Learn one temperature through the soft-binned surrogate: ECE drops."""
    torch.manual_seed(1234)  # the label draw uses the global generator (a stream apart from g)
    g = torch.Generator().manual_seed(0)
    logits = 4.0 * torch.randn(2000, 5, generator=g)
    labels = torch.distributions.Categorical(logits=logits / 4.0).sample()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([log_t], lr=0.05)
    conf0, ok0 = confidence_and_correct(logits, labels)
    before = float(expected_calibration_error(conf0, ok0))
    for _ in range(150):
        opt.zero_grad()
        conf, ok = confidence_and_correct(logits / log_t.exp(), labels)
        calibration_loss(conf, ok, temperature=0.01).backward()
        opt.step()
    conf, ok = confidence_and_correct(logits / log_t.exp(), labels)
    after = float(expected_calibration_error(conf, ok))
    assert after < 0.5 * before, (before, after)


def test_fit_temperature_finds_the_nll_minimum_of_a_grid_search() -> None:
    torch.manual_seed(1234)  # the label draw uses the global generator (a stream apart from g)
    g = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(3000, 7, generator=g, dtype=torch.float64)
    labels = torch.distributions.Categorical(logits=logits / 2.5).sample()
    t = fit_temperature(logits, labels)
    z, y = logits.numpy(), labels.numpy()

    def nll(temp: float) -> float:
        s = z / temp
        s = s - s.max(1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    grid = np.linspace(1.0, 4.0, 601)
    best = float(grid[np.argmin([nll(x) for x in grid])])
    assert t == pytest.approx(best, abs=0.01)
    assert t == pytest.approx(2.5, rel=0.1)


def test_fit_platt_matches_newton_iterations() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(800, generator=g, dtype=torch.float64)
    y = torch.rand(800, generator=g, dtype=torch.float64) < torch.sigmoid(1.7 * s - 0.4)
    fit = fit_platt(s, y)
    # independent: Newton–Raphson for logistic regression in NumPy
    x = np.stack([s.numpy(), np.ones(800)], 1)
    yy = y.numpy().astype(float)
    w = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - yy)
        hess = (x * (p * (1 - p))[:, None]).T @ x
        w -= np.linalg.solve(hess, grad)
    assert fit.a == pytest.approx(w[0], rel=1e-4)
    assert fit.b == pytest.approx(w[1], rel=1e-4, abs=1e-5)
    torch.testing.assert_close(fit(s), torch.sigmoid(fit.a * s + fit.b))
    assert isinstance(fit, PlattScaling)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="confidence"):
        expected_calibration_error(torch.tensor([1.5]), torch.tensor([True]))
    with pytest.raises(ValueError, match="correct"):
        expected_calibration_error(torch.tensor([0.5, 0.5]), torch.tensor([True]))
    with pytest.raises(ValueError, match="correct"):
        calibration_loss(torch.tensor([0.5]), torch.tensor([2]))
    with pytest.raises(ValueError, match="num_bins"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([True]), num_bins=0)
    with pytest.raises(ValueError, match="temperature"):
        calibration_loss(torch.tensor([0.5]), torch.tensor([True]), temperature=0.0)
    with pytest.raises(ValueError, match="method"):
        calibration_loss(torch.tensor([0.5]), torch.tensor([True]), method="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.randn(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="confidence"):
        expected_calibration_error(torch.tensor([float("nan")]), torch.tensor([True]))
