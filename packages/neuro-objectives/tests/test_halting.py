import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    HaltingHead,
    deep_supervision_loss,
    efficiency_loss,
    expected_depth,
    geometric_prior,
    halting_distribution,
    halting_kl,
    hard_layer_usage,
    ponder_loss,
)


def _np_halting(lam: list[float]) -> list[float]:
    """Independent: walk the points, halting with λ_n unless forced at the last one."""
    out, alive = [], 1.0
    for n, x in enumerate(lam):
        stop = 1.0 if n == len(lam) - 1 else x
        out.append(alive * stop)
        alive *= 1 - stop
    return out


@settings(max_examples=60, deadline=None)
@given(lam=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=8))
def test_halting_probabilities_sum_to_one_and_match_the_walk(lam: list[float]) -> None:
    p = halting_distribution(torch.tensor(lam, dtype=torch.float64))
    assert bool((p >= 0).all())
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p.numpy(), _np_halting(lam), atol=1e-12)
    depth = float(expected_depth(p))
    assert 1.0 - 1e-12 <= depth <= len(lam) + 1e-12
    assert float(halting_kl(p, 0.3)) >= -1e-12


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), lp=st.floats(0.01, 0.99))
def test_the_prior_hazard_gives_zero_kl(n: int, lp: float) -> None:
    """λ_n = p_G(n) / P(not halted before n) reproduces the prior exactly, so KL = 0."""
    prior = geometric_prior(n, lp, dtype=torch.float64)
    want = [lp * (1 - lp) ** k for k in range(n)]
    np.testing.assert_allclose(prior.numpy(), np.array(want) / sum(want), rtol=1e-12)
    survive = 1.0 - torch.cat([torch.zeros(1, dtype=torch.float64), prior.cumsum(0)[:-1]])
    lam = (prior / survive).clamp(0, 1)
    p = halting_distribution(lam)
    torch.testing.assert_close(p, prior)
    assert float(halting_kl(p, lp)) == pytest.approx(0.0, abs=1e-10)


def test_kl_and_ponder_loss_against_explicit_sums() -> None:
    g = torch.Generator().manual_seed(0)
    lam = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    task = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    loss, report = ponder_loss(task, lam, prior_lambda=0.2, kl_weight=0.5)
    prior = np.array([0.2 * 0.8**k for k in range(5)])
    prior /= prior.sum()
    kls, tasks, depths = [], [], []
    for b in range(3):
        for t in range(4):
            p = np.array(_np_halting(lam[b, t].tolist()))
            kls.append(float(np.sum(p * np.log(p / prior))))
            tasks.append(float(p @ task[b, t].numpy()))
            depths.append(float(p @ np.arange(1, 6)))
    assert float(loss) == pytest.approx(np.mean(tasks) + 0.5 * np.mean(kls), rel=1e-10)
    assert float(report["ponder/kl"]) == pytest.approx(np.mean(kls), rel=1e-10)
    assert float(report["ponder/expected_depth"]) == pytest.approx(np.mean(depths), rel=1e-10)


def test_halting_gradcheck() -> None:
    lam = (0.1 + 0.8 * torch.rand(2, 4, dtype=torch.float64)).requires_grad_(True)
    task = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ponder_loss(b, a, prior_lambda=0.3, kl_weight=0.1)[0], (lam, task)
    )
    assert torch.autograd.gradcheck(lambda a: efficiency_loss(a, depths=[2, 3, 5, 8]), (lam,))


def test_published_hard_mask_has_no_gradient_and_the_soft_one_does() -> None:
    conf = torch.tensor([[0.5, 0.95, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]], requires_grad=True)
    hard = efficiency_loss(conf, mode="hard_mask", depths=[8, 16, 24, 32])
    # first exit above 0.9 at depth 16 for row 0; none for row 1 → the full 32
    assert float(hard) == pytest.approx((16 / 32 + 32 / 32) / 2)
    assert not hard.requires_grad
    with pytest.raises(RuntimeError):
        torch.autograd.grad(hard, conf)
    soft = efficiency_loss(conf, depths=[8, 16, 24, 32])
    (grad,) = torch.autograd.grad(soft, conf)
    assert float(grad[:, :-1].abs().min()) > 0
    torch.testing.assert_close(
        hard_layer_usage(conf, depths=[8, 16, 24, 32]), torch.tensor([16.0, 32.0])
    )


def test_gradient_descent_on_efficiency_halts_early() -> None:
    logits = torch.zeros(6, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(100):
        opt.zero_grad()
        efficiency_loss(torch.sigmoid(logits)).backward()
        opt.step()
    p = halting_distribution(torch.sigmoid(logits.detach()))
    assert float(p[0]) > 0.95
    assert float(expected_depth(p)) < 1.1


def test_mask_and_depths() -> None:
    lam = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([True, False])
    assert float(efficiency_loss(lam, mask=mask)) == pytest.approx(1.0)
    assert float(efficiency_loss(lam)) == pytest.approx((1.0 + 1 / 3) / 2)
    assert math.isclose(float(expected_depth(halting_distribution(lam), [4, 8, 12])[1]), 4.0)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="halt_probs"):
        halting_distribution(torch.tensor([1.5, 0.2]))
    with pytest.raises(ValueError, match="depths"):
        expected_depth(torch.tensor([0.5, 0.5]), depths=[2, 1])
    with pytest.raises(ValueError, match="prior_lambda"):
        halting_kl(torch.tensor([0.5, 0.5]), 0.0)
    with pytest.raises(ValueError, match="per_point_loss"):
        ponder_loss(torch.ones(2), torch.ones(3) * 0.5, prior_lambda=0.2)
    with pytest.raises(ValueError, match="mode"):
        efficiency_loss(torch.ones(3) * 0.5, mode="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        hard_layer_usage(torch.ones(3) * 0.5, threshold=2.0)
    with pytest.raises(ValueError, match="halt_probs"):
        efficiency_loss(torch.tensor([float("nan"), 0.5]))


def test_halting_head_starts_at_the_prior_and_gradchecks() -> None:
    head = HaltingHead(3, 4, init_halt_prob=0.2).double()
    hs = [torch.randn(2, 5, 3, dtype=torch.float64) for _ in range(4)]
    lam = head(hs)
    assert lam.shape == (2, 5, 4)
    torch.testing.assert_close(lam, torch.full_like(lam, 0.2))
    p = halting_distribution(lam)[0, 0]
    torch.testing.assert_close(
        p[:3], torch.tensor([0.2 * 0.8**k for k in range(3)], dtype=torch.float64)
    )
    with torch.no_grad():
        head.weight.normal_()
    w = head.weight
    h0 = hs[0].clone().requires_grad_(True)

    def f(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            w.copy_(weight)
        # λ written out with the weight in the graph: σ(h_n · w_n + b_n)
        lam = torch.stack(
            [torch.sigmoid(h @ weight[i] + head.bias[i]) for i, h in enumerate([x, *hs[1:]])], -1
        )
        return ponder_loss(torch.ones_like(lam), lam, prior_lambda=0.2, kl_weight=1.0)[0]

    weight = w.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (h0, weight))
    torch.testing.assert_close(
        head([h0.detach(), *hs[1:]]),
        torch.stack(
            [torch.sigmoid(h @ w[i] + head.bias[i]) for i, h in enumerate(hs)], -1
        ).detach(),
    )
    with pytest.raises(ValueError, match="hidden"):
        head(hs[:3])


def test_deep_supervision_discounts_exits_by_distance_to_the_top() -> None:
    exits = torch.tensor([2.0, 1.5, 1.2], dtype=torch.float64, requires_grad=True)
    final = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    loss, report = deep_supervision_loss(exits, final, exit_depths=[8, 16, 24], num_layers=32)
    want = 1.0 + 0.9**24 * 2.0 + 0.9**16 * 1.5 + 0.9**8 * 1.2
    assert float(loss.detach()) == pytest.approx(want, rel=1e-12)
    assert float(report["deep_supervision/exit16"]) == 1.5
    assert torch.autograd.gradcheck(
        lambda e, f: deep_supervision_loss(e, f, exit_depths=[8, 16, 24], num_layers=32)[0],
        (exits, final),
    )
    with pytest.raises(ValueError, match="exit_depths"):
        deep_supervision_loss(exits, final, exit_depths=[8, 16, 32], num_layers=32)
    with pytest.raises(ValueError, match="gamma"):
        deep_supervision_loss(exits, final, exit_depths=[8, 16, 24], num_layers=32, gamma=0.0)
