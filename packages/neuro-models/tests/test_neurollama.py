"""NeuroLlama: published validation rules, exact presets, contracts with every causal toggle on,
the deep-supervision loss, and per-token early exit against an independent recomputation."""

import math

import pytest
import torch
import torch.nn.functional as F

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_models.neurollama import (
    NeuroLlama,
    NeuroLlamaConfig,
    calibrate_exits,
    early_exit_decode,
    neurollama_8b,
    neurollama_70b,
    neurollama_405b,
    overhead_table,
    truncated_nll,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw: object) -> NeuroLlamaConfig:
    base = dict(vocab_size=53, num_layers=4, hidden_dim=32, num_heads=4, num_kv_heads=2,
                ffn_dim=40, max_seq_len=40, exit_layers=(1, 2), attention_backend="reference",
                hebbian_lr=0.1)  # fmt: skip
    base.update(kw)
    return NeuroLlamaConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- config and presets


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"synaptic_mode": "dynamic"}, "synaptic_mode must be one of"),
        ({"num_kv_heads": 3}, "num_heads .* divisible by num_kv_heads"),
        ({"hidden_dim": 0}, "hidden_dim must be an int ≥ 1"),
        ({"exit_confidence_threshold": 0.0}, "exit_confidence_threshold must be in"),
        ({"exit_confidence_threshold": 1.5}, "exit_confidence_threshold must be in"),
        ({"exit_layers": (1, 4)}, r"exit_layers must lie in \[0, num_layers=4\)"),
        ({"head_dim": 16}, "head_dim must be hidden_dim / num_heads"),
    ],
)
def test_published_validation_rules(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**changes)


def _llama3_count(V: int, d: int, L: int, H: int, KV: int, F_: int) -> int:
    """specs/reference-systems.md §1.11, written out: untied, no biases, norms counted."""
    hd = d // H
    attention = d * H * hd + 2 * d * KV * hd + H * hd * d
    return V * d + L * (attention + 3 * d * F_ + 2 * d) + d + V * d


@pytest.mark.parametrize(
    ("preset", "published", "dims"),
    [
        (neurollama_8b, 8_030_261_248, (128256, 4096, 32, 32, 8, 14336)),
        (neurollama_70b, 70_553_706_496, (128256, 8192, 80, 64, 8, 28672)),
        (neurollama_405b, 405_853_388_800, (128256, 16384, 126, 128, 8, 53248)),
    ],
)
def test_presets_match_llama_3_1_exactly(preset, published: int, dims: tuple) -> None:  # type: ignore[no-untyped-def]
    rows = overhead_table(preset())
    assert rows[0].name.startswith("Llama backbone")
    assert rows[0].total == published == _llama3_count(*dims)


def test_the_published_405b_kv_16_is_not_llama_3_1() -> None:
    rows = overhead_table(neurollama_405b(published_kv=True).neuro_off())
    assert rows[0].total == _llama3_count(128256, 16384, 126, 128, 16, 53248) == 410_081_247_232
    assert rows[0].total != 405_853_388_800


def test_per_layer_overheads_at_8b_follow_the_module_formulas() -> None:
    d, H, hd = 4096, 32, 128
    per = {r.name: r.per_layer for r in overhead_table(neurollama_8b())}
    assert per["synaptic scaling (static)"] == H
    assert per["prediction heads (predictive coding)"] == d * d
    gates = {r.name: r.per_layer for r in overhead_table(
        neurollama_8b(synaptic_mode="context_dependent", hebbian_attention=False))}  # fmt: skip
    assert gates["neuromodulated gates (context_dependent)"] == d * d // 4 + d // 4 + d // 4 * H + H
    pair = {r.name: r.per_layer for r in overhead_table(
        neurollama_8b(synaptic_mode="full_matrix", hebbian_attention=False))}  # fmt: skip
    assert pair["synaptic matrix (full_matrix)"] == 2 * hd + 1


def test_config_round_trip_and_neuro_off_is_a_plain_llama() -> None:
    c = tiny(synaptic_mode="full_matrix")
    assert NeuroLlamaConfig.from_dict(c.to_dict()) == c
    off = c.neuro_off().decoder_config()
    assert {off.mixer_at(i).kind for i in range(4)} == {"attention"}


# ---------------------------------------------------------------- contracts


def _tokens(g: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, 53, (b, t), generator=g)


CAUSAL_TOGGLES = {
    "static": tiny(),
    "context_dependent": tiny(synaptic_mode="context_dependent"),
    "full_matrix": tiny(synaptic_mode="full_matrix", synaptic_window=4),
}


SPECS = [
    register(
        ContractSpec(
            name=f"neuro_models.NeuroLlama[{name}]",
            build=lambda cfg=cfg: NeuroLlama(cfg),
            make_input=_tokens,
            # torch.compile(fullgraph=True): ~17 s on 2 busy cores; one configuration
            compile=name == "full_matrix",
        )
    )
    for name, cfg in CAUSAL_TOGGLES.items()
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_every_causal_toggle_on_keeps_the_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


def test_the_published_sequence_exit_leaks_the_future() -> None:
    """exit_mode='sequence' pools exit logits over the whole sequence: with a threshold every
    row passes, a position's logits come from the exit head whose confidence used later tokens;
    with a threshold between the rows' confidences, changing the future flips the decision."""
    torch.manual_seed(0)
    model = NeuroLlama(tiny(exit_mode="sequence", exit_confidence_threshold=0.02)).eval()
    x = torch.randint(0, 53, (1, 12))
    y = x.clone()
    y[:, 6:] = torch.randint(0, 53, (1, 6))
    lx, ux = model.sequence_exit(x)
    ly, uy = model.sequence_exit(y)
    # find a threshold separating the two rows' pooled confidences at the first exit
    out_x, out_y = model.run(x, output_layers=True), model.run(y, output_layers=True)
    assert out_x.layers is not None
    assert out_y.layers is not None
    cx = model.exit_logits(out_x.layers[2], 0).mean(1).softmax(-1).amax(-1).item()
    cy = model.exit_logits(out_y.layers[2], 0).mean(1).softmax(-1).amax(-1).item()
    assert cx != cy
    model.config = model.config.replace(exit_confidence_threshold=(cx + cy) / 2)
    lx, ux = model.sequence_exit(x)
    ly, uy = model.sequence_exit(y)
    assert int(ux) != int(uy)
    assert not torch.allclose(lx[:, :6], ly[:, :6])


# ---------------------------------------------------------------- the loss


def test_training_loss_is_the_deep_supervision_sum() -> None:
    torch.manual_seed(0)
    cfg = tiny(exit_loss_decay=0.5, prediction_error_weight=0.3)
    model = NeuroLlama(cfg)
    x = torch.randint(0, 53, (2, 9))
    inp, tgt = x[:, :-1], x[:, 1:]
    loss, metrics = model.training_loss(inp, tgt)
    out = model.run(inp, output_layers=True)
    assert out.layers is not None
    want = F.cross_entropy(out.logits.flatten(0, 1), tgt.flatten())
    for i, layer in enumerate(cfg.exit_layers):
        z = model.lm_head(model.exit_norms[i](out.layers[layer + 1]))
        want = want + 0.5 ** (cfg.num_layers - 1 - layer) * F.cross_entropy(
            z.flatten(0, 1), tgt.flatten()
        )
    assert model.surprise is not None
    surprise = sum(
        (out.layers[i].detach() - head(out.layers[i + 1])).pow(2).mean()
        for i, head in enumerate(model.surprise.heads)
    )
    want = want + 0.3 * surprise
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    assert set(metrics) == {"ce", "ce_exit1", "ce_exit2", "surprise"}
    loss.backward()
    assert model.exit_norms[0].weight.grad is not None


# ---------------------------------------------------------------- early exit


def _exit_model(seed: int = 0) -> NeuroLlama:
    torch.manual_seed(seed)
    cfg = tiny(exit_layers=(0, 2)).neuro_off().replace(early_exit=True)
    model = NeuroLlama(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    return model


def _reference_exit(model: NeuroLlama, row: torch.Tensor, threshold: float) -> tuple[list, list]:
    """Recompute every step from the per-layer input states of all earlier tokens (no cache):
    an exited token's input to a skipped layer is its exited residual state."""
    L = model.config.num_layers
    states: list[list[torch.Tensor]] = [[] for _ in range(L)]  # states[l][s]: input of layer l
    nll, used = [], []
    exits = {layer: i for i, layer in enumerate(model.exits)}
    for t in range(len(row) - 1):
        x = model.embed(row[t : t + 1])[0]
        done, logits = None, None
        for layer, block in enumerate(model.layers):
            states[layer].append(x)
            if done is not None:
                continue
            seq = torch.stack(states[layer])[None]
            ctx, _ = model._layout(1, seq.shape[1], 0, None, None, row.device)
            x = block(seq, ctx)[0, -1]
            if layer in exits:
                z = model.exit_logits(x, exits[layer]).float()
                if float(z.softmax(-1).max()) >= threshold:
                    done, logits = layer + 1, z
        if logits is None:
            logits, done = model.lm_head(model.norm(x)).float(), L
        nll.append(float(torch.logsumexp(logits, -1) - logits[row[t + 1]]))
        used.append(done)
    return nll, used


@torch.no_grad()
@pytest.mark.parametrize("threshold", [0.2, 0.3, 0.5, 0.7])
def test_early_exit_decoding_equals_recomputation_with_propagated_states(threshold: float) -> None:
    model = _exit_model()
    tokens = torch.randint(0, 53, (2, 14))
    res = early_exit_decode(model, tokens, threshold)
    for r, row in enumerate(tokens):
        nll, used = _reference_exit(model, row, threshold)
        torch.testing.assert_close(res.nll[r * 13 : (r + 1) * 13].double(),
                                   torch.tensor(nll, dtype=torch.float64),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        assert res.layers[r * 13 : (r + 1) * 13].tolist() == used


@torch.no_grad()
def test_mixed_exits_happen_at_some_threshold() -> None:
    """The thresholds above cover tokens that exit at each exit and tokens that do not exit."""
    model = _exit_model()
    torch.manual_seed(0)
    tokens = torch.randint(0, 53, (2, 14))
    layers = set(early_exit_decode(model, tokens, 0.3).layers.tolist())
    assert layers == {1, 3, 4}


@torch.no_grad()
def test_no_exit_is_the_full_model_and_counts_the_full_compute() -> None:
    model = _exit_model(1)
    tokens = torch.randint(0, 53, (2, 10))
    res = early_exit_decode(model, tokens, None)
    logits = model(tokens[:, :-1]).float()
    want = (torch.logsumexp(logits, -1) - logits.gather(-1, tokens[:, 1:, None])[..., 0]).flatten()
    torch.testing.assert_close(res.nll.float(), want, atol=1e-4, rtol=1e-4)
    assert set(res.layers.tolist()) == {4}
    assert torch.equal(res.flops, res.full_flops)
    # a threshold above 1 checks every exit and never takes one: two d·V heads on top
    over = early_exit_decode(model, tokens, 1.5)
    torch.testing.assert_close(over.nll, res.nll)
    c = model.spec
    assert (over.flops - over.full_flops).tolist() == [2 * 2 * c.d_model * c.vocab_size] * 18
    torch.testing.assert_close(truncated_nll(model, tokens, 4), want, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_exiting_at_the_first_exit_costs_kv_projections_only_after_it() -> None:
    model = _exit_model(2)
    tokens = torch.randint(0, 53, (1, 8))
    res = early_exit_decode(model, tokens, 1e-9)
    assert set(res.layers.tolist()) == {1}
    c = model.spec
    hd, d = c.head_dim, c.d_model
    for t, f in enumerate(res.flops.tolist()):
        block = (2 * d * (c.n_heads + 2 * c.kv_heads) * hd + 4 * c.n_heads * hd * (t + 1)
                 + 2 * c.n_heads * hd * d + 6 * d * c.ffn_dim)  # fmt: skip
        assert f == block + 3 * 4 * d * c.kv_heads * hd + 2 * d * c.vocab_size
    out = model.run(tokens[:, :-1], output_layers=True)
    assert out.layers is not None
    z = model.exit_logits(out.layers[1], 0).float()[0]
    want = torch.logsumexp(z, -1) - z.gather(-1, tokens[0, 1:, None])[:, 0]
    torch.testing.assert_close(res.nll.float(), want, atol=1e-4, rtol=1e-4)


def test_calibration_lowers_the_dev_nll_of_each_exit() -> None:
    model = _exit_model(3)
    dev = torch.randint(0, 53, (4, 16))
    out = model.run(dev[:, :-1], output_layers=True)
    assert out.layers is not None

    @torch.no_grad()
    def nll(i: int) -> float:
        z = model.exit_logits(out.layers[model.exits[i] + 1], i).float()  # type: ignore[index]
        return float(F.cross_entropy(z.flatten(0, 1), dev[:, 1:].flatten()))

    before = [nll(i) for i in range(2)]
    temps = calibrate_exits(model, dev)
    after = [nll(i) for i in range(2)]
    assert all(t > 0 and math.isfinite(t) for t in temps)
    assert all(a <= b + 1e-6 for a, b in zip(after, before))
    assert temps != [1.0, 1.0]


# ---------------------------------------------------------------- decoding with a cache

ALL_ON = {
    **CAUSAL_TOGGLES,
    "full_matrix+habituation": tiny(
        synaptic_mode="full_matrix", synaptic_window=4, hebbian_attention=False
    ),
}


@torch.no_grad()
@pytest.mark.parametrize("name", sorted(ALL_ON))
def test_kv_cache_generation_equals_recomputation_with_every_causal_toggle(name: str) -> None:
    from neuro_models.generate import SamplingConfig, generate

    torch.manual_seed(0)
    model = NeuroLlama(ALL_ON[name]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    prompts = torch.randint(0, 53, (3, 6))
    cfg = SamplingConfig(max_new_tokens=8, temperature=0)
    assert generate(model, prompts, cfg) == generate(model, prompts, cfg, use_cache=False)
    # chunked logits: a prefix, then one token at a time, equal the whole sequence's
    x = torch.randint(0, 53, (2, 12))
    cache = model.new_cache(2)
    parts = [model(x[:, :5], cache=cache)] + [model(x[:, i : i + 1], cache=cache)
                                               for i in range(5, 12)]  # fmt: skip
    torch.testing.assert_close(torch.cat(parts, 1), model(x), atol=2e-5, rtol=1e-5)


@torch.no_grad()
def test_left_padded_generation_without_hebbian_equals_each_row_alone() -> None:
    from neuro_models.generate import SamplingConfig, generate

    torch.manual_seed(1)
    model = NeuroLlama(ALL_ON["full_matrix+habituation"]).eval()
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    cfg = SamplingConfig(max_new_tokens=6, temperature=0)
    assert generate(model, prompts, cfg) == [generate(model, [p], cfg)[0] for p in prompts]
