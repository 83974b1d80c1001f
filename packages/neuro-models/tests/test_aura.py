"""Aura's HippocampalTransformer and SNN-RAG transformer: exact published parameter counts, the
forward pass against a reference written here from the published source, the published protocol
(copy task, "Eval PPL" on training documents, memory stored but never read), cached generation."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from neuro_memory import EpisodicParams, init_state
from neuro_models.aura import (
    AuraConfig,
    HippocampalTransformer,
    RetrievalConfig,
    colab_config,
    count_formula,
    notebook_config,
    notebook_eval_ppl,
    prosody_factor,
    snn_rag_config,
    training_loss,
)
from neuro_models.generate import SamplingConfig, generate
from neuro_models.params import count_parameters

V = 50
SMALL = dict(
    vocab_size=V,
    d_model=32,
    n_layers=2,
    n_heads=4,
    ffn_dim=48,
    max_seq_len=24,
    n_place_cells=100,
    dropout=0.0,
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    return None


def _tokens(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- parameter counts


def test_published_parameter_counts() -> None:
    # reference-systems §3.3: notebook 131,605,916 (tied); Colab "full" 112,795,820.
    with torch.device("meta"):
        notebook = HippocampalTransformer(notebook_config())
        full = HippocampalTransformer(colab_config("full"))
    assert count_parameters(notebook).total == 131_605_916
    assert count_parameters(full).total == 112_795_820
    # Untied, the notebook shape has V·d more: the 156,181,916 of the pre-tying-fix print.
    assert count_parameters(notebook).total + 32_000 * 768 == 156_181_916


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"positions": "rope", "place_cells": False, "memory_gate": False},
        {"positions": "published_theta_gamma", "snn_layers": (1,), "snn_ffn": "spiking"},
        {"ffn": "hybrid"},
    ],
)
def test_count_formula_matches_the_module(overrides: dict[str, object]) -> None:
    for cfg in (AuraConfig(**{**SMALL, **overrides}), snn_rag_config(**{**SMALL, **overrides})):
        assert count_parameters(HippocampalTransformer(cfg)).total == count_formula(cfg)


# ---------------------------------------------------------------- forward vs the published source


def _layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _published_forward(
    model: HippocampalTransformer, x: torch.Tensor, p: torch.Tensor
) -> torch.Tensor:
    """HippocampalTransformer.forward of aura-snn-rag @ d0fc21a, written out (float64 model)."""
    cfg = model.config
    B, T = x.shape
    d, H = cfg.d_model, cfg.n_heads
    D = d // H
    E = model.embed.weight
    e = E[x]
    # PlaceCellSemanticEncoder: k = int(0.03 P), sigmoid of the top-k drives, 0.1 residual.
    place = model.embed.place
    z = e @ place.prototypes.T + place.bias
    k = int(cfg.n_place_cells * 0.03)
    top = z.topk(k, dim=-1)
    a = torch.zeros_like(z).scatter(-1, top.indices, torch.sigmoid(top.values))
    h = e + 0.1 * (a @ place.readout.weight.T + place.readout.bias)
    # ThetaGammaPositionalEncoding: φ = 2π p/(L − 1) in float32, G = 40/8.
    enc = model.pos.encoding
    phi = (torch.arange(T).float() / float(cfg.max_seq_len - 1) * (2.0 * math.pi))[:, None]
    theta = phi + enc.theta_offset
    gamma = phi * (40.0 / 8.0) + enc.gamma_offset
    h = (
        h
        + (torch.sin(theta) + 0.5 * ((torch.cos(theta) + 1.0) * 0.5 * torch.sin(gamma)))
        * enc.amplitude
    )
    h = _layer_norm(h, model.embed_dropout.norm)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for layer, block in enumerate(model.layers):
        attn = block.attn
        hn = _layer_norm(h, attn.norm)
        wq, wk, wv = attn.qkv.weight.split(d)
        bq, bk, bv = attn.qkv.bias.split(d)
        q = (hn @ wq.T + bq).view(B, T, H, D)
        kk = (hn @ wk.T + bk).view(B, T, H, D)
        v = (hn @ wv.T + bv).view(B, T, H, D)
        gate = model.modulator.gates[layer]
        pg = torch.sigmoid(p @ gate.weight.T + gate.bias)  # [B, T, H]
        arousal = 1 + 0.2 * torch.tanh(p[..., 0:1])
        valence = 1 + 0.05 * torch.tanh(p[..., 1:2])
        q = q * ((1 + pg) * arousal * valence)[..., None]
        mem = torch.sigmoid(hn @ attn.memory_gate.weight.T + attn.memory_gate.bias)  # [B, T, 1]
        q = q * (1 + 0.5 * mem)[..., None]
        s = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(D)
        s = s.masked_fill(~causal, -math.inf)
        o = torch.einsum("bhts,bshd->bthd", s.softmax(-1), v).reshape(B, T, d)
        h = h + o @ attn.out.weight.T + attn.out.bias
        hf = _layer_norm(h, block.mlp_norm)
        mlp = block.mlp
        h = h + F.gelu(hf @ mlp.up.weight.T + mlp.up.bias) @ mlp.down.weight.T + mlp.down.bias
    return h @ E.T  # no final norm, tied head


@pytest.mark.parametrize("prosody", ["zeros", "random"])
def test_forward_equals_the_published_forward(prosody: str) -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(notebook_config(**SMALL, prosody=prosody)).double().eval()
    x = _tokens(2, 11)
    torch.manual_seed(5)
    out = model(x)
    torch.manual_seed(5)
    # The "random" source draws U[0, 1)^4 per token, first thing in the call (no dropout).
    p = (
        torch.rand(2, 11, 4, dtype=torch.float64)
        if prosody == "random"
        else torch.zeros(2, 11, 4).double()
    )
    ref = _published_forward(model, x, p)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_prosody_factor_range_and_closed_form() -> None:
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(3, 5, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    rho = prosody_factor(p, w, b)
    assert rho.shape == (3, 5, 4, 2)
    for layer in range(2):
        for head in range(4):
            g = 1 / (1 + torch.exp(-(p @ w[layer, head] + b[layer, head])))
            want = (1 + g) * (1 + 0.2 * torch.tanh(p[..., 0])) * (1 + 0.05 * torch.tanh(p[..., 1]))
            torch.testing.assert_close(rho[..., head, layer], want)
    # Non-negative prosody: every factor lies in [1, 2·1.2·1.05] (reference-systems §3.1).
    assert float(rho.min()) >= 1.0
    assert float(rho.max()) <= 2 * 1.2 * 1.05


def test_place_cells_fire_exactly_k_and_published_k_can_be_zero() -> None:
    model = HippocampalTransformer(AuraConfig(**SMALL))
    act = model.place_activity(_tokens(2, 9))
    assert act.shape == (2, 9, 100)
    assert bool(((act > 0).sum(-1) == 3).all())  # max(1, ⌊0.03·100⌋)
    tiny = HippocampalTransformer(notebook_config(**{**SMALL, "n_place_cells": 20}))
    assert int((tiny.place_activity(_tokens(1, 4)) > 0).sum()) == 0  # int(0.03·20) = 0


# ---------------------------------------------------------------- published protocol


def test_training_loss_labels() -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(AuraConfig(**SMALL)).eval()
    seq = _tokens(2, 13)
    x, y = seq[:, :-1], seq[:, 1:]
    logits = model(x).float()
    ours, _ = training_loss(model, x, y)
    copy, _ = training_loss(model, x, y, published_labels=True)
    smooth, _ = training_loss(model, x, y, published_labels=True, label_smoothing=0.2)
    logp = logits.log_softmax(-1)
    nll_next = -logp.gather(-1, y[..., None]).mean()
    nll_copy = -logp.gather(-1, x[..., None]).mean()
    # Label smoothing ε: (1 − ε)·NLL + ε·mean over the vocabulary of −log p.
    want_smooth = 0.8 * nll_copy + 0.2 * (-logp.mean(-1)).mean()
    torch.testing.assert_close(ours, nll_next, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(copy, nll_copy, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(smooth, want_smooth, rtol=1e-5, atol=1e-6)
    # Colab AuraLoss: CE with ε = 0.1 minus 0.05 · mean predictive entropy, next-token labels.
    colab, metrics = training_loss(model, x, y, label_smoothing=0.1, entropy_bonus=0.05)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    want_colab = 0.9 * nll_next + 0.1 * (-logp.mean(-1)).mean() - 0.05 * entropy
    torch.testing.assert_close(colab, want_colab, rtol=1e-5, atol=1e-6)
    assert metrics["entropy"] == pytest.approx(float(entropy.detach()), rel=1e-5)


def test_notebook_eval_ppl_against_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(AuraConfig(**SMALL))
    docs = [[int(t) for t in _tokens(1, n, seed=n)[0] + 1] for n in (5, 30, 12, 3, 17)]
    pad = 0
    losses = []
    for doc in docs:
        if len(doc) < 10:
            continue
        ids = doc[:24] + [pad] * (24 - len(doc[:24]))
        x = torch.tensor([ids])
        with torch.no_grad():
            logp = model.eval()(x).log_softmax(-1)[0]
        real = [i for i in range(24) if ids[i] != pad]
        losses.append(-sum(float(logp[i, ids[i]]) for i in real) / len(real))
    got = notebook_eval_ppl(model, docs, pad_id=pad, n_documents=2)
    assert got == pytest.approx(math.exp(sum(losses[:2]) / 2), rel=1e-5)
    with pytest.raises(ValueError, match="none has"):
        notebook_eval_ppl(model, [[1, 2]], pad_id=pad)


def test_the_copy_task_gives_a_low_published_ppl_on_random_tokens() -> None:
    # Uniform random tokens cannot be predicted (next-token ppl ≈ V = 50 at best), yet the
    # published protocol (labels = inputs) reaches a low "Eval PPL" within a few hundred steps.
    torch.manual_seed(0)
    model = HippocampalTransformer(AuraConfig(**SMALL))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):
        x = torch.randint(1, V, (8, 16), generator=gen)
        loss, _ = training_loss(model, x, x, published_labels=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    docs = [torch.randint(1, V, (16,), generator=gen).tolist() for _ in range(20)]
    copy_ppl = notebook_eval_ppl(model, docs, pad_id=0)
    next_ppl = notebook_eval_ppl(model, docs, pad_id=0, shift=True)
    assert copy_ppl < 2.0
    assert next_ppl > 40.0


def test_store_memory_writes_every_call_and_is_never_read() -> None:
    torch.manual_seed(0)
    plain = HippocampalTransformer(AuraConfig(**SMALL)).eval()
    storing = HippocampalTransformer(AuraConfig(**SMALL, store_memory=True)).eval()
    storing.load_state_dict(plain.state_dict())
    x = _tokens(3, 10)
    with torch.no_grad():
        outs = [storing(x) for _ in range(3)]
        ref = plain(x)
        h = plain.pooled_states(x)
    assert storing.memory is not None
    assert storing.memory.size == 9
    for out in outs:
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # What it stores: the per-row mean of the final hidden states (no final norm).
    torch.testing.assert_close(storing.memory.keys[6:9], h)


def test_snn_rag_reads_its_memory_per_token() -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(snn_rag_config(**SMALL)).eval()
    assert [type(b.mlp).__name__ for b in model.layers] == ["HybridFFN", "GeluMLP"]
    x = _tokens(2, 10)
    with torch.no_grad():
        empty = model(x)
        model.write_memory(torch.randn(7, 32, generator=torch.Generator().manual_seed(3)))
        full = model(x)
        # Token t's output depends only on tokens ≤ t, even with the memory read.
        prefix = model(x[:, :4])
    assert float((full - empty).abs().max()) > 1e-3
    torch.testing.assert_close(prefix, full[:, :4], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- generation with the cache


@pytest.mark.parametrize(
    "config",
    [
        AuraConfig(**SMALL),
        AuraConfig(**SMALL, positions="rope"),
        notebook_config(**{**SMALL, "prosody": "zeros"}),
        snn_rag_config(**SMALL),
        snn_rag_config(**SMALL, snn_ffn="spiking"),
    ],
    ids=["ours", "rope", "published-theta-gamma", "snn-rag", "snn-rag-spiking"],
)
def test_generation_with_the_cache_equals_recomputation(config: AuraConfig) -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(config)
    if model.memory is not None:
        model.write_memory(torch.randn(9, 32, generator=torch.Generator().manual_seed(2)))
    prompts = [[1, 2, 3, 4, 5], [7, 8, 9], [3, 1, 4, 1, 5, 9, 2]]
    greedy = SamplingConfig(max_new_tokens=8, temperature=0)
    assert generate(model, prompts, greedy) == generate(model, prompts, greedy, use_cache=False)
    x = _tokens(2, 12)
    model.eval()
    with torch.no_grad():
        full = model(x)
        cache = model.empty_cache(2)
        steps = [model(x[:, :3], cache=cache)]
        steps += [model(x[:, t : t + 1], cache=cache) for t in range(3, 12)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_published_sequence_mean_query_refuses_the_cache() -> None:
    model = HippocampalTransformer(
        snn_rag_config(**SMALL, retrieval=RetrievalConfig(query="sequence_mean"))
    )
    model.write_memory(torch.randn(4, 32))
    with pytest.raises(ValueError, match="sequence_mean"):
        model(_tokens(1, 3), cache=model.empty_cache(1))


# ---------------------------------------------------------------- config


def test_config_round_trips_through_json_and_rejects_bad_fields() -> None:
    for cfg in (
        notebook_config(**SMALL),
        snn_rag_config(published=True, **SMALL),
        colab_config("test"),
    ):
        back = AuraConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg
    with pytest.raises(ValueError, match="unknown AuraConfig keys"):
        AuraConfig.from_dict({"d_modle": 3})
    with pytest.raises(ValueError, match="divisible"):
        AuraConfig(**{**SMALL, "n_heads": 5})
    with pytest.raises(ValueError, match="prosody"):
        AuraConfig(**SMALL, prosody="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="snn_layers"):
        AuraConfig(**SMALL, snn_layers=(2,))
    with pytest.raises(ValueError, match="multiple of 4"):
        AuraConfig(**{**SMALL, "d_model": 30, "n_heads": 3})
    with pytest.raises(ValueError, match="config must be an AuraConfig"):
        HippocampalTransformer(SMALL)  # type: ignore[arg-type]


def test_published_init_is_pytorch_default() -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(notebook_config(**SMALL))
    qkv = model.layers[0].attn.qkv.requires_grad_(False)
    bound = 1 / math.sqrt(32)
    # nn.Linear's default: U(±1/√fan_in) for weight and bias (the decoder init would give biases 0).
    assert float(qkv.weight.abs().max()) <= bound
    assert float(qkv.weight.std()) > 0.8 * bound / math.sqrt(3)
    assert float(qkv.bias.abs().max()) > 0
    ours = HippocampalTransformer(AuraConfig(**SMALL))
    assert float(ours.layers[0].attn.qkv.bias.detach().abs().max()) == 0.0
    assert float(ours.embed.weight.detach().std()) == pytest.approx(0.02, rel=0.1)


def test_bundle_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from neuro_models import load_bundle, save_bundle
    from neuro_models.data import ByteTokenizer

    torch.manual_seed(0)
    for name, cfg in (
        ("hippocampal", notebook_config(**{**SMALL, "vocab_size": 257})),
        ("snn-rag", snn_rag_config(**{**SMALL, "vocab_size": 257})),
    ):
        model = HippocampalTransformer(cfg).eval()
        path = save_bundle(tmp_path / name, model, ByteTokenizer())
        bundle = load_bundle(path)
        assert bundle.kind == "aura"
        assert bundle.config == cfg
        x = _tokens(2, 9)
        torch.manual_seed(1)
        want = model(x)
        torch.manual_seed(1)
        torch.testing.assert_close(bundle.model(x), want, rtol=0, atol=0)


@pytest.mark.parametrize(
    "config",
    [
        AuraConfig(**{**SMALL, "dropout": 0.1}),
        snn_rag_config(**{**SMALL, "dropout": 0.1}),
        notebook_config(**SMALL),
    ],
    ids=["ours", "snn-rag", "notebook"],
)
def test_both_models_train(config: AuraConfig) -> None:
    # A repeated 6-token cycle: next-token loss must fall well below its start in 40 steps,
    # with dropout, spiking FFNs, a memory read (SNN-RAG) and random prosody (notebook) on.
    # Our theta-gamma code at amplitude 1 (instead of position_scale 0.02) stalls at ≈ ln 6.
    torch.manual_seed(0)
    model = HippocampalTransformer(config).train()
    if model.memory is not None:
        model.write_memory(torch.randn(8, 32, generator=torch.Generator().manual_seed(4)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    seq = torch.tensor([[3, 14, 15, 9, 26, 5] * 4] * 4)
    x, y = seq[:, :-1], seq[:, 1:]
    losses = []
    for _ in range(40):
        loss, _ = training_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]
    if model.memory is not None:
        grad = model.layers[0].attn.retrieval.gate.weight.grad
        assert grad is not None
        assert float(grad.abs().max()) > 0


def test_amygdala_prosody_is_one_state_from_the_sequence_and_batch_mean() -> None:
    torch.manual_seed(0)
    model = HippocampalTransformer(colab_config("test", **SMALL)).eval()
    x = _tokens(3, 7)
    with torch.no_grad():
        p = model.run(x).signals.prosody
        stream = model.embed_dropout(model.embed(x) + model.pos(torch.arange(7)))
        mod = model.modulator
        pooled = stream.mean(1)  # [B, d]
        hid = torch.relu(pooled @ mod.amygdala_w1.T + mod.amygdala_b1)
        s = torch.tanh(hid @ mod.amygdala_w2.T + mod.amygdala_b2).mean(0)
    want = torch.stack([(s[0] + 1) / 2, s[1], (s[0] + 1) / 2, s[1]])
    torch.testing.assert_close(p, want.expand(3, 7, 4), rtol=1e-5, atol=1e-6)


def test_memory_bank_errors_name_the_problem() -> None:
    model = HippocampalTransformer(AuraConfig(**SMALL))
    with pytest.raises(ValueError, match="no memory bank"):
        model.write_memory(torch.randn(2, 32))
    rag = HippocampalTransformer(snn_rag_config(**SMALL))
    assert rag.memory is not None
    with pytest.raises(ValueError, match="keys"):
        rag.write_memory(torch.randn(32))
    small = init_state(EpisodicParams(capacity=3), 32, 32)
    with pytest.raises(ValueError, match="slots of width"):
        rag.memory.load(small)
    rag.write_memory(torch.randn(4, 32))
    rag.memory.clear()
    assert rag.memory.size == 0


def test_the_harness_trains_both_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # neuro_models.train with the published copy-task loss (via functools.partial) and ours.
    import functools

    from neuro_models.data import DataOrder
    from neuro_models.train import TrainConfig, train

    stream = (
        torch.cumsum(torch.randint(1, 3, (600,), generator=torch.Generator().manual_seed(0)), 0) % V
    )
    for name, cfg, loss in (
        ("rag", snn_rag_config(**SMALL), None),
        ("copy", notebook_config(**SMALL), functools.partial(training_loss, published_labels=True)),
    ):
        torch.manual_seed(0)
        model = HippocampalTransformer(cfg)
        tc = TrainConfig(
            lr=1e-2,
            min_lr=1e-3,
            warmup_steps=2,
            max_steps=6,
            batch_size=4,
            seq_len=16,
            precision="fp32",
            out_dir=str(tmp_path / name),
            log_every=1,
            progress=False,
            plot=False,
        )
        result = train(model, tc, DataOrder(stream, 16, 4, seed=1), loss_fn=loss)
        assert len(result.losses) == 6
        assert all(math.isfinite(v) for v in result.losses)
        assert result.losses[-1] < result.losses[0]
