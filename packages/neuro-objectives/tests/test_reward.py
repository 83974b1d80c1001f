import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    PUBLISHED_REWARD_WEIGHTS,
    RewardWeights,
    brain_inspired_reward,
    init_baseline,
    reinforce_loss,
    sequence_log_probs,
    update_baseline,
)


def _inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "predictions": torch.randn(3, 4, 5, generator=g, dtype=torch.float64),
        "actuals": torch.randn(3, 4, 5, generator=g, dtype=torch.float64),
        "surprise": torch.tensor([1.0, 2.5, 6.0], dtype=torch.float64),
        "surprise_band": (2.0, 5.0),
        "layers_used": torch.tensor([4.0, 8.0, 2.0], dtype=torch.float64),
        "num_layers": 8,
        "hidden": torch.randn(3, 5, generator=g, dtype=torch.float64),
        "goal": torch.randn(3, 5, generator=g, dtype=torch.float64),
        "tokens": [[1, 2, 3, 1, 2, 3, 1], [4, 4, 4, 4], [1, 2, 3, 4, 5]],
    }


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_reward_matches_the_published_weighted_sum() -> None:
    kw = _inputs()
    ctx = [[1, 2], [9, 9], [2, 3, 4]]
    reward, comp = brain_inspired_reward(**kw, context_tokens=ctx)
    p, a = kw["predictions"].numpy(), kw["actuals"].numpy()
    for i in range(3):
        pred = np.mean([_cos(p[i, t], a[i, t]) for t in range(4)])
        ok = 1.0 if 2.0 <= kw["surprise"][i] <= 5.0 else 0.0
        eff = 1 - float(kw["layers_used"][i]) / 8
        coh = _cos(kw["hidden"][i].numpy(), kw["goal"][i].numpy())
        toks = kw["tokens"][i]
        bigrams = [tuple(toks[j : j + 2]) for j in range(len(toks) - 1)]
        ctx_bi = {tuple(ctx[i][j : j + 2]) for j in range(len(ctx[i]) - 1)}
        nov = sum(b not in ctx_bi for b in bigrams) / len(bigrams)
        tri = [tuple(toks[j : j + 3]) for j in range(len(toks) - 2)]
        rep = 1 - len(set(tri)) / len(tri)
        want = 0.25 * pred + 0.15 * ok + 0.15 * eff + 0.20 * coh + 0.15 * nov - 0.10 * rep
        assert float(reward[i]) == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert float(comp["novelty"][i]) == pytest.approx(nov)
        assert float(comp["repetition"][i]) == pytest.approx(rep)
    assert RewardWeights() == PUBLISHED_REWARD_WEIGHTS


def test_without_context_novelty_is_the_distinct_bigram_ratio() -> None:
    _, comp = brain_inspired_reward(**_inputs())
    np.testing.assert_allclose(comp["novelty"].numpy(), [3 / 6, 1 / 3, 1.0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000))
def test_reward_is_bounded_by_its_weights(seed: int) -> None:
    """Each component lies in its range, so r ∈ [−0.25 − 0.20 − 0.10, 1]."""
    reward, comp = brain_inspired_reward(**_inputs(seed))
    assert bool((reward <= 1.0 + 1e-12).all())
    assert bool((reward >= -0.55 - 1e-12).all())
    for name in ("surprise", "efficiency", "novelty", "repetition"):
        assert bool(((comp[name] >= 0) & (comp[name] <= 1)).all()), name


def test_reinforce_gradient_is_the_advantage() -> None:
    lp = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([1.0, 0.0, 2.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    loss, _ = reinforce_loss(lp, r, mask=mask)
    (grad,) = torch.autograd.grad(loss, lp)
    b = np.array([(r.sum() - r[i]).item() / 3 for i in range(4)])
    want = -((r.numpy() - b)[:, None] * mask.numpy()) / 4
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda x: reinforce_loss(x, r, baseline=0.5)[0], (lp,))


@settings(max_examples=30, deadline=None)
@given(rewards=st.lists(st.floats(-5, 5), min_size=2, max_size=8))
def test_leave_one_out_advantages_sum_to_zero(rewards: list[float]) -> None:
    """Σ_i (r_i − mean_{j≠i} r_j) = 0: with equal log-probabilities the loss is 0."""
    r = torch.tensor(rewards, dtype=torch.float64)
    lp = torch.full((len(rewards), 2), -0.7, dtype=torch.float64)
    loss, _ = reinforce_loss(lp, r)
    assert abs(float(loss)) < 1e-9


def test_reinforce_learns_a_bandit() -> None:
    """Arm 2 pays 1, the others 0: REINFORCE puts most of the probability on arm 2."""
    torch.manual_seed(0)
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        dist = torch.distributions.Categorical(logits=logits.expand(16, 1, 4))
        a = dist.sample()  # [16, 1]
        r = (a[:, 0] == 2).double()
        loss, _ = reinforce_loss(sequence_log_probs(logits.expand(16, 1, 4), a), r.float())
        loss.backward()
        opt.step()
    assert float(logits.detach().softmax(-1)[0, 0, 2]) > 0.9


def test_baseline_state_is_an_ema() -> None:
    s = init_baseline()
    s = update_baseline(s, torch.tensor([1.0, 3.0]))
    assert float(s.value) == pytest.approx(2.0)
    s = update_baseline(s, torch.tensor([0.0]), decay=0.5)
    assert float(s.value) == pytest.approx(1.0)
    lp = torch.zeros(2, 1, requires_grad=True)
    loss, _ = reinforce_loss(lp, torch.tensor([1.0, 2.0]), baseline=s.value.float())
    (grad,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(grad, torch.tensor([[0.0], [-0.5]]))
    assert math.isfinite(float(loss.detach()))


def test_bad_input_names_the_argument() -> None:
    kw = _inputs()
    with pytest.raises(ValueError, match="surprise_band"):
        brain_inspired_reward(**{**kw, "surprise_band": (3.0, 1.0)})
    with pytest.raises(ValueError, match="layers_used"):
        brain_inspired_reward(**{**kw, "layers_used": torch.tensor([1.0, 9.0, 2.0])})
    with pytest.raises(ValueError, match="tokens"):
        brain_inspired_reward(**{**kw, "tokens": [[1, 2]]})
    with pytest.raises(ValueError, match="actuals"):
        brain_inspired_reward(**{**kw, "actuals": torch.ones(3, 4, 4)})
    with pytest.raises(ValueError, match=r"weights\.novelty"):
        RewardWeights(novelty=-1.0)
    with pytest.raises(ValueError, match="rewards"):
        reinforce_loss(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="baseline"):
        reinforce_loss(torch.zeros(2, 3), torch.zeros(2), baseline="median")  # type: ignore[arg-type]
