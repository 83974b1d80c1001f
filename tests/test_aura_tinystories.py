"""reproductions/aura-tinystories: the place-cell Llama of arm d and the copy-at-distance probe,
each against a reference written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuro_models import Llama, LlamaConfig
from neuro_models.experiment.runner import load_experiment

ROOT = Path(__file__).resolve().parents[1]
exp_mod = load_experiment(ROOT / "reproductions" / "aura-tinystories" / "experiment.py")


def _n(model: nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def test_place_llama_adds_exactly_the_place_cell_parameters() -> None:
    cfg = LlamaConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, n_kv_heads=2, ffn_dim=24,
                      max_seq_len=8)  # fmt: skip
    P, d = 40, 16
    model = exp_mod.PlaceLlama(exp_mod.PlaceLlamaConfig(llama=cfg, n_place_cells=P))
    # prototypes W_p [P, d] + b_p [P], read-out W_r [d, P] + b_r [d]
    assert _n(model) == _n(Llama(cfg)) + 2 * P * d + P + d
    assert model.lm_head.weight is model.embed.weight


def test_place_llama_embedding_is_the_place_cell_residual() -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, n_kv_heads=2, ffn_dim=24,
                      max_seq_len=8)  # fmt: skip
    model = exp_mod.PlaceLlama(exp_mod.PlaceLlamaConfig(llama=cfg, n_place_cells=40))
    place = model.embed.place
    tokens = torch.tensor([[1, 2, 3]])
    e = model.embed.weight[tokens]
    z = e @ place.prototypes.T + place.bias
    k = max(1, int(0.03 * 40))
    top = z.topk(k, dim=-1).indices
    a = torch.zeros_like(z).scatter(-1, top, torch.sigmoid(z).gather(-1, top))
    expected = e + 0.1 * (a @ place.readout.weight.T + place.readout.bias)
    torch.testing.assert_close(model.embed(tokens), expected)


class _InductionOracle(nn.Module):
    """Predicts the token that followed the most recent earlier occurrence of the current token
    (token 0 when there is none): a perfect copier."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape
        out = torch.zeros(B, T, self.vocab)
        for b in range(B):
            for t in range(T):
                guess = 0
                for j in range(t - 1, -1, -1):
                    if x[b, j] == x[b, t]:
                        guess = int(x[b, j + 1])
                        break
                out[b, t, guess] = 10.0
        return out


class _Constant(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape, self.vocab)


def test_copy_probe_scores_a_perfect_copier_one_and_a_flat_model_chance() -> None:
    vocab = 300
    train = np.random.default_rng(0).integers(0, vocab, size=20_000)
    distances = (3, 8, 20)
    got = exp_mod.copy_probe(_InductionOracle(vocab), train, distances, 5, 100)
    for d in distances:
        assert got[str(d)]["accuracy"] == [1.0] * 5
        first = np.mean(got[str(d)]["nll_first_copy"])
        # the oracle's logit 10 on the answer: NLL = log(e¹⁰ + V − 1) − 10
        np.testing.assert_allclose(
            got[str(d)]["nll"], np.log(np.exp(10) + vocab - 1) - 10, rtol=1e-3
        )
        assert first > 1.0
    flat = exp_mod.copy_probe(_Constant(vocab), train, distances, 5, 100)
    for d in distances:
        # argmax of equal logits is token 0; drawn tokens are distinct, so at most one hit
        assert max(flat[str(d)]["accuracy"]) <= 1 / (d - 1) + 1e-6
        np.testing.assert_allclose(flat[str(d)]["nll"], np.log(vocab), rtol=1e-6)


def test_probe_strings_repeat_distinct_frequent_tokens() -> None:
    train = np.repeat(np.arange(50), np.arange(50, 0, -1))  # token i appears 50 − i times
    x = exp_mod._probe_strings(train, 10, 4, 20)
    assert x.shape == (4, 20)
    assert torch.equal(x[:, :10], x[:, 10:])
    assert all(len(set(row[:10].tolist())) == 10 for row in x)
    assert int(x.max()) < 20  # only the 20 most frequent tokens
