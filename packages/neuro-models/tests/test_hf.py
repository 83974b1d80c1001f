"""Weight conversion to and from ``transformers.LlamaForCausalLM``: identical logits both ways."""

from __future__ import annotations

import pytest
import torch

from neuro_models.config import LlamaConfig
from neuro_models.llama import Llama

transformers = pytest.importorskip("transformers")
from neuro_models.hf import from_hf, from_hf_config, to_hf, to_hf_config  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny matmuls gain nothing from threads; on a shared 2-core machine, OpenMP barriers waiting
    # for descheduled threads made each of them cost tens of milliseconds.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


CONFIGS = [
    LlamaConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96),
    LlamaConfig(
        vocab_size=97, d_model=48, n_layers=3, n_heads=3, n_kv_heads=3, ffn_dim=64,
        tie_embeddings=False, rope_theta=500000.0, norm_eps=1e-6, init_std=0.1,
    ),
]  # fmt: skip


def _randomize(model: torch.nn.Module) -> None:
    # Non-trivial norm weights so that a swapped or dropped norm would show.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)


@pytest.mark.parametrize("config", CONFIGS, ids=["gqa-tied", "mha-untied"])
def test_to_hf_identical_logits(config: LlamaConfig) -> None:
    torch.manual_seed(0)
    ours = Llama(config).eval()
    _randomize(ours)
    theirs = to_hf(ours)
    tokens = torch.randint(0, config.vocab_size, (3, 21))
    with torch.no_grad():
        diff = (ours(tokens) - theirs(input_ids=tokens).logits).abs().max()
    assert float(diff) <= 1e-4
    assert (theirs.lm_head.weight is theirs.model.embed_tokens.weight) == config.tie_embeddings


@pytest.mark.parametrize("config", CONFIGS, ids=["gqa-tied", "mha-untied"])
def test_from_hf_identical_logits(config: LlamaConfig) -> None:
    torch.manual_seed(1)
    # A model initialized by transformers itself, not one that came from us.
    theirs = transformers.LlamaForCausalLM(to_hf_config(config)).eval()
    _randomize(theirs)
    ours = from_hf(theirs)
    assert ours.config == config
    assert (ours.lm_head.weight is ours.embed.weight) == config.tie_embeddings
    tokens = torch.randint(0, config.vocab_size, (2, 30))
    with torch.no_grad():
        diff = (ours(tokens) - theirs(input_ids=tokens).logits).abs().max()
    assert float(diff) <= 1e-4


def test_round_trip_preserves_every_tensor() -> None:
    torch.manual_seed(2)
    ours = Llama(CONFIGS[1])
    back = from_hf(to_hf(ours))
    for (name, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_from_hf_config_rejects_unsupported_features() -> None:
    hf_config = to_hf_config(CONFIGS[0])
    hf_config.mlp_bias = True
    with pytest.raises(ValueError, match="mlp_bias"):
        from_hf_config(hf_config)
    hf_config = to_hf_config(CONFIGS[0])
    hf_config.hidden_act = "gelu"
    with pytest.raises(ValueError, match="hidden_act"):
        from_hf_config(hf_config)
    with pytest.raises(ValueError, match="model"):
        to_hf(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hf_model"):
        from_hf(torch.nn.Linear(2, 2))


def test_a_neurollama_backbone_round_trips_through_transformers() -> None:
    """NeuroLlama with its toggles off (exit heads on: they do not enter the logits) exports its
    backbone; the HF model's logits equal ours; from_hf gives a Llama whose weights load into the
    NeuroLlama (same names) and give the same logits."""
    from neuro_models.neurollama import NeuroLlama, NeuroLlamaConfig

    cfg = NeuroLlamaConfig(vocab_size=50, num_layers=2, hidden_dim=32, num_heads=4, num_kv_heads=2,
                           ffn_dim=48, max_seq_len=32, exit_layers=(0,)).neuro_off()  # fmt: skip
    cfg = cfg.replace(early_exit=True)
    torch.manual_seed(0)
    model = NeuroLlama(cfg).eval()
    tokens = torch.randint(0, 50, (2, 9))
    hf = to_hf(model)
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens).logits, model(tokens), atol=1e-4, rtol=1e-4)
    back = NeuroLlama(cfg).eval()
    result = back.load_state_dict(from_hf(hf).state_dict(), strict=False)
    assert all(k.startswith(("exit_norms", "exit_temperature")) for k in result.missing_keys)
    assert not result.unexpected_keys
    torch.testing.assert_close(back(tokens), model(tokens), atol=1e-5, rtol=1e-5)


def test_a_neurollama_with_a_mechanism_on_is_refused_naming_the_layer() -> None:
    from neuro_models.neurollama import NeuroLlama, NeuroLlamaConfig

    cfg = NeuroLlamaConfig(vocab_size=50, num_layers=2, hidden_dim=32, num_heads=4, num_kv_heads=2,
                           ffn_dim=48, max_seq_len=32, exit_layers=(0,)).neuro_off()  # fmt: skip
    model = NeuroLlama(cfg.replace(synaptic_modulation=True))
    with pytest.raises(ValueError, match="layer 0 has NeuroAttentionMixer"):
        to_hf(model)
