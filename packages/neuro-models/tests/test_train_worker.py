"""Subprocess worker for the resume and distributed tests (no tests in this module).

``python test_train_worker.py OUT_DIR --steps N [--parallel ddp|fsdp] [--kill-at K]``
trains a tiny Llama on a fixed synthetic stream in fp32 and writes ``OUT_DIR/result.json``
(per-step losses) and ``OUT_DIR/final.safetensors`` (weights). ``--kill-at K`` sends SIGKILL to
itself right after step K (after that step's checkpoint, if any). ``--kill-in-save K`` dies halfway
through writing the checkpoint of step K.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from neuro_models import Llama, LlamaConfig
from neuro_models.data import DataOrder
from neuro_models.distributed import init_distributed, shutdown_distributed
from neuro_models.train import StepInfo, TrainConfig, train

VOCAB = 64
SEQ = 16


def tiny_model() -> Llama:
    torch.manual_seed(1234)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_dim=64,
        max_seq_len=SEQ,
    )
    return Llama(cfg)


def stream(n: int = 4096) -> torch.Tensor:
    """A learnable stream: a noisy count-up sequence modulo VOCAB."""
    g = torch.Generator().manual_seed(7)
    steps = torch.randint(1, 3, (n,), generator=g)
    return (torch.cumsum(steps, 0) % VOCAB).to(torch.int64)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--parallel", default="none")
    p.add_argument("--ckpt-every", type=int, default=0)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--kill-in-save", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    info = init_distributed()
    for parallel in args.parallel.split(","):
        out = Path(args.out_dir) / parallel
        run(args, parallel, out, info.is_main)
    shutdown_distributed()


def run(args: argparse.Namespace, parallel: str, out: Path, is_main: bool) -> None:
    model = tiny_model()
    order = DataOrder(stream(), SEQ, args.batch_size, seed=3)
    config = TrainConfig(
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=3,
        max_steps=args.steps,
        batch_size=args.batch_size,
        seq_len=SEQ,
        grad_accum=args.grad_accum,
        precision="fp32",
        parallel=parallel,
        out_dir=str(out),
        ckpt_every=args.ckpt_every,
        log_every=1,
        resume=args.resume,
        progress=False,
        plot=False,
    )
    callbacks = []
    if args.kill_at is not None:

        def kill(s: StepInfo) -> None:
            if s.step == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(kill)
    if args.kill_in_save is not None:
        import safetensors.torch

        real = safetensors.torch.save_file
        calls = {"n": 0}

        def dying_save(tensors, filename, metadata=None):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            # Each checkpoint writes two tensor files; die after the first of checkpoint K.
            if calls["n"] == 2 * (args.kill_in_save // max(args.ckpt_every, 1)) - 1:
                real(tensors, filename, metadata)
                with open(filename, "r+b") as fh:
                    fh.truncate(os.path.getsize(filename) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            real(tensors, filename, metadata)

        safetensors.torch.save_file = dying_save
    result = train(model, config, order, callbacks=callbacks, tokenizer_id="synthetic")
    # Collective under FSDP: every rank gathers, the main rank writes.
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    if is_main:
        save_file({k: v.clone() for k, v in sd.items()}, str(out / "final.safetensors"))
        (out / "result.json").write_text(
            json.dumps({"losses": result.losses, "start": result.start_step})
        )


if __name__ == "__main__":
    main()
