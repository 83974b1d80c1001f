"""Theta-gamma encoding: exact phases at long positions, incremental == full, rank, published flaws."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import (
    ThetaGammaEncoding,
    ThetaGammaParams,
    published_theta_gamma_encoding,
    theta_gamma_encoding,
)


def _exact_row(p: int, periods: tuple[float, ...], g: int) -> np.ndarray:
    """Independent reference: the phase fraction in exact rational arithmetic (each period is an
    exact binary fraction), then float64 trigonometry on a phase already in [0, 2π)."""
    sin_t, cos_t, sin_g, cos_g = [], [], [], []
    for period in periods:
        t = Fraction(period)
        theta = 2 * math.pi * float((Fraction(p) / t) % 1)
        gamma = 2 * math.pi * float((Fraction(p * g) / t) % 1)
        m = 0.5 * (1 + math.cos(theta))
        sin_t.append(math.sin(theta))
        cos_t.append(math.cos(theta))
        sin_g.append(m * math.sin(gamma))
        cos_g.append(m * math.cos(gamma))
    return np.array(sin_t + cos_t + sin_g + cos_g)


def test_periods_are_geometric():
    prm = ThetaGammaParams(dim=24, min_period=10.0, max_period=1e5)
    np.testing.assert_allclose(prm.periods, np.geomspace(10.0, 1e5, 6), rtol=1e-13)
    default = ThetaGammaParams(dim=8).periods
    np.testing.assert_allclose(default, [20.0, 2 * math.pi * 1e4], rtol=1e-15)


@pytest.mark.parametrize("p", [0, 1, 999_999, 10**6, 10**6 + 7, 123_456_789])
def test_exact_at_long_positions_in_float32(p):
    prm = ThetaGammaParams(dim=32)
    got = ThetaGammaEncoding(prm)(torch.tensor([p]))[0]
    assert got.dtype == torch.float32
    ref = _exact_row(p, prm.periods, 5)
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=0, atol=2e-7)


def test_naive_float32_phases_lose_precision_at_one_million():
    """The exactness test can fail: phases computed as float32 p·2π/T are off by ~1e-2."""
    prm = ThetaGammaParams(dim=32)
    p = 10**6
    period = torch.tensor(prm.periods, dtype=torch.float32)
    naive = torch.sin(torch.tensor(float(p)) * (2 * math.pi / period))
    ref = _exact_row(p, prm.periods, 5)[:8]
    assert np.abs(naive.double().numpy() - ref).max() > 1e-3


@settings(max_examples=60, deadline=None)
@given(p=st.integers(-(2**50), 2**50), dim=st.sampled_from([4, 8, 20]))
def test_matches_exact_reference_and_unit_circles(p, dim):
    prm = ThetaGammaParams(dim=dim, min_period=7.5, max_period=3e4)
    got = theta_gamma_encoding(
        torch.tensor([p]), prm.periods, gamma_per_theta=5, dtype=torch.float64
    )[0].numpy()
    np.testing.assert_allclose(got, _exact_row(p, prm.periods, 5), rtol=0, atol=1e-12)
    n = dim // 4
    s, c, gs, gc = got[:n], got[n : 2 * n], got[2 * n : 3 * n], got[3 * n :]
    np.testing.assert_allclose(s**2 + c**2, 1.0, atol=1e-12)
    np.testing.assert_allclose(gs**2 + gc**2, ((1 + c) / 2) ** 2, atol=1e-12)


def test_one_position_equals_its_row_of_the_full_sequence():
    """Generation encodes position p alone; it must be row p of the full encoding, bit for bit."""
    enc = ThetaGammaEncoding(ThetaGammaParams(dim=16))
    full = enc(torch.arange(300))
    for p in range(300):
        assert torch.equal(enc(torch.tensor([p]))[0], full[p])
    # batched with per-sequence offsets (a KV cache continuing at different positions)
    offsets = torch.tensor([[0], [37], [10**6]])
    batched = enc(offsets + torch.arange(5))
    for b, off in enumerate(offsets[:, 0].tolist()):
        assert torch.equal(batched[b], enc(torch.arange(off, off + 5)))


def test_multiscale_is_full_rank_published_is_rank_eight():
    d, length = 32, 512
    # periods 20 … 500 tokens: every band completes a cycle within the window
    prm = ThetaGammaParams(dim=d, max_period=500.0)
    ours = ThetaGammaEncoding(prm)(torch.arange(length), torch.float64)
    sv_ours = torch.linalg.svdvals(ours)
    assert sv_ours[-1] > 1e-2 * sv_ours[0]
    pub = ThetaGammaEncoding(
        ThetaGammaParams(dim=d, variant="published", max_seq_len=length),
        generator=torch.Generator().manual_seed(0),
    ).double()
    pe = pub(torch.arange(length)).detach()
    # span{sin, cos}(kφ), k ∈ {1, 4, 5, 6}: at most 8 directions (float32 φ: tolerance 1e-4)
    sv = torch.linalg.svdvals(pe)
    assert (sv[8:] < 1e-4 * sv[0]).all()


def test_published_matches_aura_formula_and_aliases_last_position_to_first():
    d, length = 12, 64
    pub = ThetaGammaEncoding(
        ThetaGammaParams(dim=d, variant="published", max_seq_len=length),
        generator=torch.Generator().manual_seed(3),
    )
    a = pub.theta_offset.detach().double().numpy()
    b = pub.gamma_offset.detach().double().numpy()
    p = np.arange(2 * length)
    phi = 2 * np.pi * p[:, None] / (length - 1)
    ref = np.sin(phi + a) + 0.5 * 0.5 * (np.cos(phi + a) + 1) * np.sin(5 * phi + b)
    got = pub(torch.arange(2 * length)).detach()
    np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-5)
    # position L−1 (the last of a full context) is encoded as position 0; p + (L−1) as p
    torch.testing.assert_close(got[length - 1], got[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[length + 4], got[5], atol=1e-5, rtol=0)
    ours = ThetaGammaEncoding(ThetaGammaParams(dim=d))(torch.arange(2 * length))
    assert (ours[length - 1] - ours[0]).abs().max() > 0.1


def test_neighbouring_positions_are_resolved():
    """Mean distance between encodings of p and p+1, relative to the encoding norm: ours resolves
    adjacent tokens; the published phase moves 2π/(L−1) per token."""
    d, length = 32, 512
    ours = ThetaGammaEncoding(ThetaGammaParams(dim=d))(torch.arange(length))
    pub = ThetaGammaEncoding(
        ThetaGammaParams(dim=d, variant="published", max_seq_len=length),
        generator=torch.Generator().manual_seed(0),
    )(torch.arange(length)).detach()

    def step(x: torch.Tensor) -> float:
        return float((x[1:] - x[:-1]).norm(dim=-1).mean() / x.norm(dim=-1).mean())

    assert step(ours) > 10 * step(pub)


def test_dtypes_and_gradients_of_published_parameters():
    enc = ThetaGammaEncoding(ThetaGammaParams(dim=8))
    assert enc(torch.arange(3), torch.bfloat16).dtype == torch.bfloat16
    assert enc(torch.arange(3, dtype=torch.int32)).dtype == torch.float32
    assert list(enc.parameters()) == []
    pub = ThetaGammaEncoding(ThetaGammaParams(dim=6, variant="published", max_seq_len=16)).double()
    assert torch.autograd.gradcheck(
        lambda a, b, amp: published_theta_gamma_encoding(
            torch.arange(5), a, b, amp, max_seq_len=16
        ),
        (pub.theta_offset, pub.gamma_offset, pub.amplitude),
    )


def test_validation_names_the_argument():
    enc = ThetaGammaEncoding(ThetaGammaParams(dim=8))
    with pytest.raises(ValueError, match="positions must be an integer tensor"):
        enc(torch.arange(3).float())
    with pytest.raises(ValueError, match=r"positions must be a torch\.Tensor"):
        enc([0, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype must be floating"):
        enc(torch.arange(3), torch.int64)
    with pytest.raises(ValueError, match="multiple of 4"):
        ThetaGammaParams(dim=6)
    with pytest.raises(ValueError, match="max_seq_len is used only"):
        ThetaGammaParams(dim=8, max_seq_len=64)
    with pytest.raises(ValueError, match="min_period and max_period are used only"):
        ThetaGammaParams(dim=8, variant="published", max_seq_len=64, min_period=4.0)
    with pytest.raises(ValueError, match="max_seq_len must be an int"):
        ThetaGammaParams(dim=8, variant="published")
    with pytest.raises(ValueError, match="max_period must be"):
        ThetaGammaParams(dim=8, min_period=100.0, max_period=10.0)
    with pytest.raises(ValueError, match="gamma_per_theta"):
        ThetaGammaParams(dim=8, gamma_per_theta=0.0)
    pub = ThetaGammaEncoding(ThetaGammaParams(dim=8, variant="published", max_seq_len=16))
    with pytest.raises(ValueError, match="dtype must be None or"):
        pub(torch.arange(3), torch.float64)
    with pytest.raises(ValueError, match="gamma_offset must have shape"):
        published_theta_gamma_encoding(
            torch.arange(3), torch.zeros(8), torch.zeros(7), torch.ones(8), max_seq_len=16
        )
