import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_plasticity import (
    CSR,
    PlasticityHook,
    bcm,
    chain,
    clip,
    foldiak,
    hebbian,
    local_csr,
    oja,
    on_topology,
    pair_stdp,
    prune,
    reward_modulated_hebbian,
    synaptic_scaling,
    three_factor_stdp,
    threshold_adaptation,
    triplet_stdp,
    weight_decay,
)


def _run_pair(rule, first: str, lag: int, w0: float = 0.5, modulator=None):
    """One synapse, a single spike of ``first`` at step 0 and of the other at step ``lag``."""
    w = torch.full((1, 1), w0, dtype=torch.float64)
    state = rule.init(w)
    total = torch.zeros_like(w)
    for t in range(lag + 5):
        pre = torch.tensor([1.0 if (t == 0) == (first == "pre") and t in (0, lag) else 0.0])
        post = torch.tensor([1.0 if (t == 0) == (first == "post") and t in (0, lag) else 0.0])
        dw, state = rule.update(pre.double(), post.double(), state, w, modulator=modulator)
        total += dw
    return float(total)


@pytest.mark.parametrize("pairing", ["all_to_all", "nearest"])
@pytest.mark.parametrize("lag", [1, 3, 10, 25])
def test_stdp_sign_and_exponential_window(pairing: str, lag: int) -> None:
    rule = pair_stdp(
        a_plus=0.01, a_minus=0.012, tau_plus_ms=20.0, tau_minus_ms=30.0, dt_ms=0.5, pairing=pairing
    )
    ltp = _run_pair(rule, "pre", lag)
    ltd = _run_pair(rule, "post", lag)
    assert ltp > 0 > ltd
    # closed form of the window: A± exp(−|Δt| / τ±) with Δt = lag · dt
    assert ltp == pytest.approx(0.01 * math.exp(-lag * 0.5 / 20.0), rel=1e-9)
    assert ltd == pytest.approx(-0.012 * math.exp(-lag * 0.5 / 30.0), rel=1e-9)


def test_simultaneous_spikes_do_not_pair() -> None:
    rule = pair_stdp()
    w = torch.full((1, 1), 0.5)
    dw, _ = rule.update(torch.ones(1), torch.ones(1), rule.init(w), w)
    assert float(dw) == 0.0


def test_nearest_and_all_to_all_differ_on_bursts() -> None:
    """Two pre spikes then a post spike: all-to-all sums both pairings, nearest only the last."""
    d = math.exp(-1 / 20.0)
    for pairing, expected in (("all_to_all", d**3 + d), ("nearest", d)):
        rule = pair_stdp(a_plus=1.0, a_minus=0.0, pairing=pairing)
        w = torch.zeros(1, 1, dtype=torch.float64)
        s = rule.init(w)
        total = 0.0
        for pre, post in ((1, 0), (0, 0), (1, 0), (0, 1)):
            dw, s = rule.update(torch.tensor([float(pre)]), torch.tensor([float(post)]), s, w)
            total += float(dw)
        assert total == pytest.approx(expected, rel=1e-9), pairing


def test_repeated_pattern_strengthens_forward_synapse() -> None:
    """A fires 3 ms before B, repeatedly: w_BA (B ← A) grows above w_AB (A ← B)."""
    rule = chain(pair_stdp(a_plus=0.05, a_minus=0.0525, bound="soft"))
    n = 2
    w = torch.full((n, n), 0.5, dtype=torch.float64)
    s = rule.init(w)
    for t in range(400):
        spikes = torch.tensor([float(t % 40 == 0), float(t % 40 == 3)], dtype=torch.float64)
        dw, s = rule.update(spikes, spikes, s, w)
        w = w + dw
    assert w[1, 0] > 0.6 > 0.4 > w[0, 1]


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    rate=st.floats(0.05, 0.6),
    pairing=st.sampled_from(["all_to_all", "nearest"]),
)
def test_soft_bounds_keep_weights_in_range(seed: int, rate: float, pairing: str) -> None:
    g = torch.Generator().manual_seed(seed)
    # the largest amplitudes with η(A₊x + A₋y) ≤ 1: nearest traces are ≤ 1, all-to-all ≤ 20.5
    amp = 0.45 if pairing == "nearest" else 0.02
    rule = pair_stdp(a_plus=amp, a_minus=amp, bound="soft", pairing=pairing, w_min=0.0, w_max=1.0)
    w = torch.rand(6, 5, generator=g, dtype=torch.float64)
    s = rule.init(w, batch=1)
    lo, hi = float("inf"), -float("inf")
    for _ in range(150):
        pre = (torch.rand(5, generator=g) < rate).double()
        post = (torch.rand(6, generator=g) < rate).double()
        dw, s = rule.update(pre, post, s, w)
        w = w + dw
        lo, hi = min(lo, float(w.min())), max(hi, float(w.max()))
    assert lo >= 0.0
    assert hi <= 1.0
    # additive STDP with the same spikes leaves the range: the bound is what keeps it in
    add = pair_stdp(a_plus=amp, a_minus=0.0, pairing=pairing)
    w2 = torch.full((1, 1), 0.5, dtype=torch.float64)
    s2 = add.init(w2)
    for t in range(200):
        dw, s2 = add.update(
            torch.tensor([float(t % 2 == 0)]).double(),
            torch.tensor([float(t % 2 == 1)]).double(),
            s2,
            w2,
        )
        w2 = w2 + dw
    assert float(w2) > 1.0


def test_triplet_matches_pfister_gerstner_closed_form() -> None:
    """pre at 0, post at k1, post at k2: the second post spike adds the triplet term A3+ · o2."""
    dt = 1.0
    rule = triplet_stdp(a2_plus=0.005, a3_plus=0.01, a2_minus=0.0, a3_minus=0.0, dt_ms=dt)
    w = torch.zeros(1, 1, dtype=torch.float64)
    s = rule.init(w)
    k1, k2 = 5, 15
    total = 0.0
    for t in range(k2 + 1):
        pre = torch.tensor([float(t == 0)]).double()
        post = torch.tensor([float(t in (k1, k2))]).double()
        dw, s = rule.update(pre, post, s, w)
        total += float(dw)
    r1 = lambda k: math.exp(-k * dt / 16.8)
    o2 = math.exp(-(k2 - k1) * dt / 125.0)
    expected = r1(k1) * 0.005 + r1(k2) * (0.005 + 0.01 * o2)
    assert total == pytest.approx(expected, rel=1e-9)


def test_triplet_depression_uses_r2() -> None:
    rule = triplet_stdp(a2_plus=0.0, a3_plus=0.0, a2_minus=0.007, a3_minus=0.01)
    w = torch.zeros(1, 1, dtype=torch.float64)
    s = rule.init(w)
    total = 0.0
    # pre at 0, post at 2, pre at 6: depression at 6 = o1(4) · (A2- + A3- · r2(6))
    for t in range(7):
        pre = torch.tensor([float(t in (0, 6))]).double()
        post = torch.tensor([float(t == 2)]).double()
        dw, s = rule.update(pre, post, s, w)
        total += float(dw)
    expected = -math.exp(-4 / 33.7) * (0.007 + 0.01 * math.exp(-6 / 101.0))
    assert total == pytest.approx(expected, rel=1e-9)


def test_three_factor_needs_modulator_and_scales_linearly() -> None:
    rule = three_factor_stdp(tau_e_ms=200.0)
    base = _run_pair(rule, "pre", 4, modulator=1.0)
    assert base > 0
    assert _run_pair(rule, "pre", 4, modulator=2.0) == pytest.approx(2 * base, rel=1e-12)
    assert _run_pair(rule, "pre", 4, modulator=0.0) == 0.0
    assert _run_pair(rule, "pre", 4, modulator=-1.0) == pytest.approx(-base, rel=1e-12)
    with pytest.raises(ValueError, match="modulator"):
        _run_pair(rule, "pre", 4)


def test_eligibility_bridges_a_delayed_reward() -> None:
    """Pairing at steps 0/3; reward only at step 50: Δw = A+ e^{-3/20} · e^{-47/τe}."""
    tau_e = 100.0
    rule = three_factor_stdp(tau_e_ms=tau_e, a_plus=0.01, a_minus=0.0)
    w = torch.zeros(1, 1, dtype=torch.float64)
    s = rule.init(w)
    total = 0.0
    for t in range(51):
        pre = torch.tensor([float(t == 0)]).double()
        post = torch.tensor([float(t == 3)]).double()
        dw, s = rule.update(pre, post, s, w, modulator=1.0 if t == 50 else 0.0)
        total += float(dw)
    assert total == pytest.approx(0.01 * math.exp(-3 / 20) * math.exp(-47 / tau_e), rel=1e-9)


def test_reward_modulated_hebbian_doubles() -> None:
    rule = reward_modulated_hebbian(0.1, decay=0.9)
    w = torch.randn(3, 4, dtype=torch.float64)
    pre, post = torch.rand(2, 4).double(), torch.rand(2, 3).double()
    d1, _ = rule.update(pre, post, rule.init(w, 2), w, modulator=1.5)
    d2, _ = rule.update(pre, post, rule.init(w, 2), w, modulator=3.0)
    torch.testing.assert_close(d2, 2 * d1)
    expected = 1.5 * (0.1 * post.T @ pre / 2 - 0.1 * w)
    torch.testing.assert_close(d1, expected)


def test_hebbian_with_decay_matches_fast_weight_update() -> None:
    w = torch.randn(3, 4, dtype=torch.float64)
    pre, post = torch.randn(4).double(), torch.randn(3).double()
    rule = hebbian(0.3, decay=0.8)
    dw, _ = rule.update(pre, post, rule.init(w), w)
    torch.testing.assert_close(w + dw, 0.8 * w + 0.3 * torch.outer(post, pre))


def _covariance() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    eig = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.3, 0.1], dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T, q


def test_oja_finds_first_pc_with_unit_norm() -> None:
    cov, q = _covariance()
    chol = torch.linalg.cholesky(cov)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 6, generator=g, dtype=torch.float64) * 0.1
    rule = oja(0.01)
    s = rule.init(w, batch=16)
    for _ in range(1500):
        x = torch.randn(16, 6, generator=g, dtype=torch.float64) @ chol.T
        dw, s = rule.update(x, x @ w.T, s, w)
        w = w + dw
    assert float(w.norm()) == pytest.approx(1.0, abs=0.03)
    assert abs(float(w[0] @ q[:, 0])) > 0.99


def test_sanger_finds_ordered_components() -> None:
    cov, q = _covariance()
    chol = torch.linalg.cholesky(cov)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(2, 6, generator=g, dtype=torch.float64) * 0.1
    rule = oja(0.05, variant="sanger")
    s = rule.init(w)
    for _ in range(500):
        x = torch.randn(32, 6, generator=g, dtype=torch.float64) @ chol.T
        dw, s = rule.update(x, x @ w.T, s, w)
        w = w + dw
    assert abs(float(w[0] @ q[:, 0])) > 0.98
    assert abs(float(w[1] @ q[:, 1])) > 0.95


def test_bcm_threshold_tracks_activity() -> None:
    rule = bcm(0.0, tau_theta_steps=20.0)
    w = torch.zeros(2, 3)
    s = rule.init(w)
    pre = torch.ones(3)
    for level, steps in ((1.0, 200), (3.0, 200)):
        for _ in range(steps):
            _, s = rule.update(pre, torch.tensor([level, 0.5 * level]), s, w)
        torch.testing.assert_close(
            s.theta, torch.tensor([level**2, 0.25 * level**2]), rtol=1e-3, atol=1e-3
        )


def test_bcm_sign_follows_threshold() -> None:
    rule = bcm(0.1, theta_init=1.0)
    w = torch.zeros(1, 1)
    s = rule.init(w)
    low, _ = rule.update(torch.ones(1), torch.tensor([0.5]), s, w)
    high, _ = rule.update(torch.ones(1), torch.tensor([2.0]), s, w)
    assert float(low) == pytest.approx(0.1 * 0.5 * (0.5 - 1.0))
    assert float(high) == pytest.approx(0.1 * 2.0 * (2.0 - 1.0))


def test_foldiak_decorrelates() -> None:
    rule = foldiak(0.5, target_rate=0.1)
    w = torch.zeros(2, 2)
    y = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    dw, _ = rule.update(y, y, rule.init(w, 2), w)
    torch.testing.assert_close(dw, torch.full((2, 2), -0.5 * (0.5 - 0.01)))


def test_threshold_adaptation_converges_to_target_rate() -> None:
    """A neuron y = 1[drive > θ] with uniform drive fires at rate target once θ has adapted."""
    ta = threshold_adaptation(0.01, target_rate=0.2)
    s = ta.init(1)
    g = torch.Generator().manual_seed(0)
    fired = []
    for t in range(4000):
        drive = torch.rand(1, generator=g)
        y = (drive > s.threshold).float()
        _, s = ta.update(y, s)
        if t >= 2000:
            fired.append(float(y))
    assert sum(fired) / len(fired) == pytest.approx(0.2, abs=0.03)
    assert float(s.threshold) == pytest.approx(0.8, abs=0.05)


def test_synaptic_scaling_is_multiplicative_and_signed() -> None:
    rule = synaptic_scaling(0.1, target_rate=0.5, tau_rate_steps=1.0)
    w = torch.tensor([[1.0, 2.0], [1.0, 3.0]])
    dw, s = rule.update(torch.ones(2), torch.tensor([1.0, 0.0]), rule.init(w), w)
    torch.testing.assert_close(dw, torch.tensor([[-0.05, -0.1], [0.05, 0.15]]))
    torch.testing.assert_close(s.rate, torch.tensor([1.0, 0.0]))


def test_combinators() -> None:
    w = torch.tensor([[0.5, 0.002], [0.9, -0.3]])
    pre, post = torch.ones(2), torch.ones(2)
    rule = chain(
        hebbian(0.2), weight_decay(0.1), clip(max_delta=0.1, w_min=-0.25, w_max=0.95), prune(0.01)
    )
    s = rule.init(w)
    dw, s = rule.update(pre, post, s, w)
    raw = (0.2 - 0.1 * w).clamp(-0.1, 0.1)
    new = (w + raw).clamp(-0.25, 0.95)
    new = torch.where(new.abs() >= 0.01, new, torch.zeros_like(new))
    torch.testing.assert_close(w + dw, new)
    # a pruned synapse stays at zero even when Hebb would regrow it
    w2 = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    s = chain(hebbian(0.0), prune(0.01)).init(w2)
    r = chain(hebbian(0.0), prune(0.01))
    _, s = r.update(pre, post, s, w2)
    r2 = chain(hebbian(1.0), prune(0.01))
    dw, _ = r2.update(pre, post, s, w2)
    assert float((w2 + dw)[0, 1]) == 0.0
    assert float((w2 + dw)[0, 0]) == 1.5


RULES = {
    "hebbian": lambda: hebbian(0.1, decay=0.9),
    "oja": lambda: oja(0.1),
    "bcm": lambda: bcm(0.1, theta_init=0.3),
    "foldiak": lambda: foldiak(0.1, 0.2),
    "pair_soft": lambda: pair_stdp(bound="soft", a_plus=0.3),
    "pair_nearest": lambda: pair_stdp(pairing="nearest"),
    "triplet": lambda: triplet_stdp(a2_plus=0.01),
    "three_factor": lambda: three_factor_stdp(tau_e_ms=50.0),
    "scaling": lambda: synaptic_scaling(0.1, 0.3),
    "chain": lambda: chain(
        pair_stdp(), weight_decay(0.01), clip(w_min=0.0, w_max=1.0), prune(0.05)
    ),
}


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("kind", ["csr", "local"])
def test_topology_adapter_matches_dense_on_existing_synapses(name: str, kind: str) -> None:
    """Every rule on CSR/local connectivity equals the dense rule restricted to the synapses."""
    g = torch.Generator().manual_seed(3)
    n_post, n_pre, batch = 5, 7, 2
    if kind == "csr":
        topo = CSR.from_dense_mask(torch.rand(n_post, n_pre, generator=g) < 0.4)
    else:
        topo = local_csr(n_pre, n_post, radius=1)
    mask = topo.dense(torch.ones(topo.nnz)) > 0
    dense_rule, sparse_rule = RULES[name](), on_topology(RULES[name](), topo)
    w_dense = torch.rand(n_post, n_pre, generator=g, dtype=torch.float64) * mask
    w_sparse = w_dense[mask.nonzero(as_tuple=True)]
    sd, ss = dense_rule.init(w_dense, batch), sparse_rule.init(w_sparse, batch)
    for t in range(12):
        pre = (torch.rand(batch, n_pre, generator=g) < 0.4).double()
        post = (torch.rand(batch, n_post, generator=g) < 0.4).double()
        m = 1.0 + t
        dd, sd = dense_rule.update(pre, post, sd, w_dense, modulator=m)
        ds, ss = sparse_rule.update(pre, post, ss, w_sparse, modulator=m)
        torch.testing.assert_close(ds, dd[mask.nonzero(as_tuple=True)])
        w_dense = (w_dense + dd) * mask
        w_sparse = w_sparse + ds


@pytest.mark.parametrize("active", [(0, 0), (1, 30), (30, 1), (2, 3)])
def test_csr_event_driven_product_matches_gather(active: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(4)
    topo = CSR.from_dense_mask(torch.rand(60, 50, generator=g) < 0.3)
    post, pre = torch.zeros(1, 60), torch.zeros(1, 50)
    post[0, torch.randperm(60, generator=g)[: active[0]]] = torch.rand(active[0], generator=g) + 0.5
    pre[0, torch.randperm(50, generator=g)[: active[1]]] = torch.rand(active[1], generator=g) + 0.5
    dense = torch.outer(post[0], pre[0])
    rows, cols = topo.row_indices, topo.col_indices  # type: ignore[attr-defined]
    torch.testing.assert_close(topo.outer(post, pre), dense[rows, cols])


def test_local_csr_fields() -> None:
    topo = local_csr(10, 4, radius=1)
    mask = topo.dense(torch.ones(topo.nnz))
    # centres at 0, 3, 6, 9
    assert mask[0].nonzero().flatten().tolist() == [0, 1]
    assert mask[1].nonzero().flatten().tolist() == [2, 3, 4]
    assert mask[3].nonzero().flatten().tolist() == [8, 9]


def test_oja_subspace_rejects_sparse() -> None:
    topo = local_csr(4, 4, 1)
    with pytest.raises(ValueError, match="dense"):
        on_topology(oja(0.1, "subspace"), topo).init(torch.ones(topo.nnz))


def test_rules_satisfy_the_hook_protocol() -> None:
    for make in RULES.values():
        rule = make()
        assert isinstance(rule, PlasticityHook)
        w = torch.rand(3, 2)
        s = rule.init(w, batch=1)
        dw, s = rule(torch.ones(2), torch.ones(3), s, w, 1.0)
        assert dw.shape == w.shape


def test_rules_never_mutate_weights() -> None:
    for make in RULES.values():
        rule = make()
        w = torch.rand(3, 2)
        before = w.clone()
        s = rule.init(w, batch=1)
        for _ in range(3):
            _, s = rule(torch.ones(2), torch.ones(3), s, w, 1.0)
        assert torch.equal(w, before)


def test_bad_input_names_the_argument() -> None:
    w = torch.zeros(3, 4)
    rule = pair_stdp()
    s = rule.init(w)
    with pytest.raises(ValueError, match="pre must have last dim 4"):
        rule.update(torch.zeros(5), torch.zeros(3), s, w)
    with pytest.raises(ValueError, match="post must have last dim 3"):
        rule.update(torch.zeros(4), torch.zeros(4), s, w)
    with pytest.raises(ValueError, match="pre and post must have the same batch"):
        rule.update(torch.zeros(2, 4), torch.zeros(3, 3), s, w)
    with pytest.raises(ValueError, match="weight"):
        on_topology(rule, local_csr(4, 3, 1)).init(w)
    with pytest.raises(ValueError, match="lr"):
        hebbian(-0.1)
    with pytest.raises(ValueError, match="a_plus"):
        pair_stdp(a_plus=-1.0)
    with pytest.raises(ValueError, match="tau_plus_ms"):
        pair_stdp(tau_plus_ms=-20.0)
    with pytest.raises(ValueError, match="tau_e_ms"):
        three_factor_stdp(tau_e_ms=0.0)
    with pytest.raises(ValueError, match="decay"):
        hebbian(0.1, decay=1.5)
    with pytest.raises(ValueError, match="decay"):
        hebbian(0.1, decay=0.0)
    with pytest.raises(ValueError, match="bound"):
        pair_stdp(bound="hard")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau_theta_steps"):
        bcm(0.1, tau_theta_steps=0.5)
    rmh = reward_modulated_hebbian(0.1)
    state = rmh.init(w)
    with pytest.raises(ValueError, match="modulator must be a scalar"):
        rmh.update(torch.zeros(4), torch.zeros(3), state, w, torch.ones(2))
