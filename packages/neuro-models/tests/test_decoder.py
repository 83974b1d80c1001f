"""The one decoder: Llama and NCN as configurations of it, against a forward pass written out here
from the equations; parts, registry, cache, padding, and the component-package adapters."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from neuro_core.testing import ContractSpec, check_contract
from neuro_models import Llama, LlamaConfig
from neuro_models.decoder import Decoder, DecoderConfig, Part, register_mixer, registered
from neuro_models.generate import SamplingConfig, generate
from neuro_models.ncn import ControlConfig, NCNConfig, NCNModel

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- an independent reference


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate pairs (i, i + D/2) of x [B, T, H, D] by pos·θ^(−2i/D)."""
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos.double()[:, None] * inv[None]  # [T, D/2]
    cos, sin = ang.cos()[None, :, None].to(x.dtype), ang.sin()[None, :, None].to(x.dtype)
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


def _softmax_attend(q, k, v, allowed):  # type: ignore[no-untyped-def]
    """q [B, Hq, T, D], k/v [B, Hq, S, D], allowed [.., T, S] -> [B, Hq, T, D]."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return s.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def reference_logits(sd: dict[str, torch.Tensor], c: NCNConfig | LlamaConfig, tokens):  # type: ignore[no-untyped-def]
    """Logits of a Llama or an NCN model written from the equations, reading only ``sd``."""
    sd = {k: v.double() for k, v in sd.items()}
    ncn = isinstance(c, NCNConfig)
    llama_backbone = not ncn or c.backbone == "llama"
    eps, H = c.norm_eps, c.n_heads
    kv = c.n_kv_heads if not ncn else H
    hd, L, (B, T) = c.d_model // H, c.n_layers, tokens.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = sd["embed.weight"][tokens]
    if ncn and c.backbone == "gpt2":
        x = x + sd["pos.weight"][:T]
    gain = precision = gate = None
    if ncn and c.control is not None:
        p = "modulator.pool."
        d, ph = c.d_model, c.control.heads
        wq, wk, wv = sd[p + "in_proj_weight"].split(d)
        bq, bk, bv = sd[p + "in_proj_bias"].split(d)
        q = (sd[p + "query"] @ wq.T + bq).view(1, ph, 1, d // ph).expand(B, ph, T, d // ph)
        k = (x @ wk.T + bk).view(B, T, ph, d // ph).transpose(1, 2)
        v = (x @ wv.T + bv).view(B, T, ph, d // ph).transpose(1, 2)
        allowed = causal if c.control.pooling == "causal" else torch.ones(T, T, dtype=torch.bool)
        pooled = _softmax_attend(q, k, v, allowed).transpose(1, 2).reshape(B, T, d)
        pooled = pooled @ sd[p + "out_proj.weight"].T + sd[p + "out_proj.bias"]
        u = _rms(pooled + x, sd["modulator.norm.weight"], eps)
        hid = torch.tanh(u @ sd["modulator.fc1.weight"].T + sd["modulator.fc1.bias"])
        z = (hid @ sd["modulator.fc2.weight"].T + sd["modulator.fc2.bias"]).view(B, T, L, 3)
        gain = 2 * torch.sigmoid(z[..., 0])
        precision = (F.softplus(z[..., 1]) + c.control.precision_floor).clamp(
            max=c.control.precision_max
        )
        gate = torch.sigmoid(z[..., 2])
    theta = (c.theta if ncn else c.rope_theta) if llama_backbone else None
    for layer in range(L):
        p = f"layers.{layer}."
        h = _rms(x, sd[p + "attn_norm.weight"], eps)
        qkv = h @ sd[p + "attn.qkv.weight"].T
        q, k, v = qkv.split([H * hd, kv * hd, kv * hd], -1)
        q, k, v = q.view(B, T, H, hd), k.view(B, T, kv, hd), v.view(B, T, kv, hd)
        if theta is not None:
            pos = torch.arange(T)
            q, k = _rope(q, pos, theta), _rope(k, pos, theta)
        if precision is not None:
            q = q * precision[..., layer, None, None]
        k, v = k.repeat_interleave(H // kv, 2), v.repeat_interleave(H // kv, 2)
        o = _softmax_attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal)
        o = o.transpose(1, 2)
        if gain is not None:
            o = o * gain[..., layer, None, None]
        x = x + o.reshape(B, T, H * hd) @ sd[p + "attn.out.weight"].T
        h = _rms(x, sd[p + "mlp_norm.weight"], eps)
        if llama_backbone:
            g_, u_ = (h @ sd[p + "mlp.gate_up.weight"].T).chunk(2, -1)
            f = (F.silu(g_) * u_) @ sd[p + "mlp.down.weight"].T
        else:
            f = F.gelu(h @ sd[p + "mlp.up.weight"].T + sd[p + "mlp.up.bias"])
            f = f @ sd[p + "mlp.down.weight"].T + sd[p + "mlp.down.bias"]
        if gain is not None:
            f = f * (gain[..., layer] * gate[..., layer])[..., None]  # type: ignore[index]
        x = x + f
    return _rms(x, sd["norm.weight"], eps) @ sd["lm_head.weight"].T


def _ncn(**kw: object) -> NCNConfig:
    base = dict(vocab_size=61, d_model=32, n_layers=3, n_heads=4, ffn_dim=40, max_seq_len=48,
                dropout=0.0, control=ControlConfig(hidden=16, heads=2))  # fmt: skip
    base.update(kw)
    return NCNConfig(**base)  # type: ignore[arg-type]


NCN_CASES = {
    "gpt2-causal": _ncn(),
    "gpt2-published": _ncn(
        control=ControlConfig(hidden=16, heads=2, pooling="noncausal", init="published")
    ),
    "llama-causal": _ncn(backbone="llama"),
    "llama-bare": _ncn(backbone="llama", control=None),
}
LLAMA = LlamaConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40,
                    max_seq_len=48)  # fmt: skip


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Move every weight off its init (norm gains ≠ 1, signal biases ≠ intended) so that the
    comparison sees every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", sorted(NCN_CASES))
def test_ncn_logits_equal_the_equations(name: str) -> None:
    cfg = NCN_CASES[name]
    torch.manual_seed(0)
    model = NCNModel(cfg).eval()
    _randomize(model, 1)
    tokens = torch.randint(0, cfg.vocab_size, (2, 11))
    want = reference_logits(model.state_dict(), cfg, tokens)
    torch.testing.assert_close(model(tokens).double(), want, atol=2e-5, rtol=1e-5)


def test_llama_logits_equal_the_equations() -> None:
    torch.manual_seed(0)
    model = Llama(LLAMA).eval()
    _randomize(model, 2)
    tokens = torch.randint(0, LLAMA.vocab_size, (3, 9))
    want = reference_logits(model.state_dict(), LLAMA, tokens)
    torch.testing.assert_close(model(tokens).double(), want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["gpt2-causal", "llama-causal"])
def test_ncn_checkpoints_of_the_old_layout_load(name: str) -> None:
    """neuro-models 0.1 NCN state dicts (``blocks.*``, ``control.*``, SwiGLU ``mlp.up``, no
    ``lm_head``) load into the decoder and give the same logits."""
    cfg = NCN_CASES[name]
    torch.manual_seed(0)
    model = NCNModel(cfg).eval()
    _randomize(model, 3)
    old = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue
        k = k.replace("layers.", "blocks.", 1).replace("modulator.", "control.", 1)
        if cfg.backbone == "llama":
            k = k.replace(".mlp.gate_up.", ".mlp.up.")
        old[k] = v.clone()
    fresh = NCNModel(cfg).eval()
    result = fresh.load_state_dict(old, strict=False)
    assert result.missing_keys == ["lm_head.weight"]
    assert not result.unexpected_keys
    tokens = torch.randint(0, cfg.vocab_size, (2, 7))
    assert torch.equal(fresh(tokens), model(tokens))


def test_same_seed_same_ncn_init_as_before_the_decoder() -> None:
    """Regression pin for the init order: the 0.1 NCN drew (embed, pos, control, blocks) in that
    order; the tied head draws nothing. Two builds under one seed are identical, and the head
    is the embedding."""
    torch.manual_seed(4)
    a = NCNModel(NCN_CASES["gpt2-causal"])
    torch.manual_seed(4)
    b = NCNModel(NCN_CASES["gpt2-causal"])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.lm_head.weight is a.embed.weight


# ---------------------------------------------------------------- cache, padding, generation


@pytest.mark.parametrize("name", ["gpt2-causal", "llama-causal", "llama-bare"])
def test_ncn_padded_batch_generates_what_each_row_generates_alone(name: str) -> None:
    torch.manual_seed(0)
    model = NCNModel(NCN_CASES[name]).eval()
    _randomize(model, 5)
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    cfg = SamplingConfig(max_new_tokens=6, temperature=0)
    batched = generate(model, prompts, cfg)
    alone = [generate(model, [p], cfg)[0] for p in prompts]
    assert batched == alone
    assert generate(model, prompts, cfg, use_cache=False) == batched


def test_padding_is_invisible_to_the_control_network() -> None:
    """The signals of a left-padded row equal those of the same row without padding."""
    torch.manual_seed(0)
    model = NCNModel(NCN_CASES["gpt2-causal"]).eval()
    _randomize(model, 6)
    row = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[0, 0, 5, 6, 7, 8]])
    mask = torch.tensor([[False, False, True, True, True, True]])
    alone = model.run(row).signals
    with_pad = model.run(padded, attention_mask=mask).signals
    for a, b in zip(alone, with_pad):
        torch.testing.assert_close(b[:, 2:], a, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- config and registry


def test_config_round_trips_through_json_with_per_layer_parts() -> None:
    cfg = DecoderConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                        ffn_dim=40, positions="learned",
                        mixer=(Part("attention"), Part("attention", {"backend": "reference"})),
                        ffn=Part("gelu", {"bias": False}),
                        modulator=Part("ncn", {"hidden": 8, "heads": 2}))  # fmt: skip
    again = DecoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.mixer_at(1).options == {"backend": "reference"}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"mixer": Part("nope")}, "mixer: unknown kind 'nope'"),
        ({"ffn": (Part("swiglu"),)}, "ffn: one part per layer needs 2 parts"),
        ({"n_kv_heads": 3}, "n_kv_heads"),
        ({"positions": "alibi"}, "positions must be one of"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"modulator": {"kind": "ncn", "extra": 1}}, "modulator: a part mapping"),
        ({"ffn": Part("gelu", {"bais": True})}, "bais"),
    ],
)
def test_bad_configs_name_the_field(changes: dict, match: str) -> None:
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, ffn_dim=40)
    with pytest.raises((ValueError, TypeError), match=match):
        Decoder(DecoderConfig(**{**base, **changes}))


def test_registry_lists_the_built_in_and_adapter_parts() -> None:
    assert {"attention", "neuro_attention", "hebbian"} <= set(registered("mixer"))
    assert {"swiglu", "gelu", "spiking", "hybrid"} <= set(registered("ffn"))
    assert "ncn" in registered("modulator")


def test_output_layers_returns_the_embedding_and_each_blocks_residual_stream() -> None:
    torch.manual_seed(0)
    model = Llama(LLAMA).eval()
    tokens = torch.randint(0, 61, (2, 5))
    out = model.run(tokens, output_layers=True)
    assert out.layers is not None
    assert len(out.layers) == LLAMA.n_layers + 1
    torch.testing.assert_close(out.layers[0], model.embed(tokens))
    ctx, _ = model._layout(2, 5, 0, None, None, tokens.device)
    torch.testing.assert_close(model.layers[0](out.layers[0], ctx), out.layers[1])
    torch.testing.assert_close(model.norm(out.layers[-1]), model.hidden_states(tokens))


# ---------------------------------------------------------------- component-package parts


SWIGLU = Part("swiglu")


def _mixed(mixer: Part, ffn: Part = SWIGLU) -> DecoderConfig:
    return DecoderConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         ffn_dim=24, max_seq_len=32, mixer=(Part("attention"), mixer),
                         ffn=(Part("swiglu"), ffn))  # fmt: skip


def test_neuro_attention_with_no_mechanism_is_the_attention_mixer() -> None:
    torch.manual_seed(0)
    plain = Decoder(_mixed(Part("attention"))).eval()
    neuro = Decoder(_mixed(Part("neuro_attention", {"backend": "reference"}))).eval()
    sd = dict(plain.state_dict())
    qkv = sd.pop("layers.1.attn.qkv.weight")
    wq, wk, wv = qkv.split([32, 16, 16])
    sd |= {"layers.1.attn.attn.wq.weight": wq, "layers.1.attn.attn.wk.weight": wk,
           "layers.1.attn.attn.wv.weight": wv,
           "layers.1.attn.attn.wo.weight": sd.pop("layers.1.attn.out.weight")}  # fmt: skip
    neuro.load_state_dict(sd)
    tokens = torch.randint(0, 40, (2, 9))
    torch.testing.assert_close(neuro(tokens), plain(tokens), atol=1e-5, rtol=1e-5)


PARTS = {
    "neuro_attention": (
        Part(
            "neuro_attention",
            {
                "synaptic_scaling": True,
                "habituation": False,
                "lateral_inhibition": True,
                "backend": "reference",
            },
        ),
        Part("swiglu"),
    ),
    "hebbian": (Part("hebbian", {"backend": "reference"}), Part("swiglu")),
    "spiking": (Part("attention"), Part("spiking", {"backend": "reference"})),
    "hybrid": (Part("attention"), Part("hybrid", {"backend": "reference"})),
}


def _tokens(g: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, 40, (b, t), generator=g)


@pytest.mark.parametrize("name", sorted(PARTS))
@pytest.mark.parametrize("contract", ["causality", "batch_independence", "call_independence"])
def test_adapted_parts_keep_the_contracts(name: str, contract: str) -> None:
    mixer, ffn = PARTS[name]
    spec = ContractSpec(name=f"decoder+{name}", build=lambda: Decoder(_mixed(mixer, ffn)),
                        make_input=_tokens)  # fmt: skip
    check_contract(spec, contract)


class _Causal(torch.nn.Module):
    """A mixer without incremental decoding: the causal running mean of its input."""

    supports_cache = False

    def __init__(self, config: DecoderConfig, layer: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, ctx, precision=None, gain=None):  # type: ignore[no-untyped-def]
        n = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[None, :, None]
        return self.proj(x.cumsum(1) / n)


if "test_running_mean" not in registered("mixer"):
    register_mixer("test_running_mean", _Causal)


def test_mixers_without_a_cache_say_so_and_generate_by_recomputation() -> None:
    torch.manual_seed(0)
    model = Decoder(_mixed(Part("test_running_mean"))).eval()
    with pytest.raises(ValueError, match="layer 1: mixer _Causal has no incremental"):
        model.new_cache(1)
    out = generate(model, [[1, 2, 3]], SamplingConfig(max_new_tokens=4, temperature=0),
                   use_cache=False)  # fmt: skip
    tokens = torch.tensor([[1, 2, 3]])
    for t in out[0]:
        assert int(model(tokens)[0, -1].argmax()) == t
        tokens = torch.cat([tokens, torch.tensor([[t]])], 1)


@torch.no_grad()
@pytest.mark.parametrize("name", ["neuro_attention", "hebbian"])
def test_adapted_mixers_decode_with_the_cache(name: str) -> None:
    torch.manual_seed(0)
    model = Decoder(_mixed(*PARTS[name])).eval()
    x = torch.randint(0, 40, (2, 10))
    cache = model.new_cache(2)
    parts = [model(x[:, :4], cache=cache)] + [model(x[:, i : i + 1], cache=cache)
                                               for i in range(4, 10)]  # fmt: skip
    torch.testing.assert_close(torch.cat(parts, 1), model(x), atol=2e-5, rtol=1e-5)
