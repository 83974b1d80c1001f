"""reproductions/aura-perplexity: the extra evaluations (stream NLL with and without the shift,
documents, visited training windows) against closed forms and direct computations, and the
verdict rule of its CLAIM.md on hand-made per-seed tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.evaluate import evaluate
from neuro_models.experiment.runner import load_experiment

DECL = Path(__file__).resolve().parents[1] / "reproductions" / "aura-perplexity" / "experiment.py"
mod = load_experiment(DECL)
V = 11


class Copier(nn.Module):
    """logits = s · onehot(x_t): p(x_t) = e^s / (e^s + V − 1)."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * F.one_hot(x, V).float() + 0 * self.dummy


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, 8)
        self.mix = nn.Linear(16, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.emb(x)
        prev = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], 1)
        return self.mix(torch.cat([e, prev], -1))


def test_stream_nll_closed_form_for_a_copier() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, V, 4 * 8 + 1)
    s = 3.0
    r = mod.stream_nll(Copier(s), tokens, 8)
    p_hit = math.exp(s) / (math.exp(s) + V - 1)
    p_miss = 1 / (math.exp(s) + V - 1)
    assert r["no_shift"] == pytest.approx(-math.log(p_hit), rel=1e-6)
    y, x = tokens[1:], tokens[:-1]
    hits = float((x == y).mean())
    want = -(hits * math.log(p_hit) + (1 - hits) * math.log(p_miss))
    assert r["shift"] == pytest.approx(want, rel=1e-6)
    assert r["n_tokens"] == 32


def test_stream_nll_matches_evaluate_and_a_direct_loop() -> None:
    rng = np.random.default_rng(1)
    seq = 7
    tokens = rng.integers(0, V, 5 * seq + 1)
    model = Tiny()
    r = mod.stream_nll(model, tokens, seq)
    assert r["shift"] == pytest.approx(evaluate(model, tokens, seq).nll, rel=1e-6)
    total = 0.0
    with torch.no_grad():
        for i in range(5):
            w = torch.from_numpy(tokens[i * seq : i * seq + seq]).long()[None]
            total += float(F.cross_entropy(model(w)[0], w[0], reduction="sum"))
    assert r["no_shift"] == pytest.approx(total / (5 * seq), rel=1e-6)
    with pytest.raises(ValueError, match="seq_len"):
        mod.stream_nll(model, tokens[:5], seq)


def test_documents_split_at_eos_and_skip_short_ones() -> None:
    eos = 0
    stream = np.array([0, *range(1, 12), 0, 5, 6, 0, *range(1, 11), 0, *range(3, 15)])
    docs = mod.documents(stream, eos, n=5, min_tokens=10)
    assert docs == [list(range(1, 12)), list(range(1, 11)), list(range(3, 15))]
    assert mod.documents(stream, eos, n=1) == [list(range(1, 12))]


def test_seen_windows_one_epoch_visits_each_window_once() -> None:
    seq, batch = 4, 3
    n_windows = 12
    tokens = n_windows * seq + 1
    r = mod.seen_windows(tokens, seq, batch, seed=5, steps=n_windows // batch, n_prefix=6)
    assert r == {"windows": 6, "fraction_seen": 1.0, "min_visits": 1, "mean_visits": 1.0}
    r = mod.seen_windows(tokens, seq, batch, seed=5, steps=2 * n_windows // batch, n_prefix=12)
    assert r["min_visits"] == 2
    r = mod.seen_windows(tokens, seq, batch, seed=5, steps=1, n_prefix=12)
    assert r["fraction_seen"] == pytest.approx(3 / 12)


def _tables(pub_copy: list[float], pub_shift: list[float], hon_copy: list[float],
            hon_shift: list[float]) -> dict:  # fmt: skip
    def entry(train_nb_noshift: float, held_stream_shift: float) -> dict:
        cell = {"shift": 1.0, "no_shift": 1.0}
        return {
            "train": {"notebook": {**cell, "no_shift": train_nb_noshift}, "stream": cell},
            "held_out": {"stream": {**cell, "shift": held_stream_shift}, "notebook": cell},
        }

    return {
        "copy": [entry(a, b) for a, b in zip(pub_copy, hon_copy)],
        "shift": [entry(a, b) for a, b in zip(pub_shift, hon_shift)],
    }


@pytest.mark.parametrize(
    ("tables", "outcome"),
    [
        (([0.01, 0.02, 0.015], [5.9, 6.0, 6.1], [7.0, 7.2, 7.1], [3.0, 3.02, 3.01]), "refuted"),
        (([6.5, 6.6, 6.7], [5.9, 6.0, 6.1], [7.0, 7.2, 7.1], [3.0, 3.02, 3.01]), "confirmed"),
        (([5.0, 7.0, 6.0], [5.9, 6.0, 6.1], [7.0, 7.2, 7.1], [3.0, 3.02, 3.01]), "inconclusive"),
    ],
)
def test_verdict_rule(tables: tuple, outcome: str) -> None:
    summary = {"informative": {"ok": True, "reason": ""}, "scale_config": {"seeds": [0, 1, 2]}}
    v = mod.judge(summary, _tables(*tables))
    assert v[0]["outcome"] == "not testable"
    assert v[1]["outcome"] == outcome


def test_no_verdict_when_the_reference_does_not_beat_the_bigram_floor() -> None:
    summary = {"informative": {"ok": False, "reason": "not informative"},
               "scale_config": {"seeds": [0, 1, 2]}}  # fmt: skip
    t = _tables([0.01] * 3, [6.0] * 3, [7.0] * 3, [3.0] * 3)
    assert mod.judge(summary, t)[1]["outcome"] == "not testable"
