"""The iso-parameter Llama baseline on TinyStories, trained and evaluated end to end (CLAIM.md).

One arm, no comparison: the report shows what every reproduction compares against at this
scale — the floors, the learning curves over seeds, the held-out NLL, perplexity and bits/byte,
and a generated story — all through :mod:`neuro_models.experiment`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neuro_models import Llama, LlamaConfig
from neuro_models.config import swiglu_hidden
from neuro_models.experiment import Arm, Experiment, Scale, smoke_scale
from neuro_models.generate import SamplingConfig, generate_text

PROMPT = "Once upon a time"

#: Model shapes per scale: (d_model, n_layers, n_heads, vocab, seq_len).
SHAPES = {"smoke": (64, 2, 4, 1024, 64), "cpu": (128, 4, 4, 4096, 128)}

SCALES = {
    "smoke": smoke_scale(),
    # ~1.3M parameters (0.5M of them embedding), 1.5M tokens per seed (~3 passes over the head).
    "cpu": Scale(
        name="cpu", steps=750, batch_size=16, seq_len=128, seeds=(0, 1, 2),
        lr_grid=(1.5e-3, 3e-3, 6e-3), dev_tokens=32_768, eval_tokens=None, curve_tokens=32_768,
        note="about 0.3% of one TinyStories epoch; the harness's baseline, not a literature number.",
    ),
}  # fmt: skip


def _config(scale: str) -> LlamaConfig:
    d, n_layers, heads, vocab, seq = SHAPES[scale]
    return LlamaConfig(vocab_size=vocab, d_model=d, n_layers=n_layers, n_heads=heads,
                       n_kv_heads=heads, ffn_dim=swiglu_hidden(d), max_seq_len=seq)  # fmt: skip


def analyze(arm: Arm, model: nn.Module, context: Mapping[str, Any]) -> dict[str, Any]:
    """A short story from the trained model (temperature 0.8, top-k 40, seeded)."""
    tok, seed = context["ctx"].tokenizer, context["seed"]
    room = arm.config.max_seq_len - len(tok.encode(PROMPT))
    story = generate_text(
        model, tok, [PROMPT], SamplingConfig(max_new_tokens=min(120, room), temperature=0.8, top_k=40),
        stop_strings=["<|endoftext|>"], generator=torch.Generator().manual_seed(seed),
    )[0]  # fmt: skip
    return {"story": PROMPT + story}


def report(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict]]:
    """The per-seed table and the seed-0 story."""
    rows = sorted(runs, key=lambda r: r["seed"])
    lines = ["## Per seed", "", "| seed | held-out NLL | perplexity | bits/byte | tokens evaluated |",
             "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    lines += [f"| {r['seed']} | {r['valid']['nll']:.4f} | {r['valid']['ppl']:.2f} | "
              f"{r['valid']['bpb']:.4f} | {r['valid']['n_tokens']:,} |" for r in rows]  # fmt: skip
    story = rows[0]["analysis"]["story"].replace("\n", "\n> ")
    lines += [
        "",
        f"## Sample (seed {rows[0]['seed']}, temperature 0.8, top-k 40)",
        "",
        f"> {story}",
    ]
    return "\n".join(lines), []


def experiment(scale: str) -> Experiment:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    arm = Arm(name="Llama", description="Llama-style baseline (RoPE, SwiGLU, RMSNorm, tied embeddings)",
              config=_config(scale), build=Llama)  # fmt: skip
    return Experiment(
        name="baseline-tinystories", title="baseline-tinystories: the Llama baseline, end to end",
        corpus="tinystories", substitute="ptb", tokenizer="bpe", vocab_size=SHAPES[scale][3],
        arms=[arm], reference="Llama", comparisons=[], scale=SCALES[scale], analyze=analyze,
        report=report,
    )  # fmt: skip
