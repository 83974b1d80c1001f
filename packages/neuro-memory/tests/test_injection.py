"""Write path + injection: numpy per-token references, the causal rule, contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_memory import (
    EpisodicParams,
    InjectionParams,
    MemoryInjection,
    MemoryWriter,
    MemoryWrites,
    WriteParams,
    concat_writes,
    init_state,
    segment_pool,
    visibility,
    write,
    writes_from_state,
)

C, DK, DV = 8, 6, 5


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 20), s=st.integers(1, 25), pooling=st.sampled_from(["mean", "last"]))
def test_segment_pool_matches_loops(t, s, pooling):
    h = torch.randn(2, t, 3, dtype=torch.float64)
    u, pos = segment_pool(h, s, pooling)
    segments = [list(range(lo, min(lo + s, t))) for lo in range(0, t, s)]
    assert pos.tolist() == [seg[-1] for seg in segments]
    for m, seg in enumerate(segments):
        ref = h[:, seg].mean(1) if pooling == "mean" else h[:, seg[-1]]
        torch.testing.assert_close(u[:, m], ref)


def test_visibility_rule():
    pos = torch.tensor([[-1, 0, 3, 7], [2, 2, -1, 9]])
    vis = visibility(pos, 8)
    for b in range(2):
        for t in range(8):
            for m in range(4):
                assert bool(vis[b, t, m]) == (int(pos[b, m]) < t)


def _memory(gen: torch.Generator, b: int, t: int) -> MemoryWrites:
    """Prior memories plus in-sequence writes at assorted positions (some strength 0)."""
    m = 7
    pos = torch.tensor([-1, -1, 0, 2, 2, t // 2, t - 1])
    strength = torch.rand(b, m, generator=gen, dtype=torch.float64) + 0.1
    strength[:, 3] = 0.0
    return MemoryWrites(
        keys=torch.randn(b, m, DK, generator=gen, dtype=torch.float64),
        values=torch.randn(b, m, DV, generator=gen, dtype=torch.float64),
        positions=pos.expand(b, m).clone(),
        strength=strength,
    )


def _w(lin: nn.Linear) -> np.ndarray:
    return lin.weight.detach().numpy()


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


def _reference(layer: MemoryInjection, x: np.ndarray, mem: MemoryWrites) -> np.ndarray:
    """Per batch item, per token, a loop over the visible memories only."""
    p = layer.params
    keys, vals = mem.keys.numpy(), mem.values.numpy()
    pos, strength = mem.positions.numpy(), mem.strength.numpy()
    b, t, c = x.shape
    y = x.copy()
    for bi in range(b):
        for ti in range(t):
            h = x[bi].mean(0) if p.query == "sequence_mean" else x[bi, ti]
            vis = [
                m
                for m in range(len(pos[bi]))
                if (pos[bi, m] < ti or p.query == "sequence_mean") and strength[bi, m] > 0
            ]
            if not vis:
                continue
            xt = x[bi, ti]
            if p.mode == "cross_attention":
                dh = c // p.heads
                q, out = _w(layer.query) @ h, []
                for hd in range(p.heads):
                    sl = slice(hd * dh, (hd + 1) * dh)
                    logit = np.array(
                        [
                            q[sl] @ (_w(layer.key) @ keys[bi, m])[sl] / np.sqrt(dh)
                            + np.log(strength[bi, m])
                            for m in vis
                        ]
                    )
                    a = _softmax(logit)
                    out.append(
                        sum(a[j] * (_w(layer.value) @ vals[bi, m])[sl] for j, m in enumerate(vis))
                    )
                y[bi, ti] = xt + _w(layer.out) @ np.concatenate(out)
                continue
            q = _w(layer.query) @ h
            q = q / np.linalg.norm(q)
            score = {
                m: q @ keys[bi, m] / np.linalg.norm(keys[bi, m]) * strength[bi, m] for m in vis
            }
            best = sorted(vis, key=lambda m: -score[m])[: p.k]
            w = _softmax(np.array([score[m] for m in best]) / p.temperature)
            mt = _w(layer.out) @ sum(w[j] * vals[bi, m] for j, m in enumerate(best))
            z = _w(layer.mix) @ np.concatenate([xt, mt])
            if p.mode == "gate":
                y[bi, ti] = xt + _sigmoid(z + layer.mix.bias.detach().numpy()) * mt
            else:
                y[bi, ti] = xt + z
    return y


@pytest.mark.parametrize("mode", ["gate", "cross_attention", "concat"])
@pytest.mark.parametrize("query", ["token", "sequence_mean"])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_matches_numpy_reference(mode, query, k):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    params = InjectionParams(mode=mode, k=k, heads=2, query=query)  # type: ignore[arg-type]
    layer = MemoryInjection(C, DK, DV, params).double()
    x = torch.randn(2, 6, C, generator=gen, dtype=torch.float64)
    mem = _memory(gen, 2, 6)
    got = layer(x, mem).detach().numpy()
    np.testing.assert_allclose(got, _reference(layer, x.numpy(), mem), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["gate", "cross_attention", "concat"])
def test_nothing_visible_is_identity_and_grads_finite(mode):
    """Position 0 sees no in-sequence write; strength-0 memories are never read."""
    layer = MemoryInjection(C, DK, DV, InjectionParams(mode=mode, heads=2))  # type: ignore[arg-type]
    x = torch.randn(2, 5, C, requires_grad=True)
    mem = MemoryWrites(
        keys=torch.randn(2, 3, DK),
        values=torch.randn(2, 3, DV),
        positions=torch.tensor([[0, 1, -1]]).expand(2, 3),
        strength=torch.tensor([[1.0, 1.0, 0.0]]).expand(2, 3),
    )
    y = layer(x, mem)
    torch.testing.assert_close(y[:, 0], x[:, 0])
    assert not torch.equal(y[:, 2], x[:, 2])
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    for prm in layer.parameters():
        assert prm.grad is None or torch.isfinite(prm.grad).all()
    empty = MemoryWrites(
        torch.zeros(2, 0, DK),
        torch.zeros(2, 0, DV),
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0),
    )
    torch.testing.assert_close(layer(x, empty), x)


class _ReadWrite(nn.Module):
    """What a model does: write from its own hidden states, read the prior bank + those writes."""

    def __init__(self, mode: str, query: str = "token", stride: int = 3, k: int = 2) -> None:
        super().__init__()
        self.writer = MemoryWriter(C, DK, DV, WriteParams(stride=stride))
        self.inject = MemoryInjection(
            C,
            DK,
            DV,
            InjectionParams(mode=mode, heads=2, k=k, query=query),  # type: ignore[arg-type]
        )
        params = EpisodicParams(capacity=4)
        gen = torch.Generator().manual_seed(9)
        self.prior = write(
            init_state(params, DK, DV),
            torch.randn(3, DK, generator=gen),
            torch.randn(3, DV, generator=gen),
            params,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        own = self.writer(x, importance=torch.sigmoid(x[..., 0]))
        return self.inject(x, concat_writes(writes_from_state(self.prior, x.shape[0]), own))


def _spec(mode: str, query: str = "token", **kw: object) -> ContractSpec:
    return ContractSpec(
        name=f"neuro_memory.MemoryInjection[{mode},{query}]",
        build=lambda: _ReadWrite(mode, query),
        make_input=lambda g, b, t: torch.randn(b, t, C, generator=g),
        **kw,  # type: ignore[arg-type]
    )


SPECS = [
    register(_spec("gate")),
    register(_spec("cross_attention")),
    register(_spec("concat")),
    # The published whole-sequence query: the causality contract must catch the leak.
    register(_spec("gate", "sequence_mean", expect_fail=frozenset({"causality"}))),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


@pytest.mark.parametrize("mode", ["gate", "cross_attention", "concat"])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_output_at_t_has_no_gradient_from_later_inputs(mode, stride):
    """∂y_t/∂x_s = 0 for every s > t, and the memory path does carry gradient from s < t."""
    torch.manual_seed(0)
    model = _ReadWrite(mode, stride=stride, k=20).double()
    x = torch.randn(2, 9, C, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: model(z)[0], x)  # [T, C, B, T, C]
    per = jac[:, :, 0].abs().sum(dim=(1, 3))  # [t, s]
    t_idx = torch.arange(9)
    assert (per[t_idx[:, None] < t_idx[None, :]] == 0).all()
    # Every token t ≥ s reads the write stamped at s − 1 (made from x_0 … x_{s−1}).
    assert (per[stride:, 0] > 0).all()


def test_writer_strength_is_segment_mean_importance():
    writer = MemoryWriter(C, DK, DV, WriteParams(stride=2, pooling="last"))
    x = torch.randn(1, 5, C)
    imp = torch.tensor([[0.2, 0.4, 1.0, 0.0, 0.6]])
    w = writer(x, importance=imp)
    torch.testing.assert_close(w.strength, torch.tensor([[0.3, 0.5, 0.6]]))
    assert w.positions.tolist() == [[1, 3, 4]]
    torch.testing.assert_close(w.keys, writer.key(x[:, [1, 3, 4]]))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, mem: m(torch.randn(2, 4, C + 1), mem), "x"),
        (lambda m, mem: m(torch.randn(3, 4, C), mem), "memory.keys"),
        (
            lambda m, mem: m(torch.randn(2, 4, C), mem._replace(values=torch.randn(2, 3, DK))),
            "memory.values",
        ),
        (
            lambda m, mem: m(torch.randn(2, 4, C), mem._replace(positions=torch.zeros(2, 3))),
            "memory.positions",
        ),
        (
            lambda m, mem: m(torch.randn(2, 4, C), mem._replace(strength=torch.ones(2, 2))),
            "memory.strength",
        ),
        (lambda m, mem: m(torch.randn(2, 4, C), (1, 2)), "memory"),
    ],
)
def test_validation(call, match):
    layer = MemoryInjection(C, DK, DV)
    mem = MemoryWrites(
        torch.randn(2, 3, DK),
        torch.randn(2, 3, DV),
        torch.zeros(2, 3, dtype=torch.long),
        torch.ones(2, 3),
    )
    with pytest.raises(ValueError, match=match):
        call(layer, mem)


def test_params_validation():
    with pytest.raises(ValueError, match="mode"):
        InjectionParams(mode="add")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heads"):
        MemoryInjection(C, DK, DV, InjectionParams(mode="cross_attention", heads=3))
    with pytest.raises(ValueError, match="stride"):
        WriteParams(stride=0)
    with pytest.raises(ValueError, match="importance"):
        MemoryWriter(C, DK, DV)(torch.randn(1, 3, C), importance=-torch.ones(1, 3))


@pytest.mark.parametrize("mode", ["gate", "cross_attention", "concat"])
def test_gradcheck(mode):
    """float64 gradcheck w.r.t. the hidden states and the memory keys, values and strengths."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    layer = MemoryInjection(C, DK, DV, InjectionParams(mode=mode, heads=2, k=3)).double()  # type: ignore[arg-type]
    x = torch.randn(2, 5, C, generator=gen, dtype=torch.float64, requires_grad=True)
    mem = _memory(gen, 2, 5)
    keys, values = mem.keys.requires_grad_(), mem.values.requires_grad_()
    # Strength 0 is a boundary (masked for s ≤ 0, weight ∝ s above): check away from it.
    strength = (mem.strength + 0.2).requires_grad_()

    def f(x, keys, values, strength):
        return layer(x, MemoryWrites(keys, values, mem.positions, strength))

    assert torch.autograd.gradcheck(f, (x, keys, values, strength))


def test_writer_gradcheck():
    writer = MemoryWriter(C, DK, DV, WriteParams(stride=3)).double()
    x = torch.randn(2, 7, C, dtype=torch.float64, requires_grad=True)
    imp = torch.rand(2, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: tuple(writer(a, b))[::3], (x, imp))
