"""HebLLM: the spiking language model (neuro_models.hebllm), its readout and the published rule."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from neuro_models.data import DataOrder
from neuro_models.hebllm import (
    HebLLM,
    HebLLMConfig,
    PublishedRuleParams,
    fit_readout,
    hebllm_local_loss,
    published_hebbian_rule,
    readout_log_probs,
    readout_nll,
    sensory_spikes,
)
from neuro_models.hebllm.teacher import EventTeacherSTDP, teacher_raster, teacher_stdp
from neuro_models.train import TrainConfig, train
from neuro_plasticity import chain, clip
from neuro_plasticity.topology import CSR

V = 6


def small(**kw: object) -> HebLLMConfig:
    base = dict(vocab_size=V, n_associative=24, n_inhibitory=6, output_per_token=2, seed=3)
    base.update(kw)
    return HebLLMConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- readout


def test_softmax_and_laplace_readout_equal_hand_computation() -> None:
    c = [0.0, 2.0, 1.0, 5.0]
    tau, alpha = 1.7, 0.3
    z = sum(math.exp(x / tau) for x in c)
    want_soft = [math.log(math.exp(x / tau) / z) for x in c]
    want_lap = [math.log((x + alpha) / (sum(c) + len(c) * alpha)) for x in c]
    counts = torch.tensor([c])
    got_soft = readout_log_probs(counts, tau, "softmax")[0].tolist()
    got_lap = readout_log_probs(counts, alpha, "laplace")[0].tolist()
    assert got_soft == pytest.approx(want_soft, abs=1e-12)
    assert got_lap == pytest.approx(want_lap, abs=1e-12)


def test_readout_nll_is_the_mean_negative_log_probability_of_the_targets() -> None:
    counts = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 0.0], [2.0, 2.0, 1.0]])
    targets = torch.tensor([2, 0, 1])
    tau = 0.8
    want = 0.0
    for row, y in zip(counts.tolist(), targets.tolist()):
        z = sum(math.exp(x / tau) for x in row)
        want -= math.log(math.exp(row[y] / tau) / z)
    assert readout_nll(counts, targets, tau) == pytest.approx(want / 3, abs=1e-12)


@pytest.mark.parametrize("kind", ["softmax", "laplace"])
def test_fit_readout_finds_the_grid_minimum(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (400,), generator=g)
    counts = torch.poisson(torch.full((400, 5), 0.7), generator=g)
    counts[torch.arange(400), targets] += torch.poisson(torch.full((400,), 1.2), generator=g)
    best = fit_readout(counts, targets, kind)  # type: ignore[arg-type]
    grid = np.exp(np.linspace(math.log(1e-2), math.log(1e3), 4001))
    brute = min(readout_nll(counts, targets, float(s), kind) for s in grid)  # type: ignore[arg-type]
    assert readout_nll(counts, targets, best, kind) <= brute + 1e-6  # type: ignore[arg-type]


def test_readout_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="scale"):
        readout_log_probs(torch.zeros(1, 3), 0.0)
    with pytest.raises(ValueError, match="targets"):
        readout_nll(torch.zeros(2, 3), torch.tensor([0, 3]), 1.0)
    with pytest.raises(ValueError, match="counts"):
        readout_log_probs(torch.tensor([[float("nan"), 1.0]]), 1.0)


# ---------------------------------------------------------------- encoding and config


def test_sensory_spikes_match_a_hand_built_raster() -> None:
    got = sensory_spikes(torch.tensor([2, 0]), 3, window_steps=3, slot_steps=5, period_steps=2)
    want = torch.zeros(10, 3, dtype=torch.bool)
    for step, neuron in [(0, 2), (2, 2), (5, 0), (7, 0)]:
        want[step, neuron] = True
    assert torch.equal(got, want)


def test_config_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        HebLLMConfig(vocab_size=0)
    with pytest.raises(ValueError, match="window_ms"):
        HebLLMConfig(vocab_size=4, window_ms=2.5)
    with pytest.raises(ValueError, match="delay_ms"):
        HebLLMConfig(vocab_size=4, delay_ms=(0.5, 2.0))
    with pytest.raises(ValueError, match="rule"):
        HebLLMConfig(vocab_size=4, rule="hebb")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokens"):
        HebLLM(small())(torch.tensor([[0, V]]))


# ---------------------------------------------------------------- the model


def test_forward_nll_equals_the_readout_of_the_counts_by_hand() -> None:
    model = HebLLM(small(readout_window="slot"))
    model.scale.fill_(0.9)
    tokens = torch.tensor([[0, 3, 1, 5, 2, 2, 4]])
    counts = model.counts(tokens)[0]
    assert float(counts.sum()) > 0  # the teacher makes the output spike inside the slot
    logp = model(tokens)[0]
    want = 0.0
    for t in range(tokens.shape[1] - 1):
        row = counts[t].tolist()
        y = int(tokens[0, t + 1])
        want -= math.log(math.exp(row[y] / 0.9) / sum(math.exp(x / 0.9) for x in row))
    got = -float(logp[:-1].gather(1, tokens[0, 1:, None]).sum())
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("window", ["gap", "slot"])
def test_the_distribution_for_token_t_depends_only_on_tokens_up_to_t(window: str) -> None:
    # strong initial weights onto the output, so that the output also spikes in the gap
    model = HebLLM(small(readout_window=window, output_weight_mu=-0.5))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (1, 12), generator=g)
    base = model(x)
    later_changed = []
    for t in (0, 4, 9):
        y = x.clone()
        y[0, t + 1 :] = (x[0, t + 1 :] + torch.randint(1, V, (11 - t,), generator=g)) % V
        out = model(y)
        assert torch.equal(out[0, : t + 1], base[0, : t + 1])
        later_changed.append(not torch.equal(out[0, t + 1 :], base[0, t + 1 :]))
    assert any(later_changed)  # later positions do see the change


def test_learning_builds_no_autograd_graph_and_no_parameter_requires_grad() -> None:
    model = HebLLM(small())
    assert list(model.parameters()) == []
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.shape)
        return t

    x = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    before = [w.clone() for w in model.weights]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, metrics = hebllm_local_loss(model, x[:, :-1], x[:, 1:])
    assert saved == []  # nothing was recorded for a backward pass
    assert all(not b.requires_grad and b.grad_fn is None for b in model.buffers())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.weights))
    (grad,) = torch.autograd.grad(loss, [t for t in _leaves(loss)])
    assert float(grad) == 0.0
    assert math.isfinite(float(loss.detach()))
    assert metrics["events_per_s"] > 0


def _leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    out, todo = [], [loss.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None:
            continue
        if hasattr(fn, "variable"):
            out.append(fn.variable)
        todo.extend(f for f, _ in fn.next_functions)
    return out


def test_the_training_harness_runs_the_local_rule_and_leaves_the_weights_to_it() -> None:
    model = HebLLM(small())
    stream = np.random.default_rng(0).integers(0, V, 400)
    order = DataOrder(stream, seq_len=8, batch_size=2, seed=0)
    seen = []
    model_w = [w.clone() for w in model.weights]

    def record(info: object) -> None:
        seen.append(model.learned_sequences)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(lr=1e-3, max_steps=2, batch_size=2, seq_len=8, out_dir=tmp,
                          progress=False, plot=False, warmup_steps=1)  # fmt: skip
        res = train(model, cfg, order, loss_fn=hebllm_local_loss, callbacks=[record])
    assert seen == [2, 4]
    assert len(res.losses) == 2
    assert any(not torch.equal(a, b) for a, b in zip(model_w, model.weights))


def test_learning_is_deterministic_and_forward_does_not_learn() -> None:
    x = torch.randint(0, V, (1, 10), generator=torch.Generator().manual_seed(4))
    a, b = HebLLM(small()), HebLLM(small())
    before = [w.clone() for w in a.weights]
    a(x)
    assert all(torch.equal(u, v) for u, v in zip(before, a.weights))
    sa, sb = a.learn(x), b.learn(x)
    assert sa.nll == sb.nll
    assert sa.events == sb.events
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))


def test_sleep_prunes_weak_synapses_and_holds_them_at_zero() -> None:
    model = HebLLM(small(sleep_every=1))
    n0 = model.n_synapses
    x = torch.randint(0, V, (1, 12), generator=torch.Generator().manual_seed(5))
    stats = model.learn(x)
    for w, alive in zip(model.weights, model.alive):
        assert bool((w[~alive] == 0).all())
        assert bool((w[alive] >= 0.01).all())
    assert stats.synapses == model.n_synapses <= n0


def test_calibrate_stores_the_dev_optimum() -> None:
    model = HebLLM(small(readout_window="slot"))
    # a sequence whose next token repeats the current one: the counts (the teacher's spikes for
    # the current token) are informative, so the best τ is finite
    x = torch.arange(V).repeat_interleave(2).repeat(2, 1)
    tau = model.calibrate(x)
    assert float(model.scale) == tau
    assert 1e-2 < tau < 1e3
    cnt, y = model.counts(x)[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1)
    for other in (tau / 1.5, tau * 1.5):
        assert readout_nll(cnt, y, tau) < readout_nll(cnt, y, other)


# ---------------------------------------------------------------- the published rule


def _published_reference(pre: np.ndarray, post: np.ndarray, w0: np.ndarray, m: float,
                         increment: bool, boost: float) -> np.ndarray:  # fmt: skip
    """HebSNN._apply_stdp written out per synapse (dense [post, pre], every pair connected)."""
    w = w0.copy()
    x = np.zeros(pre.shape[1])
    decay = math.exp(-1.0 / 20.0)
    for t in range(pre.shape[0]):
        x = x * decay
        for i in np.flatnonzero(post[t]):
            for j in range(pre.shape[1]):
                if x[j] > 0.1:
                    w[i, j] = min(max(w[i, j] + 0.05 * boost * m, 0.0), 1.0)
        if increment:
            x = x + pre[t]
    return w


@pytest.mark.parametrize("increment", [False, True])
def test_published_rule_equals_a_synapse_by_synapse_port(increment: bool) -> None:
    rng = np.random.default_rng(7)
    pre = (rng.random((40, 5)) < 0.3).astype(np.float64)
    post = (rng.random((40, 4)) < 0.3).astype(np.float64)
    w0 = rng.uniform(0.0, 0.5, (4, 5))
    rule = published_hebbian_rule(PublishedRuleParams(increment_trace=increment, boost=2.0))
    w = torch.tensor(w0)
    state = rule.init(w)
    for t in range(40):
        dw, state = rule(torch.tensor(pre[t : t + 1]), torch.tensor(post[t : t + 1]), state, w, 1.3)
        w = w + dw
    want = _published_reference(pre, post, w0, 1.3, increment, 2.0)
    np.testing.assert_allclose(w.numpy(), want, atol=1e-12)
    assert np.array_equal(want, w0) == (not increment)


def test_published_arm_never_changes_its_weights_although_both_sides_spike() -> None:
    model = HebLLM(small(rule="published"))
    before = [w.clone() for w in model.weights]
    x = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(8))
    stats = model.learn(x)
    assert stats.events > 0
    assert model.counts(x).sum() > 0  # post (output) neurons spike while pre (sensory) do
    assert all(torch.equal(a, b) for a, b in zip(before, model.weights))
    # the same arm with the trace incremented (the fix) does learn on the same input
    fixed = HebLLM(small(rule="published"))
    for i in fixed.plastic:
        hook = fixed._plastic_net.plasticity[i]
        first = hook.parts[0]
        params = dataclasses.replace(first.params, increment_trace=True)
        fixed._plastic_net.plasticity[i] = dataclasses.replace(hook, **_rebuilt(params, hook))
    fixed.learn(x)
    assert any(not torch.equal(a, b) for a, b in zip(before, fixed.weights))


def _rebuilt(params: PublishedRuleParams, hook: object) -> dict[str, object]:
    rule = published_hebbian_rule(params)
    return {"init_fn": rule.init_fn, "update_fn": rule.update_fn, "parts": rule.parts}


# ---------------------------------------------------------------- teacher-clamped output learning


def test_teacher_raster_matches_a_hand_built_raster() -> None:
    x = torch.tensor([2, 0, 1])
    got = teacher_raster(x, vocab_size=3, per_token=2, slot_steps=4)
    want = torch.zeros(12, 6, dtype=torch.bool)
    want[3, 0:2] = True  # token 0 (the second token) at the last step of slot 0
    want[7, 2:4] = True  # token 1 at the last step of slot 1
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="tokens"):
        teacher_raster(torch.tensor([3]), vocab_size=3, per_token=1, slot_steps=4)


def _teacher_reference(pre: np.ndarray, post: np.ndarray, w0: np.ndarray, m: np.ndarray,
                       a_plus: float, a_minus: float, tau: float) -> np.ndarray:  # fmt: skip
    """Δw_ij = m [A₊ (1 − w_ij) x_j T_i − A₋ w_ij s_j], then clip to [0, 1]; dense [post, pre]."""
    w, x = w0.copy(), np.zeros(pre.shape[1])
    for t in range(pre.shape[0]):
        x = x * math.exp(-1.0 / tau)
        dw = np.zeros_like(w)
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                dw[i, j] = (
                    a_plus * (1 - w[i, j]) * x[j] * post[t, i] - a_minus * w[i, j] * pre[t, j]
                )
        w = np.clip(w + m[t] * dw, 0.0, 1.0)
        x = x + pre[t]
    return w


def test_teacher_stdp_dense_and_event_driven_equal_a_synapse_by_synapse_reference() -> None:
    rng = np.random.default_rng(11)
    n_t, n_pre, n_post = 60, 5, 4
    pre = (rng.random((n_t, n_pre)) < 0.3).astype(np.float64)
    post = (rng.random((n_t, n_post)) < 0.2).astype(np.float64)
    w0 = rng.uniform(0.0, 1.0, (n_post, n_pre))
    m = rng.uniform(0.5, 3.0, n_t)
    kw = dict(a_plus=0.3, a_minus=0.05, tau_ms=4.0)
    want = _teacher_reference(pre, post, w0, m, kw["a_plus"], kw["a_minus"], kw["tau_ms"])
    assert not np.allclose(want, w0)
    # dense rule, every pair connected
    rule = chain(teacher_stdp(**kw), clip(w_min=0.0, w_max=1.0))  # type: ignore[arg-type]
    w = torch.tensor(w0)
    state = rule.init(w)
    for t in range(n_t):
        dw, state = rule(torch.tensor(pre[t : t + 1]), torch.tensor(post[t : t + 1]), state, w,
                         float(m[t]))  # fmt: skip
        w = (w + dw).clamp(0.0, 1.0)
    np.testing.assert_allclose(w.numpy(), want, atol=1e-12)
    # event-driven hook on a CSR with every pair (rows = post), called only at spiking steps
    crow = torch.arange(0, n_post * n_pre + 1, n_pre)
    col = torch.arange(n_pre).repeat(n_post)
    hook = EventTeacherSTDP(teacher_stdp(**kw).params, CSR(crow, col, n_pre))  # type: ignore[arg-type]
    wf = torch.tensor(w0.reshape(-1))
    st = hook.init(wf)
    for t in range(n_t):
        p, q = np.flatnonzero(pre[t]), np.flatnonzero(post[t])
        if p.size == 0 and q.size == 0:
            continue
        idx, val, st = hook.on_spikes(t, torch.from_numpy(p), torch.from_numpy(q), st, wf,
                                      float(m[t]))  # fmt: skip
        wf[idx] = val
    np.testing.assert_allclose(wf.numpy().reshape(n_post, n_pre), want, atol=1e-12)


def test_readout_prior_equals_hand_computation_and_uniform_prior_is_the_plain_readout() -> None:
    c = [0.0, 2.0, 1.0]
    pi = [0.5, 0.3, 0.2]
    tau, alpha = 1.3, 0.4
    z = sum(p * math.exp(x / tau) for x, p in zip(c, pi))
    want_soft = [math.log(p * math.exp(x / tau) / z) for x, p in zip(c, pi)]
    want_dir = [math.log((x + 3 * alpha * p) / (sum(c) + 3 * alpha)) for x, p in zip(c, pi)]
    counts, prior = torch.tensor([c]), torch.tensor(pi, dtype=torch.float64)
    assert readout_log_probs(counts, tau, "softmax", prior)[0].tolist() == pytest.approx(want_soft)
    assert readout_log_probs(counts, alpha, "laplace", prior)[0].tolist() == pytest.approx(want_dir)
    flat = torch.full((3,), 1 / 3, dtype=torch.float64)
    for kind, s in (("softmax", tau), ("laplace", alpha)):
        assert torch.allclose(readout_log_probs(counts, s, kind, flat),  # type: ignore[arg-type]
                              readout_log_probs(counts, s, kind))  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match="prior"):
        readout_log_probs(counts, tau, "softmax", torch.tensor([0.5, 0.5, 0.0]))


def _teacher(**kw: object) -> HebLLMConfig:
    return small(output_learning="teacher", readout_window="slot", readout_prior=True,
                 readout="laplace", window_ms=8.0, gap_ms=2.0, **kw)  # fmt: skip


@pytest.mark.parametrize(("inhibition", "margin"), [(0.0, 0.25), (1.0, 0.6)])
def test_teacher_learning_predicts_a_deterministic_cycle_below_the_unigram(
    inhibition: float, margin: float
) -> None:
    """'abcabc…': after local learning on the cycle, the held-out NLL of the next token is far
    below the unigram's (computed here: log 3 for three equiprobable tokens); lateral inhibition
    among the output groups (winner-take-all) sharpens the prediction further."""
    cycle = torch.tensor([0, 1, 2]).repeat(200)
    train, held_out = cycle[:384].reshape(6, 64), cycle[1:65].reshape(1, 64)
    model = HebLLM(_teacher(output_inhibition=inhibition))
    for row in train:
        model.learn(row[None])
    counts = torch.bincount(train.reshape(-1), minlength=V).double()
    unigram = counts[:3] / counts.sum()
    nll_unigram = float(-unigram[held_out[0, 1:]].log().mean())
    assert nll_unigram == pytest.approx(math.log(3), abs=1e-2)
    log_p = model(held_out)[0, :-1].double()
    nll = float(-log_p.gather(1, held_out[0, 1:, None]).mean())
    assert nll < nll_unigram - margin
    # the published rule, clamped the same way, learns nothing: about the unigram (prior) only
    pub = HebLLM(_teacher(rule="published", output_inhibition=inhibition))
    before = [w.clone() for w in pub.weights]
    for row in train:
        pub.learn(row[None])
    assert all(torch.equal(a, b) for a, b in zip(before, pub.weights))
    lp = pub(held_out)[0, :-1].double()
    assert float(-lp.gather(1, held_out[0, 1:, None]).mean()) > nll_unigram - 0.1


def test_teacher_mode_silences_the_teacher_at_evaluation_and_counts_targets() -> None:
    model = HebLLM(_teacher())
    free = HebLLM(dataclasses.replace(model.config, output_learning="free"))
    x = torch.tensor([[0, 1, 2, 3]])
    diff = free.counts(x) - model.counts(x)  # same synapses and weights; free has the teacher
    assert bool((diff[0, torch.arange(4), x[0]] >= 1).all())  # on the current token's group
    silent = HebLLM(dataclasses.replace(free.config, teacher_weight=0.0))
    assert torch.equal(silent.counts(x), model.counts(x))
    model.learn(x)
    assert model.target_counts.tolist() == [0, 1, 1, 1, 0, 0]
    prior = model.prior
    assert prior is not None
    assert prior.tolist() == pytest.approx([1 / 9, 2 / 9, 2 / 9, 2 / 9, 1 / 9, 1 / 9])
    with pytest.raises(ValueError, match="output_learning"):
        small(output_learning="clamped")


def test_readout_delay_counts_the_output_spikes_from_that_step_of_each_slot_on() -> None:
    cfg = _teacher(readout_delay_ms=2.0, output_weight_mu=-0.5)
    model = HebLLM(cfg)
    x = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    out = model.record(x)["output"].reshape(8, cfg.slot_steps, V, cfg.output_per_token)
    want = out[:, 2:].sum(dim=(1, 3)).double()
    assert want.sum() > 0
    assert torch.equal(model.counts(x[None])[0], want)
    whole = HebLLM(dataclasses.replace(cfg, readout_delay_ms=0.0)).counts(x[None])[0]
    assert torch.equal(whole, out.sum(dim=(1, 3)).double())
    with pytest.raises(ValueError, match="readout_delay_ms"):
        _teacher(readout_delay_ms=10.0)
