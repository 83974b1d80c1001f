"""``EventPairSTDP.on_block`` (one call per block of steps; compiled kernel or numpy) against
one ``on_spikes`` call per step written out here, with a simulator's ``max(w, 0)`` and pruning
applied between steps; and what each spike sends against the weights recorded before every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_plasticity import CSR, chain, clip, modulate, pair_stdp, scale
from neuro_plasticity.ops.event_stdp import event_driven, native
from neuro_plasticity.rule import Rule

NATIVE = native.load() is not None
ENGINES = ["numpy", pytest.param("native", marks=pytest.mark.skipif(not NATIVE, reason="no cc"))]


def _rule(bound: str, pairing: str, chain_kind: str) -> Rule:
    base = pair_stdp(a_plus=0.2, a_minus=0.25, dt_ms=0.5, bound=bound, pairing=pairing)
    if chain_kind == "plain":
        return base
    if chain_kind == "clip":
        return chain(base, clip(w_min=0.0, w_max=1.0))
    if chain_kind == "scale_clip_delta":
        return chain(base, scale(0.7), clip(w_min=0.05, w_max=0.9, max_delta=0.03))
    return chain(base, modulate(), clip(w_min=0.0, w_max=1.0))


def _case(seed: int, n_pre: int, n_post: int, k: int, blocks: int, rate: float):
    g = torch.Generator().manual_seed(seed)
    topo = CSR.from_dense_mask(torch.rand(n_post, n_pre, generator=g) < 0.5)
    w0 = torch.rand(topo.nnz, generator=g) * 0.8 + 0.1
    pre = torch.rand(k * blocks, n_pre, generator=g) < rate
    post = torch.rand(k * blocks, n_post, generator=g) < rate
    mods = torch.rand(k * blocks, generator=g).double() * 2.0
    pruned = torch.rand(topo.nnz, generator=g) < 0.1
    return topo, w0, pre, post, mods.numpy(), pruned


def _reference(rule, topo, w0, pre, post, mods, pruned, k):
    """One on_spikes call per step with spikes; max(w, 0) and pruning after each; returns the
    final weights and, per step, the weights before it."""
    ev = event_driven(rule, topo, backend="events")
    w = w0.clone()
    st_ = ev.init(w)
    before = []
    for t in range(pre.shape[0]):
        before.append(w.clone())
        q, p = pre[t].nonzero().flatten(), post[t].nonzero().flatten()
        if not q.numel() and not p.numel():
            continue
        index, value, st_ = ev.on_spikes(t, q, p, st_, w, float(mods[t]))
        value = value.clamp_min(0.0)
        value = torch.where(pruned[index], torch.zeros_like(value), value)
        w[index] = value
    return w, before


def _blocks(rule, topo, w0, pre, post, mods, pruned, k, engine):
    ev = event_driven(rule, topo, backend="events")
    w = w0.clone()
    st_ = ev.init(w)
    reads = []
    for b0 in range(0, pre.shape[0], k):
        qt, q = pre[b0 : b0 + k].nonzero(as_tuple=True)
        pt, p = post[b0 : b0 + k].nonzero(as_tuple=True)
        upd = ev.on_block(
            b0, k, qt, q, pt, p, st_, w, mods[b0 : b0 + k],
            floor=True, pruned=pruned, engine=engine,
        )  # fmt: skip
        st_ = upd.state
        reads.append((b0, upd))
    return w, reads


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    bound=st.sampled_from(["additive", "soft"]),
    pairing=st.sampled_from(["all_to_all", "nearest"]),
    chain_kind=st.sampled_from(["plain", "clip", "scale_clip_delta", "modulate"]),
    k=st.sampled_from([1, 3, 15]),
    rate=st.sampled_from([0.05, 0.3]),
)
def test_on_block_equals_on_spikes_per_step_bitwise(
    engine, seed, bound, pairing, chain_kind, k, rate
) -> None:
    rule = _rule(bound, pairing, chain_kind)
    topo, w0, pre, post, mods, pruned = _case(seed, 7, 5, k, 4, rate)
    w_ref, before = _reference(rule, topo, w0, pre, post, mods, pruned, k)
    w_blk, reads = _blocks(rule, topo, w0, pre, post, mods, pruned, k, engine)
    assert torch.equal(w_blk, w_ref)
    # what each pre spike sends: its column's weights (ascending synapse index) before its step
    csc = topo.col_indices.numpy()
    for b0, upd in reads:
        want = [
            before[b0 + t][np.flatnonzero(csc == j)]
            for t in range(k)
            if b0 + t < pre.shape[0]
            for j in pre[b0 + t].nonzero().flatten().tolist()
        ]
        want_all = torch.cat(want).numpy() if want else np.zeros(0, np.float32)
        np.testing.assert_array_equal(upd.sent, want_all)


def test_on_block_rejects_bad_input() -> None:
    rule = pair_stdp(dt_ms=0.5)
    topo = CSR.from_dense_mask(torch.ones(3, 4, dtype=torch.bool))
    ev = event_driven(rule, topo, backend="events")
    w = torch.full((topo.nnz,), 0.5)
    st_ = ev.init(w)
    i64 = lambda *xs: torch.tensor(xs, dtype=torch.int64)
    with pytest.raises(ValueError, match="k must"):
        ev.on_block(0, 0, i64(), i64(), i64(), i64(), st_, w)
    with pytest.raises(ValueError, match="pre_t must lie"):
        ev.on_block(0, 2, i64(2), i64(0), i64(), i64(), st_, w)
    with pytest.raises(ValueError, match="post must lie"):
        ev.on_block(0, 2, i64(), i64(), i64(0), i64(3), st_, w)
    with pytest.raises(ValueError, match="time order"):
        ev.on_block(0, 3, i64(2, 1), i64(0, 1), i64(), i64(), st_, w)
    with pytest.raises(ValueError, match="weight"):
        ev.on_block(0, 2, i64(), i64(), i64(), i64(), st_, w.double())
    with pytest.raises(ValueError, match="engine"):
        ev.on_block(0, 2, i64(), i64(), i64(), i64(), st_, w, engine="fast")
    mod = event_driven(chain(pair_stdp(dt_ms=0.5), modulate()), topo, backend="events")
    with pytest.raises(ValueError, match="modulator is required"):
        mod.on_block(0, 2, i64(0), i64(0), i64(), i64(), mod.init(w), w)


def test_native_kernel_is_cached_and_can_be_disabled(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("NEURO_CACHE_DIR", str(tmp_path))
    native.reset()
    try:
        if native.load() is None:
            pytest.skip(native.status())
        built = list((tmp_path / "native").glob("stdp_block-*.so"))
        assert len(built) == 1
        assert not list((tmp_path / "native").glob("*.tmp"))
        monkeypatch.setenv("NEURO_NATIVE", "0")
        native.reset()
        assert native.load() is None
        assert "NEURO_NATIVE=0" in native.status()
        rule = pair_stdp(dt_ms=0.5)
        topo = CSR.from_dense_mask(torch.ones(2, 2, dtype=torch.bool))
        ev = event_driven(rule, topo, backend="events")
        w = torch.full((4,), 0.5)
        z = torch.zeros(1, dtype=torch.int64)
        with pytest.raises(ValueError, match="unavailable"):
            ev.on_block(0, 1, z, z, z, z, ev.init(w), w, engine="native")
    finally:
        monkeypatch.delenv("NEURO_NATIVE", raising=False)
        monkeypatch.delenv("NEURO_CACHE_DIR", raising=False)
        native.reset()


@pytest.mark.parametrize("engine", ENGINES)
def test_sent_weights_differ_from_block_start_when_a_block_changed_them(engine: str) -> None:
    rule = chain(pair_stdp(a_plus=0.2, a_minus=0.25, dt_ms=0.5), clip(w_min=0.0, w_max=1.0))
    topo, w0, pre, post, mods, pruned = _case(1, 7, 5, 15, 4, 0.3)
    _, reads = _blocks(rule, topo, w0, pre, post, mods, pruned, 15, engine)
    csc = topo.col_indices.numpy()
    first_block = reads[0][1].sent
    at_start = torch.cat(
        [w0[np.flatnonzero(csc == j)] for t in range(15) for j in pre[t].nonzero().flatten()]
    )
    # spikes after the block's first step send weights that earlier steps of it changed
    assert int((torch.from_numpy(first_block) != at_start).sum()) > 5


def test_event_rule_pickles_and_runs_the_same() -> None:
    import pickle

    rule = chain(pair_stdp(a_plus=0.2, a_minus=0.25, dt_ms=0.5), clip(w_min=0.0, w_max=1.0))
    topo, w0, pre, post, _, _ = _case(2, 7, 5, 5, 3, 0.3)
    ev = event_driven(rule, topo, backend="events")
    back = pickle.loads(pickle.dumps(ev))
    runs = []
    for hook in (ev, back):
        w = w0.clone()
        st_ = hook.init(w)
        for b0 in range(0, 15, 5):
            qt, q = pre[b0 : b0 + 5].nonzero(as_tuple=True)
            pt, p = post[b0 : b0 + 5].nonzero(as_tuple=True)
            st_ = hook.on_block(b0, 5, qt, q, pt, p, st_, w).state
        runs.append(w)
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], w0)
