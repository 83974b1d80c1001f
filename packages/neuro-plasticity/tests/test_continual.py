import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_plasticity.continual import (
    EWC,
    Metaplastic,
    ReplayBuffer,
    SleepConfig,
    SynapticIntelligence,
    diagonal_fisher,
    laborieux_modulation,
    prune_weights,
    sleep,
)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _data(seed: int = 0, n: int = 12):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(
        0, 3, (n,), generator=g
    )


def test_fisher_matches_per_sample_loop() -> None:
    model = _model()
    x, y = _data()
    fisher = diagonal_fisher(model, [(x[:5], y[:5]), (x[5:], y[5:])])
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(y)):
        model.zero_grad()
        F.log_softmax(model(x[i : i + 1]), -1)[0, y[i]].backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad.pow(2) / len(y)
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])


def test_ewc_penalty_gradient_is_fisher_times_displacement() -> None:
    model = _model()
    x, y = _data()
    ewc = EWC(model, lam=1.0)
    fisher = ewc.update_fisher([(x, y)])
    ewc.consolidate()
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.zero_grad()
    ewc.penalty().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, fisher[n] * (p.detach() - anchor[n]))


def test_ewc_penalty_is_in_the_training_loss() -> None:
    model = _model()
    x, y = _data()
    ewc = EWC(model, lam=3.0)
    ewc.update_fisher([(x, y)])
    ewc.consolidate()
    with torch.no_grad():
        model[0].weight.add_(0.5)
    task = F.cross_entropy(model(x), y)
    total, terms = ewc.augment(task)
    assert float(terms["ewc"]) > 0
    torch.testing.assert_close(total, task + ewc.penalty())
    # the optimised gradient differs from the task gradient by exactly λ F (θ − θ*)
    g_total = torch.autograd.grad(total, model[0].weight)[0]
    g_task = torch.autograd.grad(F.cross_entropy(model(x), y), model[0].weight)[0]
    theta_star = ewc.anchors[0][0]["0.weight"]
    f = ewc.anchors[0][1]["0.weight"]
    torch.testing.assert_close(g_total - g_task, 3.0 * f * (model[0].weight.detach() - theta_star))


def test_ewc_pulls_parameters_back_to_the_anchor() -> None:
    """Training only on the penalty returns the parameters with nonzero Fisher to θ*."""
    model = _model()
    x, y = _data()
    ewc = EWC(model, lam=50.0)
    ewc.update_fisher([(x, y)])
    ewc.consolidate()
    anchor = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2)
    before = sum(float((p - a).abs().sum().detach()) for p, a in zip(model.parameters(), anchor))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        ewc.penalty().backward()
        opt.step()
    after = sum(float((p - a).abs().sum().detach()) for p, a in zip(model.parameters(), anchor))
    assert after < 0.5 * before


def test_online_ewc_accumulates_fisher() -> None:
    model = _model()
    x, y = _data()
    ewc = EWC(model, lam=1.0, mode="online", gamma=0.5)
    f1 = ewc.update_fisher([(x, y)])
    ewc.consolidate()
    f2 = ewc.update_fisher([(x[:6], y[:6])])
    ewc.consolidate()
    assert len(ewc.anchors) == 1
    for n in f1:
        torch.testing.assert_close(ewc.anchors[0][1][n], 0.5 * f1[n] + f2[n])


def test_ewc_bad_input() -> None:
    ewc = EWC(_model(), lam=1.0)
    with pytest.raises(ValueError, match="consolidate: no Fisher estimate"):
        ewc.consolidate()
    with pytest.raises(ValueError, match="lam"):
        EWC(_model(), lam=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        EWC(_model(), lam=1.0, mode="online", gamma=0.0)
    assert float(ewc.penalty()) == 0.0


def test_si_path_integral_matches_sgd_closed_form() -> None:
    """For plain SGD, ω = Σ_steps lr·g², and Ω = ω/(Δ² + ξ)."""
    model = nn.Linear(3, 1, bias=False).double()
    si = SynapticIntelligence(model, c=1.0, xi=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randn(8, 1, dtype=torch.float64)
    w0 = model.weight.detach().clone()
    omega = torch.zeros_like(w0)
    for _ in range(5):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        omega += 0.1 * model.weight.grad.pow(2)
        si.step(opt)
    si.consolidate()
    delta = model.weight.detach() - w0
    torch.testing.assert_close(si.importance["weight"], omega / (delta.pow(2) + 0.1))
    with torch.no_grad():
        model.weight.add_(1.0)
    model.zero_grad()
    si.penalty().backward()
    torch.testing.assert_close(model.weight.grad, 2.0 * si.importance["weight"] * 1.0)


@pytest.mark.parametrize("prioritized", [False, True])
def test_reservoir_replay_is_uniform_over_the_stream(prioritized: bool) -> None:
    counts = torch.zeros(100)
    for seed in range(300):
        buf = ReplayBuffer(
            10, prioritized=prioritized, generator=torch.Generator().manual_seed(seed)
        )
        for chunk in torch.arange(100).split(25):
            buf.add(chunk.float()[:, None], chunk)
        counts[buf.y[: len(buf)]] += 1
    # each item is kept with probability 10/100: 30 expected per item out of 300 runs
    assert float(counts[:50].mean()) == pytest.approx(30, rel=0.15)
    assert float(counts[50:].mean()) == pytest.approx(30, rel=0.15)


def test_prioritized_replay_samples_by_priority() -> None:
    buf = ReplayBuffer(
        4, prioritized=True, alpha=1.0, beta=1.0, generator=torch.Generator().manual_seed(0)
    )
    buf.add(
        torch.arange(4.0)[:, None], torch.arange(4), priority=torch.tensor([1.0, 1.0, 1.0, 5.0])
    )
    torch.testing.assert_close(buf.probabilities(), torch.tensor([0.125, 0.125, 0.125, 0.625]))
    s = buf.sample(4000)
    frac = float((s.y == 3).float().mean())
    assert frac == pytest.approx(0.625, abs=0.03)
    # importance weights undo the bias: w ∝ 1/P
    w3 = float(s.weight[s.y == 3][0])
    w0 = float(s.weight[s.y == 0][0])
    assert w3 / w0 == pytest.approx(0.125 / 0.625)
    buf.update_priorities(torch.tensor([3]), torch.tensor([1.0]))
    torch.testing.assert_close(buf.probabilities(), torch.full((4,), 0.25))


def test_replay_bad_input() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3).sample(2)
    with pytest.raises(ValueError, match="y must have shape"):
        ReplayBuffer(3).add(torch.zeros(2, 1), torch.zeros(3))


def test_sleep_replays_at_reduced_plasticity_then_prunes() -> None:
    """Sleep with plasticity p takes SGD steps of size p·lr, restores lr, and prunes small weights."""
    model = nn.Linear(3, 2).double()
    clone = nn.Linear(3, 2).double()
    clone.load_state_dict(model.state_dict())
    buf = ReplayBuffer(16, generator=torch.Generator().manual_seed(0))
    x = torch.randn(16, 3, dtype=torch.float64)
    buf.add(x, torch.randint(0, 2, (16,)))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = lambda lg, y: F.cross_entropy(lg, y, reduction="none")
    stats = sleep(model, opt, buf, loss_fn, SleepConfig(steps=3, batch_size=4, plasticity=0.2))
    assert opt.param_groups[0]["lr"] == 0.5
    # replay the same samples by hand at lr 0.1
    buf2 = ReplayBuffer(16, generator=torch.Generator().manual_seed(0))
    buf2.add(x, buf.y.clone())
    opt2 = torch.optim.SGD(clone.parameters(), lr=0.1)
    for _ in range(3):
        s = buf2.sample(4)
        opt2.zero_grad()
        loss_fn(clone(s.x), s.y).mean().backward()
        opt2.step()
    for a, b in zip(model.parameters(), clone.parameters()):
        torch.testing.assert_close(a, b)
    assert stats["pruned_fraction"] == 0.0
    masks = prune_weights(model, 0.3)
    assert bool((model.weight.abs()[~masks["weight"]] == 0).all())
    assert bool((model.weight.abs()[masks["weight"]] >= 0.3).all())


def test_metaplastic_scales_updates_of_any_optimizer() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a = Metaplastic(torch.optim.Adam(a.parameters(), lr=0.1))
    opt_b = torch.optim.Adam(b.parameters(), lr=0.1)
    mod = torch.rand(2, 3)
    opt_a.set_modulation(a.weight, mod)
    opt_a.set_modulation(a.bias, 0.0)
    x = torch.randn(5, 3)
    w0, b0 = a.weight.detach().clone(), a.bias.detach().clone()
    for m, o in ((a, opt_a), (b, opt_b)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    torch.testing.assert_close(a.weight, w0 + mod * (b.weight - w0))
    torch.testing.assert_close(a.bias.detach(), b0)  # modulation 0 freezes the bias
    assert not torch.equal(b.bias, a.bias)
    with pytest.raises(ValueError, match="value must have shape"):
        opt_a.set_modulation(a.weight, torch.ones(3))
    with pytest.raises(ValueError, match="group"):
        opt_a.set_group_modulation(3, 1.0)


def test_laborieux_modulation() -> None:
    w = torch.tensor([2.0, 2.0, -1.0])
    upd = torch.tensor([-1.0, 1.0, 1.0])
    m = laborieux_modulation(w, upd, strength=1.0)
    torch.testing.assert_close(
        m,
        torch.tensor(
            [1 - torch.tanh(torch.tensor(2.0)) ** 2, 1.0, 1 - torch.tanh(torch.tensor(1.0)) ** 2]
        ),
    )
