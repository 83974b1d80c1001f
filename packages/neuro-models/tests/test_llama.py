"""The Llama baseline against an independent, loop-based reference, plus config validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_models.config import LlamaConfig, swiglu_hidden
from neuro_models.llama import Block, KVCache, Llama
from neuro_models.params import tiny


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny matmuls gain nothing from threads; on a shared 2-core machine, OpenMP barriers waiting
    # for descheduled threads made each of them cost tens of milliseconds.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


BASE = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40)


def naive_llama(model: Llama, tokens: torch.Tensor) -> torch.Tensor:
    """Llama written from the equations with explicit loops (no SDPA, no fused tensors reused).

    RoPE: in each head, the pair (i, i + d_h/2) at position p is rotated by the angle
    p · θ^(-2i/d_h). Attention: softmax(q·k/√d_h) over keys j ≤ t; key/value head of query head
    h is h // (H/KV).
    """
    c = model.config
    H, KV, dh = c.n_heads, c.n_kv_heads, c.head_dim
    B, T = tokens.shape

    def rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + c.norm_eps) * w

    def rope(x: torch.Tensor) -> torch.Tensor:  # x [T, dh]
        out = x.clone()
        half = dh // 2
        for p in range(x.shape[0]):
            a = p * c.rope_theta ** (-2 * torch.arange(half, dtype=torch.float64) / dh)
            x1, x2 = x[p, :half], x[p, half:]
            out[p, :half] = x1 * a.cos() - x2 * a.sin()
            out[p, half:] = x2 * a.cos() + x1 * a.sin()
        return out

    x = model.embed.weight[tokens].double()
    for block in model.layers:
        assert isinstance(block, Block)
        wq, wk, wv = block.attn.qkv.weight.double().split([H * dh, KV * dh, KV * dh])
        h = rms(x, block.attn_norm.weight.double())
        attn = torch.zeros(B, T, H * dh, dtype=torch.float64)
        for b in range(B):
            q, k, v = h[b] @ wq.T, h[b] @ wk.T, h[b] @ wv.T
            for head in range(H):
                kv = head // (H // KV)
                qh = rope(q[:, head * dh : (head + 1) * dh])
                kh = rope(k[:, kv * dh : (kv + 1) * dh])
                vh = v[:, kv * dh : (kv + 1) * dh]
                scores = qh @ kh.T / math.sqrt(dh)
                scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
                attn[b, :, head * dh : (head + 1) * dh] = scores.softmax(-1) @ vh
        x = x + attn @ block.attn.out.weight.double().T
        h = rms(x, block.mlp_norm.weight.double())
        gate, up = block.mlp.gate_up.weight.double().chunk(2)
        x = (
            x
            + (torch.nn.functional.silu(h @ gate.T) * (h @ up.T)) @ block.mlp.down.weight.double().T
        )
    return rms(x, model.norm.weight.double()) @ model.lm_head.weight.double().T


def _randomize_norms(model: Llama) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("tie", [True, False])
def test_matches_naive_reference(n_kv_heads: int, tie: bool) -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(**{**BASE, "n_kv_heads": n_kv_heads, "tie_embeddings": tie, "init_std": 0.2})
    model = Llama(cfg).eval()
    _randomize_norms(model)
    tokens = torch.randint(0, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        got = model(tokens)
    torch.testing.assert_close(got.double(), naive_llama(model, tokens), atol=2e-5, rtol=1e-4)


def test_tied_and_untied_parameters() -> None:
    tied = Llama(LlamaConfig(**BASE))
    untied = Llama(LlamaConfig(**BASE, tie_embeddings=False))
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.lm_head.weight is not untied.embed.weight
    assert all(not name.endswith("bias") for name, _ in untied.named_parameters())


def test_init_statistics() -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=2048, d_model=256, n_layers=8, n_heads=4, n_kv_heads=4, ffn_dim=512
    )
    model = Llama(cfg).requires_grad_(False)
    resid = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_parameters():
        if "norm" in name:
            assert torch.equal(p, torch.ones_like(p)), name
            continue
        want = resid if name.endswith(("attn.out.weight", "mlp.down.weight")) else 0.02
        assert abs(float(p.mean())) < 4 * want / math.sqrt(p.numel()), name
        assert float(p.std()) == pytest.approx(want, rel=0.03), name


def test_blocks_are_plain_modules_in_a_module_list() -> None:
    model = Llama(tiny())
    assert isinstance(model.layers, torch.nn.ModuleList)
    assert [type(b) for b in model.layers] == [Block] * model.config.n_layers


@settings(max_examples=6, deadline=None)
@given(split=st.lists(st.integers(1, 5), min_size=1, max_size=4), n_kv=st.sampled_from([1, 2, 4]))
def test_cache_chunks_equal_full_sequence(split: list[int], n_kv: int) -> None:
    torch.manual_seed(1)
    model = Llama(LlamaConfig(**{**BASE, "n_kv_heads": n_kv})).eval()
    T = sum(split)
    tokens = torch.randint(0, 50, (3, T))
    cache = KVCache(model.config, 3, T + 2)
    parts, start = [], 0
    with torch.no_grad():
        full = model(tokens)
        for n in split:
            parts.append(model(tokens[:, start : start + n], cache=cache))
            start += n
    assert cache.length == T
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_matches_unpadded_rows() -> None:
    torch.manual_seed(2)
    model = Llama(LlamaConfig(**BASE)).eval()
    rows = [torch.randint(0, 50, (n,)) for n in (7, 3, 5)]
    tokens = torch.zeros(3, 7, dtype=torch.long)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, 7 - len(r) :], mask[i, 7 - len(r) :] = r, True
    nxt = torch.randint(0, 50, (3, 2))
    with torch.no_grad():
        padded = model(tokens, attention_mask=mask)
        cache = KVCache(model.config, 3, 10)
        model(tokens[:, :4], cache=cache, attention_mask=mask[:, :4])
        model(tokens[:, 4:], cache=cache, attention_mask=mask[:, 4:])
        step = model(nxt, cache=cache)
        for i, r in enumerate(rows):
            alone = model(torch.cat([r, nxt[i]])[None])
            torch.testing.assert_close(
                padded[i, 7 - len(r) :], alone[0, : len(r)], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(step[i], alone[0, len(r) :], atol=1e-5, rtol=0)
        assert torch.isfinite(padded).all()


def test_bf16_autocast_close_to_fp32() -> None:
    torch.manual_seed(3)
    model = Llama(tiny()).eval()
    tokens = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        ref = model(tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(tokens)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(4)
    model = Llama(tiny())
    tokens = torch.randint(0, 256, (2, 8))
    model(tokens).logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert float(p.grad.abs().sum()) > 0, name


def test_sequence_longer_than_max_seq_len_raises() -> None:
    model = Llama(tiny())
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 129, dtype=torch.long))
    cache = KVCache(model.config, 1, 4)
    model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="capacity"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        (torch.zeros(2, 3), "tokens"),
        (torch.zeros(3, dtype=torch.long), "tokens"),
        (torch.full((1, 3), 256), r"tokens must lie in \[0, 256\)"),
        (torch.full((1, 3), -1), "tokens must lie"),
    ],
)
def test_bad_tokens_raise(tokens: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Llama(tiny())(tokens)


def test_bad_mask_and_cache_raise() -> None:
    model = Llama(tiny())
    x = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="cache"):
        model(x, cache=KVCache(model.config, 3, 8))
    with pytest.raises(ValueError, match="capacity"):
        KVCache(model.config, 1, 1000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 0),
        ("d_model", -4),
        ("n_layers", 1.5),
        ("n_heads", 5),  # 32 % 5 != 0
        ("n_kv_heads", 3),  # 4 % 3 != 0
        ("ffn_dim", 0),
        ("rope_theta", 0.0),
        ("norm_eps", float("nan")),
        ("init_std", -0.1),
        ("max_seq_len", 0),
        ("tie_embeddings", 1),
    ],
)
def test_config_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        LlamaConfig(**{**BASE, field: value})


def test_config_odd_head_dim_rejected() -> None:
    with pytest.raises(ValueError, match="even"):
        LlamaConfig(**{**BASE, "d_model": 12, "n_heads": 4, "n_kv_heads": 4})


def test_config_dict_round_trip_and_unknown_keys() -> None:
    cfg = LlamaConfig(**BASE, rope_theta=5e5)
    assert LlamaConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="dropout"):
        LlamaConfig.from_dict({**cfg.to_dict(), "dropout": 0.1})
    assert cfg.replace(ffn_dim=48).ffn_dim == 48
    with pytest.raises(ValueError, match="ffn_dim"):
        cfg.replace(ffn_dim=-1)


@pytest.mark.parametrize(("d", "want"), [(256, 680), (512, 1360), (128, 336), (4096, 10920)])
def test_swiglu_hidden(d: int, want: int) -> None:
    # floor(8d/3) rounded down to a multiple of 8, computed by hand.
    assert swiglu_hidden(d) == want


def test_gqa_fallback_for_torch_without_enable_gqa(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch 2.4 has no SDPA enable_gqa; the model then repeats the key/value heads itself.
    import neuro_models.decoder.parts as parts_module

    torch.manual_seed(5)
    model = Llama(LlamaConfig(**BASE)).eval()
    tokens = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        native = model(tokens)
        monkeypatch.setattr(parts_module, "_SDPA_GQA", False)
        fallback = model(tokens)
    torch.testing.assert_close(fallback, native, atol=1e-6, rtol=1e-5)
