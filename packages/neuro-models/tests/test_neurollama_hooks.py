"""Inference-time hooks on a trained decoder: off equals the model, each hook equals an
independent computation, and every hook keeps the contracts."""

import pytest
import torch

from neuro_core.testing import ContractSpec, check_contract
from neuro_models import Llama, LlamaConfig
from neuro_models.neurollama.hooks import HookConfig, HookedAttention, apply_hooks

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = LlamaConfig(vocab_size=41, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40,
                  max_seq_len=32)  # fmt: skip


def _model(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    m = Llama(CFG).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    return m


def test_no_hook_is_the_model() -> None:
    m = _model()
    x = torch.randint(0, 41, (2, 12))
    torch.testing.assert_close(apply_hooks(m, HookConfig())(x), m(x), atol=1e-5, rtol=1e-5)


def test_habituation_equals_the_fused_op_with_the_key_bias() -> None:
    from neuro_attention import HabituatingAttention
    from neuro_attention.ops import modulated_attention
    from neuro_models.decoder.functional import apply_rope

    m = _model(1)
    hooked = apply_hooks(m, HookConfig(habituation=True))
    x = torch.randn(2, 10, 32)
    ctx, _ = m._layout(2, 10, 0, None, None, x.device)
    attn = m.layers[0].attn
    got = hooked.layers[0].attn(x, ctx)
    q, k, v = attn.qkv(x).view(2, 10, 8, 8).split([4, 2, 2], dim=2)
    bias, _ = HabituatingAttention().key_bias(k)
    cos, sin = ctx.rope  # type: ignore[misc]
    q, kr = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    want = attn.out(
        modulated_attention(q, kr, v, key_bias=bias, backend="reference").reshape(2, 10, 32)
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, attn(x, ctx), atol=1e-4)


def test_adaptive_temperature_and_voting_follow_their_formulas() -> None:
    m = _model(2)
    x = torch.randn(1, 9, 32)
    ctx, _ = m._layout(1, 9, 0, None, None, x.device)
    base = m.layers[0].attn
    hooked = HookedAttention(base, HookConfig(adaptive_temperature=True, entropy_voting=True))
    q, k, v = base.qkv(x).view(1, 9, 8, 8).split([4, 2, 2], dim=2)
    from neuro_models.decoder.functional import apply_rope

    cos, sin = ctx.rope  # type: ignore[misc]
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    out = torch.zeros(1, 9, 4, 8)
    ent = torch.zeros(4, 9)
    logits = {}
    for h in range(4):  # loop reference, one query at a time
        for i in range(9):
            s = torch.stack([q[0, i, h] @ k[0, j, h // 2] for j in range(i + 1)]) / 8**0.5
            p = s.softmax(0)
            ent[h, i] = -(p * p.log()).sum()
            logits[h, i] = s
    # std clamped at 1e-6: at position 0 every head has entropy 0
    temp = (1 + 0.5 * (ent - ent.mean(0)) / ent.std(0).clamp_min(1e-6)).clamp(0.5, 2.0)
    ent2 = torch.zeros(4, 9)
    for h in range(4):
        for i in range(9):
            p = (logits[h, i] / temp[h, i]).softmax(0)
            ent2[h, i] = -(p * p.log()).sum()
            out[0, i, h] = p @ v[0, : i + 1, h // 2]
    w = (-ent2).softmax(0)  # [4, 9]
    out = out * (4 * w.T)[None, :, :, None]
    want = base.out(out.reshape(1, 9, 32))
    torch.testing.assert_close(hooked(x, ctx), want, atol=1e-5, rtol=1e-5)


def _tokens(g: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, 41, (b, t), generator=g)


HOOKS = {
    "habituation": HookConfig(habituation=True),
    "hebbian": HookConfig(hebbian_strength=0.1),
    "temperature": HookConfig(adaptive_temperature=True),
    "voting": HookConfig(entropy_voting=True),
}


@pytest.mark.parametrize("name", sorted(HOOKS))
@pytest.mark.parametrize("contract", ["causality", "batch_independence", "call_independence"])
def test_hooks_keep_the_contracts(name: str, contract: str) -> None:
    spec = ContractSpec(name=f"hook[{name}]", build=lambda: apply_hooks(_model(3), HOOKS[name]),
                        make_input=_tokens)  # fmt: skip
    check_contract(spec, contract)


def test_hebbian_hook_changes_the_output_and_off_does_not() -> None:
    m = _model(4)
    x = torch.randint(0, 41, (1, 16))
    assert not torch.allclose(apply_hooks(m, HookConfig(hebbian_strength=0.5))(x), m(x), atol=1e-4)
    torch.testing.assert_close(
        apply_hooks(m, HookConfig(hebbian_strength=0.0))(x), m(x), atol=1e-5, rtol=1e-5
    )
