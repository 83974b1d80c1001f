"""Held-out evaluation against independent computations."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_models.data import ByteTokenizer, tokenize_to_shard
from neuro_models.evaluate import evaluate, mean_std


class Bigram(nn.Module):
    """logits[t] = W[x_t]: each prediction depends only on the previous token, so the exact NLL of
    a stream does not depend on how it is cut into windows."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=g))
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.table[x])


def _direct_nll(model: Bigram, tokens: np.ndarray) -> float:
    t = torch.as_tensor(tokens.astype(np.int64))
    logp = torch.log_softmax(model.table.detach().double()[t[:-1]], dim=-1)
    return float(-logp[torch.arange(len(t) - 1), t[1:]].mean())


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 200),
    seq_len=st.integers(1, 40),
    batch=st.integers(1, 5),
    seed=st.integers(0, 100),
)
def test_bigram_nll_is_exact_for_any_window_and_batch(n, seq_len, batch, seed):
    vocab = 11
    tokens = np.random.default_rng(seed).integers(0, vocab, n)
    model = Bigram(vocab, seed)
    r = evaluate(model, tokens, seq_len, batch_size=batch)
    assert r.n_tokens == n - 1
    assert r.nll == pytest.approx(_direct_nll(model, tokens), rel=1e-6, abs=1e-6)
    assert r.ppl == pytest.approx(math.exp(r.nll), rel=1e-12)


def test_eval_mode_is_used_and_training_mode_restored():
    model = Bigram(7)
    model.train()
    tokens = np.arange(100) % 7
    r1 = evaluate(model, tokens, 16)
    r2 = evaluate(model, tokens, 16)
    assert model.training
    assert r1.nll == r2.nll  # dropout would make repeated calls differ
    assert r1.nll == pytest.approx(_direct_nll(model, tokens), rel=1e-6)


def test_uniform_model_bits_per_byte():
    class Uniform(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*x.shape, 257) + self.p

    docs = ["hello world", "ünïcödé ✓"]
    shard = tokenize_to_shard(docs, ByteTokenizer())
    r = evaluate(Uniform(), shard, seq_len=5)
    assert r.nll == pytest.approx(math.log(257))
    n_bytes = sum(len(d.encode()) for d in docs)
    # Every byte plus the one separator between documents is predicted once.
    assert r.n_tokens == n_bytes + len(docs) - 1
    assert r.bpb == pytest.approx(r.n_tokens * math.log(257) / (math.log(2) * n_bytes))
    assert evaluate(Uniform(), shard.tokens, seq_len=5).bpb is None


def test_model_returning_logits_attribute_and_max_tokens():
    class Out:
        def __init__(self, logits: torch.Tensor) -> None:
            self.logits = logits

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Bigram(5)

        def forward(self, x: torch.Tensor) -> Out:
            return Out(self.inner(x))

    tokens = np.arange(50) % 5
    m = Wrapped()
    r = evaluate(m, tokens, 8, max_tokens=20)
    assert r.n_tokens == 20
    assert r.nll == pytest.approx(_direct_nll(m.inner, tokens[:21]), rel=1e-6)


def test_bad_arguments():
    m = Bigram(3)
    with pytest.raises(ValueError, match="seq_len"):
        evaluate(m, np.arange(10) % 3, 0)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate(m, np.array([1]), 4)
    with pytest.raises(ValueError, match="1-D"):
        evaluate(m, np.zeros((2, 3), dtype=np.int64), 4)
    with pytest.raises(ValueError, match="n_bytes"):
        evaluate(m, np.arange(10) % 3, 4, n_bytes=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=10))
def test_mean_std_matches_statistics(values):
    m, s = mean_std(values)
    assert m == pytest.approx(statistics.fmean(values), abs=1e-9)
    assert s == pytest.approx(statistics.stdev(values), rel=1e-7, abs=1e-7)


def test_mean_std_edge_cases():
    assert mean_std([2.0]) == (2.0, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        mean_std([])
