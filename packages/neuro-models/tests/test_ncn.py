"""NCN model: published shapes, init, signal semantics, caching, generation, instruments."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_models.decoder import Block, SequenceContext
from neuro_models.ncn import (
    ControlConfig,
    NCNConfig,
    NCNModel,
    Signals,
    generate,
    intended_signal_values,
    modulated_attention_reference,
    plot_scan,
    published_config,
    scan,
    signal_statistics,
    signals_from_logits,
    token_response,
)
from neuro_models.ncn.model import decoder_config
from neuro_models.params import count_parameters
from neuro_objectives import homeostatic_penalty


def tiny(**kw: object) -> NCNConfig:
    base = dict(vocab_size=50, d_model=32, n_layers=3, n_heads=4, ffn_dim=48, max_seq_len=40,
                dropout=0.0, control=ControlConfig(hidden=16, heads=2))  # fmt: skip
    base.update(kw)
    return NCNConfig(**base)  # type: ignore[arg-type]


def build(seed: int = 0, **kw: object) -> NCNModel:
    torch.manual_seed(seed)
    return NCNModel(tiny(**kw)).eval()


def test_published_shapes_have_the_published_parameter_counts() -> None:
    """18,007,762 = transformer 17,726,464 + NCN 281,298 (reference-systems §4.2, from the
    published run's log); the Llama baseline at F = 768 has 17,980,928 (§4.4)."""
    with torch.device("meta"):
        ncn = NCNModel(
            published_config(control=ControlConfig(pooling="noncausal", init="published"))
        )
        bare = NCNModel(published_config(control=None))
        llama = NCNModel(published_config(control=None, backbone="llama", ffn_dim=768))
    assert count_parameters(ncn).total == 18_007_762
    assert ncn.control is not None
    assert sum(p.numel() for p in ncn.control.parameters()) == 281_298
    assert count_parameters(bare).total == 17_726_464
    assert count_parameters(llama).total == 17_980_928


def _zero_mlp_signals(init: str) -> Signals:
    m = build(control=ControlConfig(hidden=16, heads=2, init=init))  # type: ignore[arg-type]
    assert m.control is not None
    with torch.no_grad():
        m.control.fc2.weight.zero_()
    out = m.run(torch.randint(0, 50, (2, 9)))
    assert out.signals is not None
    return out.signals


def test_intended_init_gives_the_paper_set_points() -> None:
    s = _zero_mlp_signals("intended")
    torch.testing.assert_close(s.gain, torch.ones_like(s.gain))
    beta = math.log1p(math.exp(0.525)) + 0.01
    torch.testing.assert_close(s.precision, torch.full_like(s.precision, beta))
    assert abs(beta - 1.0) < 1e-3
    torch.testing.assert_close(s.gate, torch.full_like(s.gate, 1 / (1 + math.exp(-3))))
    assert intended_signal_values(ControlConfig()) == pytest.approx((1.0, beta, 0.9526), abs=1e-4)


def test_published_init_is_the_overwritten_one_and_matches_the_logged_regularizer() -> None:
    s = _zero_mlp_signals("published")
    torch.testing.assert_close(s.precision, torch.full_like(s.precision, math.log(2) + 0.01))
    torch.testing.assert_close(s.gate, torch.full_like(s.gate, 0.5))
    reg = float(homeostatic_penalty(s.as_dict(), weight=0.01).detach())
    assert 0.0033 <= reg <= 0.0035  # the published log: Reg 0.0033-0.0034 for the whole epoch


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-60, 60), min_size=3, max_size=3))
def test_signal_ranges(z: list[float]) -> None:
    s = signals_from_logits(torch.tensor(z, dtype=torch.float64).view(1, 1, 1, 3))
    assert 0.0 <= float(s.gain) <= 2.0
    assert 0.01 <= float(s.precision) <= 4.0
    assert 0.0 <= float(s.gate) <= 1.0


@pytest.mark.parametrize("pooling", ["causal", "noncausal"])
def test_salience_pooling_matches_torch_multihead_attention(pooling: str) -> None:
    """c_t equals nn.MultiheadAttention(q_sal, x_{≤t}) (causal) or over all x (non-causal)."""
    m = build(control=ControlConfig(hidden=16, heads=2, pooling=pooling))  # type: ignore[arg-type]
    assert m.control is not None
    pool = m.control.pool
    peer = nn.MultiheadAttention(32, 2, batch_first=True)
    with torch.no_grad():
        peer.in_proj_weight.copy_(pool.in_proj_weight)
        peer.in_proj_bias.copy_(torch.randn(96) * 0.1)
        pool.in_proj_bias.copy_(peer.in_proj_bias)
        peer.out_proj.weight.copy_(pool.out_proj.weight)
        peer.out_proj.bias.copy_(torch.randn(32) * 0.1)
        pool.out_proj.bias.copy_(peer.out_proj.bias)
    x = torch.randn(2, 7, 32)
    c, _ = pool(x)
    q = pool.query.view(1, 1, 32).expand(2, 1, 32)
    for t in range(7):
        keys = x[:, : t + 1] if pooling == "causal" else x
        want, _ = peer(q, keys, keys, need_weights=False)
        torch.testing.assert_close(c[:, t], want[:, 0], atol=1e-5, rtol=1e-5)


def block_of(cfg: NCNConfig) -> Block:
    return Block(decoder_config(cfg), 0).eval()


def whole(rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> SequenceContext:
    """The context of a whole unpadded sequence without a cache."""
    return SequenceContext(rope, None, True, None, 0, None)


@pytest.mark.parametrize("backbone", ["gpt2", "llama"])
def test_unit_signals_are_the_identity_modulation(backbone: str) -> None:
    block = block_of(tiny(backbone=backbone))
    x = torch.randn(2, 6, 32)
    rope = None
    if backbone == "llama":
        m = build(backbone="llama")
        rope = (m.rope_cos[:6][None, :, None], m.rope_sin[:6][None, :, None])
    ones = torch.ones(2, 6)
    modulated = block(x, whole(rope), gain=ones, precision=ones, gate=ones)
    plain = block(x, whole(rope))
    torch.testing.assert_close(modulated, plain)


def test_precision_is_an_inverse_temperature_on_the_query() -> None:
    """Block with β = c equals the unmodulated block whose W_q is multiplied by c."""
    block = block_of(tiny())
    x = torch.randn(2, 6, 32)
    modulated = block(x, whole(), precision=torch.full((2, 6), 2.5))
    with torch.no_grad():
        block.attn.qkv.weight[:32] *= 2.5
    plain = block(x, whole())
    torch.testing.assert_close(modulated, plain, atol=1e-5, rtol=1e-5)


def test_gain_and_gate_scale_the_sublayer_outputs() -> None:
    """x + g·Attn(norm x) then h + g·γ·FFN(norm h), assembled from the block's own parts."""
    block = block_of(tiny())
    x = torch.randn(2, 5, 32)
    g, gam = torch.rand(2, 5) * 2, torch.rand(2, 5)
    got = block(x, whole(), gain=g, gate=gam)
    a = block.attn(block.attn_norm(x), whole())
    h = x + g[..., None] * a
    want = h + (g * gam)[..., None] * block.mlp(block.mlp_norm(h))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_reference_attention_matches_the_neuro_attention_op() -> None:
    op = pytest.importorskip("neuro_attention.ops").modulated_attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 9, 4, 8, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))  # fmt: skip
    beta = (torch.rand(2, 9, generator=g, dtype=torch.float64) * 3 + 0.1).requires_grad_()
    gain = (torch.rand(2, 9, generator=g, dtype=torch.float64) * 2).requires_grad_()
    ours = modulated_attention_reference(q, k, v, beta, gain)
    theirs = op(q, k, v, causal=True, query_scale=beta[..., None].expand(2, 9, 4),
                head_gain=gain[..., None].expand(2, 9, 4), backend="reference")  # fmt: skip
    torch.testing.assert_close(ours, theirs)
    up = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad((ours * up).sum(), (q, k, v, beta, gain))
    gb = torch.autograd.grad((theirs * up).sum(), (q, k, v, beta, gain))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backbone", ["gpt2", "llama"])
@pytest.mark.parametrize("control", [True, False])
def test_cached_chunks_equal_the_full_forward(backbone: str, control: bool) -> None:
    cfg = {} if control else {"control": None}
    m = build(backbone=backbone, **cfg)
    x = torch.randint(0, 50, (2, 13))
    full = m.run(x)
    cache = m.empty_cache(2)
    logits, signals = [], []
    for lo, hi in [(0, 5), (5, 6), (6, 7), (7, 13)]:
        out = m.run(x[:, lo:hi], cache=cache)
        cache = out.cache
        logits.append(out.logits)
        signals.append(out.signals)
    assert cache is not None
    assert cache.length == 13
    torch.testing.assert_close(torch.cat(logits, 1), full.logits, atol=1e-5, rtol=1e-5)
    if control:
        assert full.signals is not None
        gains = torch.cat([s.gain for s in signals if s is not None], 1)
        torch.testing.assert_close(gains, full.signals.gain, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("pooling", ["causal", "noncausal"])
def test_only_noncausal_pooling_lets_the_future_move_past_signals(pooling: str) -> None:
    m = build(control=ControlConfig(hidden=16, heads=2, pooling=pooling))  # type: ignore[arg-type]
    x = torch.randint(0, 50, (1, 10))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 7) % 50
    with torch.no_grad():
        sx, sy = m.run(x).signals, m.run(y).signals
    assert sx is not None
    assert sy is not None
    moved = float((sx.precision[:, :6] - sy.precision[:, :6]).abs().max())
    if pooling == "causal":
        assert moved == 0.0
    else:
        assert moved > 1e-6


@pytest.mark.parametrize("backbone", ["gpt2", "llama"])
def test_cached_generation_equals_recomputing_the_prefix(backbone: str) -> None:
    m = build(backbone=backbone)
    prompt = torch.randint(0, 50, (2, 4))
    fast = generate(m, prompt, 12, temperature=0)
    slow = generate(m, prompt, 12, temperature=0, use_cache=False)
    assert torch.equal(fast, slow)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = generate(m, prompt, 8, temperature=1.0, top_k=5, generator=g1)
    b = generate(m, prompt, 8, temperature=1.0, top_k=5, generator=g2, use_cache=False)
    assert torch.equal(a, b)


def test_training_reduces_the_loss_and_reaches_the_control_network() -> None:
    torch.manual_seed(0)
    m = NCNModel(tiny()).train()
    data = torch.arange(40).remainder(7).view(1, 40).repeat(4, 1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = last = 0.0
    for step in range(40):
        out = m.run(data[:, :-1])
        assert out.signals is not None
        lm = nn.functional.cross_entropy(out.logits.reshape(-1, 50), data[:, 1:].reshape(-1))
        loss = lm + homeostatic_penalty(out.signals.as_dict())
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert m.control is not None
            assert m.control.pool.query.grad is not None
            assert float(m.control.fc1.weight.grad.abs().sum()) > 0  # type: ignore[union-attr]
            first = lm.item()
        opt.step()
        last = lm.item()
    assert last < 0.2 * first


def test_signal_statistics_decompose_the_variance() -> None:
    g = torch.Generator().manual_seed(0)
    s = Signals(*(torch.rand(4, 9, 3, generator=g, dtype=torch.float64) for _ in range(3)))
    stats = signal_statistics(s, gate_threshold=0.3)
    for name, t in zip(("gain", "precision", "gate"), s):
        total = t.permute(2, 0, 1).reshape(3, -1).var(dim=1, unbiased=False)
        within = torch.tensor(stats[name]["var_within"], dtype=torch.float64)
        between = torch.tensor(stats[name]["var_between"], dtype=torch.float64)
        torch.testing.assert_close(within + between, total)
        assert stats[name]["mean"] == pytest.approx(t.mean(dim=(0, 1)).tolist())
    assert stats["gate_below"] == pytest.approx(float((s.gate < 0.3).double().mean()))
    # a tonic signal (constant within each sequence) has no within-sequence variance
    tonic = Signals(*(torch.arange(4.0).view(4, 1, 1).expand(4, 9, 2) for _ in range(3)))
    st_ = signal_statistics(tonic)
    assert st_["gain"]["var_within"] == pytest.approx([0.0, 0.0])
    assert st_["gain"]["var_between"] == pytest.approx([1.25, 1.25])


def test_token_response_flags_the_odd_position() -> None:
    s = torch.zeros(8, 2)
    s[:, 1] = torch.arange(8.0) % 2
    s[5, 0] = 3.0
    r = token_response(s, 5)
    assert float(r[0]) > 100  # rest has zero spread: clamped std
    assert float(r[1]) == pytest.approx((1 - 3 / 7) / math.sqrt(3 / 7 * 4 / 7))


def test_scan_is_the_unmodified_forward_and_plots(tmp_path: object) -> None:
    pytest.importorskip("matplotlib")
    m = build()
    m.train()
    tokens = torch.randint(0, 50, (11,))
    s = scan(m, tokens)
    assert m.training  # restored
    ref = m.eval().run(tokens[None]).signals
    assert ref is not None
    torch.testing.assert_close(s.gate, ref.gate[0])
    path = f"{tmp_path}/scan.png"
    plot_scan(s, [f"t{i}" for i in range(11)], path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        tiny(n_heads=5)
    with pytest.raises(ValueError, match="rope_theta"):
        tiny(rope_theta=1e4)
    with pytest.raises(ValueError, match="pooling"):
        ControlConfig(pooling="bidirectional")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision_max"):
        ControlConfig(precision_max=0.001)
    with pytest.raises(ValueError, match="dropout"):
        tiny(dropout=1.0)
    m = build()
    with pytest.raises(ValueError, match="tokens"):
        m(torch.full((1, 3), 50))
    with pytest.raises(ValueError, match="tokens"):
        m(torch.zeros(1, 41, dtype=torch.long))
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, torch.zeros(1, 30, dtype=torch.long), 20)
    with pytest.raises(ValueError, match="control"):
        scan(build(control=None), torch.zeros(4, dtype=torch.long))
