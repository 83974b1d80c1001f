"""V3Model: the published parameter count, forward passes against references written here from the
published equations (§5.1), state side effects, validation, generation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.generate import SamplingConfig, generate
from neuro_models.v3 import (
    V3Config,
    V3Model,
    count_parameters,
    expected_parameters,
    published_small,
)

SMALL = {"dim": 16, "num_layers": 2, "memory_size": 8, "concept_dim": 8, "num_concepts": 12,
         "episodic_slots": 5, "max_dim": 4, "max_seq_len": 32}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- parameter counts


def test_default_count_is_the_published_16_420_584() -> None:
    with torch.device("meta"):
        model = V3Model()
    assert count_parameters(model) == 16_420_584
    assert expected_parameters(V3Config()) == 16_420_584


def test_count_by_module_from_the_published_shapes() -> None:
    # Independent tally of the published modules at d = 512, L = 6 (reference-systems §5.3).
    d, lin = 512, 512 * 512 + 512
    with torch.device("meta"):
        model = V3Model()

    def n(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert n(model.token_embedding) == 256 * d
    assert n(model.consciousness) == 4 * lin + d + (4 * d * d + d) + 2 * d
    assert n(model.short_term_memory) == 64 * d + 64 + (2 * d * d + d) + (d * 64 + 64) + 2 * d + 1
    assert n(model.long_term_memory) == (
        1024 * 256 + (d * 256 + 256) + 100 * d + 100 + (256 * d + d) + lin + d + 1
    )
    assert n(model.spiking_neurons) == 6 * (lin + 2 * d)
    # 67 % of the model (11.04M) sits in the developmental branches.
    assert n(model.developmental_plasticity) == 6 * (7 * lin + 2 * 1024) == 11_043_840
    assert n(model.output_proj) == d * 256 + 256


def test_flags_do_not_change_the_count() -> None:
    with torch.device("meta"):
        a, b = V3Model(V3Config()), V3Model(V3Config.published())
    assert count_parameters(a) == count_parameters(b)
    assert [k for k, _ in a.named_parameters()] == [k for k, _ in b.named_parameters()]


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_memory_efficiency_claim_is_a_parameter_ratio() -> None:
    # "4.38x more memory efficient": nn.Transformer(d 128, 4 + 4 layers) over the d 128, 4-layer
    # brain model, embeddings and head of the transformer excluded (§5.3).
    with torch.device("meta"):
        brain = V3Model(published_small())
        transformer = nn.Transformer(d_model=128, num_encoder_layers=4, num_decoder_layers=4)
    assert count_parameters(brain) == 1_142_760
    assert count_parameters(transformer) == 5_009_920
    assert round(5_009_920 / 1_142_760, 2) == 4.38


def test_untrained_cross_entropy_is_ln_256() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config.published()).eval()
    # 512 targets: the CE's sampling sd is ~0.005 around ln 256 + σ²/2 (logit sd σ ≈ 0.1).
    x = torch.randint(0, 256, (8, 64))
    y = torch.randint(0, 256, (8, 64))
    with torch.no_grad():
        assert abs(float(model.loss(x, y)) - math.log(256)) < 0.02


# ---------------------------------------------------------------- reference forward


def _lin(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return x @ p[f"{name}.weight"].t() + p[f"{name}.bias"]


def _ln(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _reference(
    p: dict[str, torch.Tensor], x: torch.Tensor, cfg: V3Config, train: bool
) -> torch.Tensor:
    """The forward pass from the published code's equations, on a copy of the state ``p``
    (updated in place, as the published ``.data`` writes are)."""
    e = p["token_embedding.weight"][x]
    aw = torch.tanh(_lin(p, "consciousness.awareness_proj", e))
    at = torch.sigmoid(_lin(p, "consciousness.attention_proj", e))
    me = torch.tanh(_lin(p, "consciousness.memory_proj", e))
    it = torch.sigmoid(_lin(p, "consciousness.intention_proj", e))
    c = _lin(p, "consciousness.consciousness_fusion", torch.cat([aw, at, me, it], -1))
    c = (
        _ln(p, "consciousness.consciousness_norm", c)
        + 0.1 * p["consciousness.global_consciousness"]
    )
    if cfg.softmax == "sequence":
        w = torch.exp(c) / torch.exp(c).sum(dim=1, keepdim=True)
    else:
        w = torch.stack([torch.softmax(c[:, : t + 1], dim=1)[:, -1] for t in range(c.shape[1])], 1)
    h = e * w + e
    B, T, _ = h.shape
    for i in range(cfg.num_layers):
        # short-term memory
        g = torch.sigmoid(_lin(p, "short_term_memory.memory_gate", h))
        slots = p["short_term_memory.memory_slots"]
        m = g @ slots
        out = _lin(p, "short_term_memory.memory_update", torch.cat([h, m], -1))
        out = _ln(p, "short_term_memory.memory_norm", out)
        if cfg.memory_writes and train:
            mean_h = h.mean(dim=1).mean(dim=0)
            dr = p["short_term_memory.decay_rate"]
            for k in range(slots.shape[0]):
                slots[k] = dr * slots[k] + (1 - dr) * g[:, :, k].mean() * mean_h
        h = out
        # long-term memory
        cm = p["long_term_memory.concept_memory"]
        cw = torch.softmax(_lin(p, "long_term_memory.concept_embeddings", h) @ cm.t(), -1)
        concept = _lin(p, "long_term_memory.concept_retrieval", cw @ cm)
        em = p["long_term_memory.episodic_memory"]
        ew = torch.softmax(h @ em.t(), -1)
        episodic = _lin(p, "long_term_memory.episodic_retrieval", ew @ em)
        h = h + 0.3 * (concept + 0.5 * episodic)
        # spiking
        s = _lin(p, f"spiking_neurons.{i}.synaptic_weights", h)
        u0 = p[f"spiking_neurons.{i}.membrane_potential"]
        r0 = p[f"spiking_neurons.{i}.spike_history"]
        if cfg.spiking == "global":
            u = 0.9 * u0 + s.mean(dim=(0, 1))
            spk = (u > 1.0).float()
            u0.copy_(u * (1 - spk))
            r0.copy_(0.9 * r0 + spk)
            h = s * (1 - (r0 > 0.1).float())
        else:
            outs = []
            for b in range(B):
                u, r = u0.clone(), r0.clone()
                row = []
                for t in range(T):
                    u = 0.9 * u + s[b, t]
                    spk = (u > 1.0).float()
                    u = u * (1 - spk)
                    r = 0.9 * r + spk
                    row.append(s[b, t] * (1 - (r > 0.1).float()))
                outs.append(torch.stack(row))
            h = torch.stack(outs)
        # developmental plasticity
        pre = f"developmental_plasticity.{i}"

        def route(v: float, z: torch.Tensor, pre: str = pre, stats: bool = False) -> torch.Tensor:
            if v < 0.1:
                return _lin(p, f"{pre}.base_transform", z)
            k = min(int(v * cfg.complexity_scale) % 3, 2)
            if stats:
                p[f"{pre}.usage_count"][k] += 1
                imp = p[f"{pre}.importance_scores"]
                imp[k] = 0.9 * imp[k] + 0.1 * v
            return _lin(
                p, f"{pre}.contraction_layers.{k}", _lin(p, f"{pre}.expansion_layers.{k}", z)
            )

        if cfg.routing == "batch":
            v = float(torch.stack([h[b].flatten().var() for b in range(B)]).mean())
            h = route(v, h, stats=cfg.memory_writes and train)
        else:
            h = torch.stack(
                [
                    torch.stack([route(float(h[b, t].var()), h[b, t]) for t in range(T)])
                    for b in range(B)
                ]
            )
    return _lin(p, "output_proj", h)


def _state(model: V3Model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().double() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("published", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_forward_matches_reference_over_calls(published: bool, train: bool) -> None:
    cfg = V3Config.published(**SMALL) if published else V3Config(**SMALL)
    torch.manual_seed(1)
    model = V3Model(cfg).double().train(train)
    # Large membrane values so that spikes and refractory masks occur.
    with torch.no_grad():
        for neuron in model.spiking_neurons:
            neuron.membrane_potential.uniform_(-0.5, 1.5)
            neuron.synaptic_weights.bias.uniform_(-0.8, 0.8)
    p = _state(model)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):  # state carried between calls must match too
        x = torch.randint(0, 256, (3, 7), generator=gen)
        with torch.no_grad():
            got = model(x)
        want = _reference(p, x, cfg, train)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, p[k], rtol=1e-9, atol=1e-9, msg=k)


def test_published_state_writes_and_ours_none() -> None:
    x = torch.randint(0, 256, (2, 6), generator=torch.Generator().manual_seed(0))
    for cfg, changes in ((V3Config(**SMALL), False), (V3Config.published(**SMALL), True)):
        torch.manual_seed(0)
        model = V3Model(cfg).train()
        before = _state(model)
        with torch.no_grad():
            model(x, training_step=0)
        changed = {k for k, v in _state(model).items() if not torch.equal(v, before[k])}
        if changes:
            assert {"short_term_memory.memory_slots", "spiking_neurons.0.membrane_potential",
                    "developmental_plasticity.0.usage_count"} <= changed  # fmt: skip
        else:
            assert changed == set()


def test_consolidation_overwrites_least_used_episodic_slot() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config.published(**SMALL)).train()
    with torch.no_grad():  # scale the head-side stream so mean |h_L| > 0.8
        last = model.developmental_plasticity[-1]
        for lin in (last.base_transform, *last.contraction_layers):
            lin.bias.fill_(2.0)
        model.long_term_memory.episodic_weights[:] = torch.tensor([1.0, 1, 0.5, 1, 1])
    x = torch.randint(0, 256, (2, 5))
    before = model.long_term_memory.episodic_memory.detach().clone()
    with torch.no_grad():
        model(x)  # no training_step: no consolidation
        assert torch.equal(model.long_term_memory.episodic_memory, before)
        h = model.hidden_states(x, training_step=3)
    ltm = model.long_term_memory
    # Recomputed from the returned h_L and the (unwritten) gate weights.
    assert float(h.abs().mean()) > 0.8
    imp = h.abs().mean(-1)
    gate = torch.sigmoid(h @ ltm.consolidation_gate.weight.t() + ltm.consolidation_gate.bias)[
        ..., 0
    ]
    want = (h * (gate * imp)[..., None]).mean(dim=(0, 1))
    torch.testing.assert_close(ltm.episodic_memory[2], want)
    assert ltm.episodic_weights[2].item() == 1.0
    assert torch.equal(ltm.episodic_memory[[0, 1, 3, 4]], before[[0, 1, 3, 4]])


def test_prefix_softmax_gradcheck() -> None:
    torch.manual_seed(0)
    layer = V3Model(V3Config(**SMALL)).consciousness.double()
    e = torch.randn(2, 4, SMALL["dim"], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: layer(z), (e,))


def test_left_padding_equals_the_sequence_alone() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config(**SMALL)).eval()
    x = torch.randint(0, 256, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 6])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, attention_mask=mask)[:, 3:], model(x))


def test_generate_recomputes_and_refuses_a_cache() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config(**SMALL))
    prompt = torch.randint(0, 256, (2, 4))
    out = generate(model, prompt, SamplingConfig(max_new_tokens=3, temperature=0), use_cache=False)
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(3):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out == seq[:, 4:].tolist()
    with pytest.raises(ValueError, match="use_cache=False"):
        generate(model, prompt, SamplingConfig(max_new_tokens=2), use_cache=True)


def test_bad_inputs_raise() -> None:
    model = V3Model(V3Config(**SMALL))
    with pytest.raises(ValueError, match="tokens"):
        model(torch.full((1, 3), 256))
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        model(
            torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 2, dtype=torch.bool)
        )
    pub = V3Model(V3Config.published(**SMALL))
    with pytest.raises(ValueError, match="causal flags"):
        pub(torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="targets"):
        model.loss(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))


def test_config_validation_and_round_trip() -> None:
    cfg = V3Config.published(dim=32)
    assert V3Config.from_dict(cfg.to_dict()) == cfg
    assert not cfg.is_causal
    assert V3Config().is_causal
    with pytest.raises(ValueError, match="softmax"):
        V3Config(softmax="global")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown V3Config keys"):
        V3Config.from_dict({"dim": 8, "heads": 2})
    with pytest.raises(ValueError, match="spike_decay"):
        V3Config(spike_decay=1.0)
    with pytest.raises(ValueError, match="dim"):
        V3Config(dim=0)


def test_loss_equals_cross_entropy_of_logits() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config(**SMALL))
    x, y = torch.randint(0, 256, (2, 5)), torch.randint(0, 256, (2, 5))
    want = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
    torch.testing.assert_close(model.loss(x, y), want)


def test_bundle_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from neuro_models.bundle import load_bundle, save_bundle
    from neuro_models.data.tokenizers import ByteTokenizer

    torch.manual_seed(0)
    # ByteTokenizer has an end-of-text id 256, so the bundle needs vocab 257 (published: 256).
    model = V3Model(V3Config.published(**SMALL, vocab_size=257)).eval()
    save_bundle(tmp_path / "b", model, ByteTokenizer())
    loaded = load_bundle(tmp_path / "b")
    assert loaded.kind == "v3"
    assert loaded.config == model.config
    x = torch.randint(0, 256, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
