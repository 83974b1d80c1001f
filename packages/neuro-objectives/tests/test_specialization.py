import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    column_attention_mass,
    js_divergence,
    mean_pairwise_js,
    specialization_loss,
    specialization_loss_from_mass,
)


def _np_js(p: np.ndarray, q: np.ndarray) -> float:
    """JS with scipy's convention written out: ½ Σ p ln(p/m) + ½ Σ q ln(q/m), 0 ln 0 = 0."""
    m = 0.5 * (p + q)
    total = 0.0
    for a, mm in ((p, m), (q, m)):
        for ai, mi in zip(a, mm):
            if ai > 0:
                total += 0.5 * ai * math.log(ai / mi)
    return total


def _dirichlet(shape: tuple[int, ...], seed: int, alpha: float = 1.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.dirichlet([alpha] * shape[-1], size=shape[:-1]))


@settings(max_examples=60, deadline=None)
@given(
    s=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    alpha=st.sampled_from([0.05, 0.5, 1.0, 5.0]),
)
def test_js_is_bounded_symmetric_and_matches_numpy(s: int, seed: int, alpha: float) -> None:
    pq = _dirichlet((2, s), seed, alpha)
    p, q = pq[0], pq[1]
    got = float(js_divergence(p, q))
    assert -1e-12 <= got <= math.log(2) + 1e-12
    assert math.isclose(got, float(js_divergence(q, p)), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(got, _np_js(p.numpy(), q.numpy()), rel_tol=1e-9, abs_tol=1e-12)
    assert float(js_divergence(p, p)) == pytest.approx(0.0, abs=1e-12)


def test_js_of_disjoint_supports_is_ln2() -> None:
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 0.0, 0.3, 0.7], dtype=torch.float64)
    assert float(js_divergence(p, q)) == pytest.approx(math.log(2), abs=1e-12)


def test_key_marginal_and_per_query_match_explicit_loops() -> None:
    probs = _dirichlet((2, 3, 4, 5), seed=0)  # [B, C, T, S]
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.bool)
    got_marg = specialization_loss(probs, query_mask=mask)
    got_q = specialization_loss(probs, reduction="per_query", query_mask=mask)
    pn, mn = probs.numpy(), mask.numpy()
    marg = [pn[:, c][mn].mean(0) for c in range(3)]  # [S] per column over valid (b, t)
    pairs = [(0, 1), (0, 2), (1, 2)]
    want_marg = -np.mean([_np_js(marg[i], marg[j]) for i, j in pairs])
    per = [
        np.mean([_np_js(pn[b, i, t], pn[b, j, t]) for i, j in pairs])
        for b in range(2)
        for t in range(4)
        if mn[b, t]
    ]
    assert float(got_marg) == pytest.approx(want_marg, rel=1e-9)
    assert float(got_q) == pytest.approx(-np.mean(per), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(c=st.integers(2, 4), s=st.integers(2, 6), seed=st.integers(0, 1000))
def test_specialization_is_in_minus_ln2_zero_and_permutation_invariant(
    c: int, s: int, seed: int
) -> None:
    mass = _dirichlet((3, c, s), seed, 0.3) * 7.0  # unnormalized mass
    loss = specialization_loss_from_mass(mass)
    assert -math.log(2) - 1e-12 <= float(loss) <= 1e-12
    perm = torch.randperm(c, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(specialization_loss_from_mass(mass[:, perm]), loss)
    # identical columns give 0 (no specialization)
    same = mass[:, :1].expand(3, c, s)
    assert float(specialization_loss_from_mass(same)) == pytest.approx(0.0, abs=1e-12)


def test_specialization_gradcheck() -> None:
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for reduction in ("key_marginal", "per_query"):
        f = lambda z, r=reduction: specialization_loss(z.softmax(-1), reduction=r)
        assert torch.autograd.gradcheck(f, (logits,))
    mass = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: specialization_loss_from_mass(x + 0.1), (mass,))


def _reference_mass(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Materialize every head's causal T×T attention, average within columns and over queries."""
    b, t, h, d = q.shape
    c = k.shape[2]
    kk = k.repeat_interleave(h // c, dim=2)  # [B, T, H, D]
    logits = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(d)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    probs = logits.masked_fill(~causal, float("-inf")).softmax(-1)  # [B, H, T, S]
    w = torch.ones(b, t, dtype=q.dtype) if mask is None else mask.to(q.dtype)
    per_col = probs.reshape(b, c, h // c, t, t).mean(2)  # [B, C, T, S]
    return (per_col * w[:, None, :, None]).sum(2) / w.sum(1)[:, None, None]


@pytest.mark.parametrize("use_mask", [False, True])
def test_column_attention_mass_matches_the_materialized_reference(use_mask: bool) -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 11, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 11, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 11, generator=g) > 0.3 if use_mask else None
    got = column_attention_mass(q, k, block_size=4, query_mask=mask)
    want = _reference_mass(q, k, mask)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 2, dtype=torch.float64))
    up = torch.randn(got.shape, generator=g, dtype=torch.float64)
    gq, gk = torch.autograd.grad((got * up).sum(), (q, k))
    rq, rk = torch.autograd.grad((want * up).sum(), (q, k))
    torch.testing.assert_close(gq, rq)
    torch.testing.assert_close(gk, rk)


def test_column_attention_mass_gradcheck() -> None:
    q = torch.randn(1, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    f = lambda a, b: specialization_loss_from_mass(column_attention_mass(a, b, block_size=2)[0])
    assert torch.autograd.gradcheck(f, (q, k))


def test_mean_pairwise_js_pairs() -> None:
    d = _dirichlet((4, 3), seed=5)
    want = np.mean([_np_js(d[i].numpy(), d[j].numpy()) for i in range(4) for j in range(i + 1, 4)])
    assert float(mean_pairwise_js(d)) == pytest.approx(want, rel=1e-9)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="column_probs"):
        specialization_loss(torch.ones(2, 3, 4, 5))  # rows do not sum to 1
    with pytest.raises(ValueError, match="column_probs"):
        specialization_loss(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        specialization_loss(torch.full((1, 2, 1, 2), 0.5), reduction="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mass"):
        specialization_loss_from_mass(-torch.ones(2, 3))
    with pytest.raises(ValueError, match="dists"):
        mean_pairwise_js(torch.ones(1, 3))
    with pytest.raises(ValueError, match="multiple"):
        column_attention_mass(torch.ones(1, 4, 3, 2), torch.ones(1, 4, 2, 2))
    with pytest.raises(ValueError, match="query_mask"):
        column_attention_mass(
            torch.ones(1, 4, 2, 2), torch.ones(1, 4, 2, 2), query_mask=torch.ones(4, 1)
        )


def test_value_checks_follow_the_finite_check_switch() -> None:
    """The distribution checks read the data, so they are skipped with the NaN checks."""
    from neuro_core.validation import finite_checks

    bad = torch.full((1, 2, 1, 2), 0.7)  # rows sum to 1.4
    with pytest.raises(ValueError, match="column_probs"):
        specialization_loss(bad)
    with finite_checks(False):
        specialization_loss(bad)
