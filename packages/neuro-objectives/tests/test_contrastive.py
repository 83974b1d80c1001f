import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import ContrastivePredictiveCoding, info_nce_terms


def _np_info_nce(
    c: np.ndarray, z: np.ndarray, w: np.ndarray, k: int, all_steps: bool
) -> np.ndarray:
    """Independent loop: −log softmax of the positive among itself and every negative from the
    other sequences (same time step, or any time step)."""
    b, t, _ = c.shape
    out = np.zeros((b, t - k))
    for i in range(b):
        for s in range(t - k):
            pos = c[i, s] @ w @ z[i, s + k]
            scores = [pos]
            for j in range(b):
                if j == i:
                    continue
                steps = range(t - k) if all_steps else [s]
                scores += [c[i, s] @ w @ z[j, u + k] for u in steps]
            arr = np.array(scores)
            mx = arr.max()
            out[i, s] = mx + math.log(np.exp(arr - mx).sum()) - pos
    return out


@pytest.mark.parametrize("negatives", ["same_step", "all_steps"])
@pytest.mark.parametrize("horizon", [1, 3])
def test_info_nce_matches_an_explicit_loop(negatives: str, horizon: int) -> None:
    g = torch.Generator().manual_seed(0)
    c = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    z = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    got = info_nce_terms(c, z, w, horizon=horizon, negatives=negatives)  # type: ignore[arg-type]
    want = _np_info_nce(c.numpy(), z.numpy(), w.numpy(), horizon, negatives == "all_steps")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


@pytest.mark.parametrize("negatives", ["same_step", "all_steps"])
def test_info_nce_gradcheck(negatives: str) -> None:
    c = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    z = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    f = lambda a, b, m: info_nce_terms(a, b, m, negatives=negatives).mean()  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(f, (c, z, w))


def test_a_position_never_scores_against_its_own_sequence() -> None:
    """Changing sequence b anywhere but the anchor's context c_{b,t} and its positive z_{b,t+k}
    leaves the anchor's term unchanged: its own future is never a negative."""
    g = torch.Generator().manual_seed(3)
    c = torch.randn(2, 7, 3, generator=g)
    z = torch.randn(2, 7, 3, generator=g)
    w = torch.randn(3, 3, generator=g)
    base = info_nce_terms(c, z, w, horizon=2, negatives="all_steps")
    t = 2
    z2 = z.clone()
    keep = [t + 2]
    for s in range(7):
        if s not in keep:
            z2[0, s] = torch.randn(3, generator=g) * 10
    c2 = c.clone()
    c2[0, [s for s in range(7) if s != t]] = 5.0
    moved = info_nce_terms(c2, z2, w, horizon=2, negatives="all_steps")
    torch.testing.assert_close(moved[0, t], base[0, t])


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(2, 4),
    t=st.integers(2, 6),
    num=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_sampled_negatives_bound_the_full_loss(b: int, t: int, num: int, seed: int) -> None:
    """0 ≤ loss with a subset of negatives ≤ loss with all of them; with W = 0 it is ln(1 + N)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(b, t, 3, generator=g, dtype=torch.float64)
    z = torch.randn(b, t, 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, 3, generator=g, dtype=torch.float64)
    full = info_nce_terms(c, z, w, negatives="same_step")
    n = min(num, b - 1)
    sub = info_nce_terms(c, z, w, negatives="same_step", num_negatives=n, generator=g)
    assert bool((sub >= 0).all())
    assert bool((sub <= full + 1e-12).all())
    zero = info_nce_terms(
        c, z, torch.zeros(3, 3, dtype=torch.float64), num_negatives=n, generator=g
    )
    torch.testing.assert_close(zero, torch.full_like(zero, math.log(1 + n)))


def test_cpc_learns_a_predictable_future() -> None:
    """z_{t+1} = A c_t + noise: training W drives the loss far below chance ln B."""
    torch.manual_seed(0)
    a = torch.randn(6, 6)
    c = torch.randn(16, 10, 6)
    z = torch.zeros(16, 10, 6)
    z[:, 1:] = c[:, :-1] @ a.T + 0.1 * torch.randn(16, 9, 6)
    cpc = ContrastivePredictiveCoding(6)
    opt = torch.optim.Adam(cpc.parameters(), lr=0.05)
    first = float(cpc(c, z)[0].detach())
    for _ in range(150):
        opt.zero_grad()
        loss, report = cpc(c, z)
        loss.backward()
        opt.step()
    assert first > 0.5 * math.log(16)
    assert float(report["contrastive"]) < 0.3 * math.log(16)
    assert float(report["contrastive/mi_lower_bound"]) > 0.7 * math.log(16)


def test_mask_drops_anchors_whose_future_is_padding() -> None:
    torch.manual_seed(0)
    cpc = ContrastivePredictiveCoding(3).double()
    c = torch.randn(2, 5, 3, dtype=torch.float64)
    z = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    loss, _ = cpc(c, z, mask=mask)
    terms = info_nce_terms(c, z, cpc.weight)
    want = torch.cat([terms[0, :3], terms[1]]).mean()
    torch.testing.assert_close(loss, want)


def test_bad_input_names_the_argument() -> None:
    w = torch.ones(3, 3)
    with pytest.raises(ValueError, match="context"):
        info_nce_terms(torch.ones(1, 4, 3), torch.ones(1, 4, 3), w)
    with pytest.raises(ValueError, match="horizon"):
        info_nce_terms(torch.ones(2, 4, 3), torch.ones(2, 4, 3), w, horizon=4)
    with pytest.raises(ValueError, match="weight"):
        info_nce_terms(torch.ones(2, 4, 3), torch.ones(2, 4, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="num_negatives"):
        info_nce_terms(torch.ones(2, 4, 3), torch.ones(2, 4, 3), w, num_negatives=2)
    with pytest.raises(ValueError, match="targets"):
        info_nce_terms(torch.ones(2, 4, 3), torch.full((2, 4, 3), float("nan")), w)
