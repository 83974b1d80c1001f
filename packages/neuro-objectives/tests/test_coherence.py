import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_objectives import CoherenceLoss, coherence_loss, mean_pairwise_cosine


def _np_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_cosine_mode_matches_numpy_with_a_shared_goal() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 4, generator=g, dtype=torch.float64)
    goal = torch.randn(4, generator=g, dtype=torch.float64)
    want = -np.mean([_np_cos(h[i].numpy(), goal.numpy()) for i in range(5)])
    assert float(coherence_loss(h, goal)) == pytest.approx(want, rel=1e-12)


def test_contrastive_mode_matches_an_explicit_softmax() -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.randn(4, 3, generator=g, dtype=torch.float64)
    goal = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = float(coherence_loss(h, goal, mode="contrastive", temperature=0.5))
    total = 0.0
    for i in range(4):
        s = [_np_cos(h[i].numpy(), goal[j].numpy()) / 0.5 for j in range(4)]
        total += -(s[i] - math.log(sum(math.exp(x) for x in s)))
    assert got == pytest.approx(total / 4, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(0.01, 100), seed=st.integers(0, 1000))
def test_cosine_is_bounded_and_scale_invariant(scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 4, generator=g, dtype=torch.float64)
    goal = torch.randn(3, 4, generator=g, dtype=torch.float64)
    loss = coherence_loss(h, goal)
    assert -1 - 1e-12 <= float(loss) <= 1 + 1e-12
    torch.testing.assert_close(coherence_loss(scale * h, goal), loss)
    c = coherence_loss(h, goal, mode="contrastive")
    assert float(c) >= 0
    torch.testing.assert_close(coherence_loss(scale * h, goal, mode="contrastive"), c)


def test_gradcheck() -> None:
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    goal = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: coherence_loss(x, goal), (h,))
    assert torch.autograd.gradcheck(lambda x: coherence_loss(x, goal, mode="contrastive"), (h,))


def _train(loss_kind: str, steps: int = 40) -> tuple[float, float]:
    """An encoder of 16 distinct inputs trained on coherence alone; returns the mean pairwise
    cosine of its outputs before and after."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8))
    x = torch.randn(16, 8)
    goals = torch.randn(16, 8)  # per-sample external goals (e.g. embeddings of the targets)
    if loss_kind == "learned":
        loss_fn = CoherenceLoss("learned", d_model=8)
    else:
        loss_fn = CoherenceLoss("external", mode="contrastive")
    opt = torch.optim.Adam([*enc.parameters(), *loss_fn.parameters()], lr=0.05)
    with torch.no_grad():
        before = float(mean_pairwise_cosine(enc(x)))
    for _ in range(steps):
        opt.zero_grad()
        h = enc(x)
        loss, _ = loss_fn(h) if loss_kind == "learned" else loss_fn(h, goals)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(mean_pairwise_cosine(enc(x)))
    return before, after


def test_learned_goal_collapses_and_per_sample_contrastive_goals_do_not() -> None:
    """With a learned goal the 16 different inputs end up with (almost) the same direction;
    with per-sample external goals in the contrastive form they stay apart."""
    before, after = _train("learned")
    assert abs(before) < 0.6
    assert after > 0.98, after
    _, after_c = _train("contrastive")
    assert after_c < 0.3, after_c


def test_a_learned_goal_must_be_opted_into() -> None:
    h = torch.randn(3, 4)
    goal = torch.randn(4, requires_grad=True)
    with pytest.raises(ValueError, match="collapse"):
        coherence_loss(h, goal)
    coherence_loss(h, goal, allow_learned_goal=True)


def test_module_reports_and_detaches_external_goals() -> None:
    h = torch.randn(3, 4, requires_grad=True)
    goal = torch.randn(3, 4, requires_grad=True)
    loss, report = CoherenceLoss()(h, goal)
    loss.backward()
    assert goal.grad is None
    assert float(report["coherence/cos"]) == pytest.approx(-float(loss.detach()))
    assert set(report) == {"coherence", "coherence/cos", "coherence/hidden_similarity"}


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="goal"):
        coherence_loss(torch.ones(3, 4), torch.ones(5))
    with pytest.raises(ValueError, match="contrastive"):
        coherence_loss(torch.ones(3, 4), torch.ones(4), mode="contrastive")
    with pytest.raises(ValueError, match="hidden"):
        coherence_loss(torch.full((2, 3), float("nan")), torch.ones(3))
    with pytest.raises(ValueError, match="goal"):
        CoherenceLoss()(torch.ones(2, 3))
    with pytest.raises(ValueError, match="d_model"):
        CoherenceLoss("learned")
    with pytest.raises(ValueError, match="goal_source"):
        CoherenceLoss("prompt")  # type: ignore[arg-type]
