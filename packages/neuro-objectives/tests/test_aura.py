import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import HippocampalLoss, aura_loss


def _np_aura(
    z: np.ndarray, y: np.ndarray, act: np.ndarray, eps: float, lh: float, la: float
) -> float:
    """Independent: smoothed CE as (1 − ε) NLL + ε mean_v(−log p_v), minus λ_H·entropy, plus the
    activity penalty; rows with target −100 dropped."""
    keep = y != -100
    z, y = z[keep], y[keep]
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    nll = -logp[np.arange(len(y)), y]
    smooth = -logp.mean(1)
    ce = ((1 - eps) * nll + eps * smooth).mean()
    ent = -(np.exp(logp) * logp).sum(1).mean()
    return float(ce - lh * ent + la * (act.mean() - 0.03) ** 2)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), eps=st.sampled_from([0.0, 0.1, 0.2]))
def test_matches_an_independent_numpy_formula(seed: int, eps: float) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (2, 5), generator=g)
    y[0, 1] = -100
    act = torch.rand(2, 5, 11, generator=g, dtype=torch.float64) * 0.1
    loss, report = aura_loss(z, y, act, label_smoothing=eps)
    want = _np_aura(z.reshape(-1, 7).numpy(), y.reshape(-1).numpy(), act.numpy(), eps, 0.05, 0.02)
    assert float(loss) == pytest.approx(want, rel=1e-10)
    keep = y.reshape(-1) != -100
    nll = torch.nn.functional.cross_entropy(z.reshape(-1, 7)[keep], y.reshape(-1)[keep])
    assert float(report["aura/nll"]) == pytest.approx(float(nll), rel=1e-12)
    assert float(report["aura/entropy"]) <= math.log(7) + 1e-12


def test_gradcheck() -> None:
    z = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (3, 4))
    a = torch.rand(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda zz, aa: aura_loss(zz, y, aa)[0], (z, a))


def test_smoothing_floor_of_the_published_ppl() -> None:
    """A perfect one-hot predictor still scores CE_ε = −(1−ε) log(1−ε+ε/V) − ε(V−1)/V log(ε/V)
    at the smoothed optimum: exp of it is the ~3.9 "perplexity" floor for ε = 0.1, V = 32k."""
    v, eps = 32000, 0.1
    q = torch.full((1, v), eps / v, dtype=torch.float64)
    q[0, 0] += 1 - eps
    _, report = aura_loss(q.log(), torch.tensor([0]), entropy_weight=0.0)
    want = -(1 - eps + eps / v) * math.log(1 - eps + eps / v) - (v - 1) * (eps / v) * math.log(
        eps / v
    )
    assert float(report["aura/ce_smoothed"]) == pytest.approx(want, rel=1e-9)
    assert 3.8 < math.exp(want) < 4.0
    assert float(report["aura/nll"]) < 0.11  # the real NLL is far lower


def test_module_uses_the_published_defaults() -> None:
    m = HippocampalLoss()
    assert (m.label_smoothing, m.entropy_weight, m.activity_weight, m.target_activity) == (
        0.1, 0.05, 0.02, 0.03,
    )  # fmt: skip
    z = torch.randn(2, 3, 4)
    y = torch.randint(0, 4, (2, 3))
    torch.testing.assert_close(m(z, y)[0], aura_loss(z, y)[0])


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="targets"):
        aura_loss(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        aura_loss(torch.randn(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="label_smoothing"):
        aura_loss(torch.randn(2, 4), torch.tensor([0, 1]), label_smoothing=1.0)
    with pytest.raises(ValueError, match="place_activity"):
        aura_loss(torch.randn(2, 4), torch.tensor([0, 1]), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="logits"):
        aura_loss(torch.full((2, 4), float("inf")), torch.tensor([0, 1]))
