"""How many characters the iso-parameter Llama of the cpu scale needs to beat the bigram.

One pass over the first N characters of Tiny Shakespeare's train split (first 90 %), batch
``--batch`` × 64 (default 4), AdamW (weight decay 0.1), linear warmup over 5 % then cosine to 0.1 × the peak rate;
held-out NLL on the first 8,192 characters of the validation split; the add-0.01 bigram fitted
on the whole train split for comparison (the framework's floor tunes its smoothing on dev).
Not the experiment's protocol (no sweep, one seed): a budget probe. Usage:

    python reproductions/hebllm-tinyshakespeare/diagnosis/llama_budget.py \\
        --data-dir ../shared/data 40960 409600
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiment import NETWORKS, VOCAB, LocalArm, _llama

from neuro_models import Llama
from neuro_models.hebllm import HebLLM, hebllm_local_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch", type=int, default=4, help="sequences of 64 characters per step")
    ap.add_argument("budgets", type=int, nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    B = args.batch
    text = (Path(args.data_dir) / "tinyshakespeare" / "input.txt").read_text()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(ch) for ch in text])
    cut = int(0.9 * len(ids))
    tr, va = ids[:cut], ids[cut : cut + 8192].reshape(-1, 64)
    arm = LocalArm(name="SNN", description="", config=NETWORKS["cpu"], build=HebLLM,
                   loss=hebllm_local_loss)  # fmt: skip
    cfg = _llama("cpu", arm.n_params())
    big = torch.full((VOCAB, VOCAB), 0.01, dtype=torch.float64)
    big.index_put_((tr[:-1], tr[1:]), torch.ones(len(tr) - 1, dtype=torch.float64),
                   accumulate=True)  # fmt: skip
    big /= big.sum(1, keepdim=True)
    x, y = va[:, :-1].reshape(-1), va[:, 1:].reshape(-1)
    print(f"synapses {arm.n_params():,}; bigram (whole train split) on the evaluated characters "
          f"{float(-big[x, y].log().mean()):.4f}")  # fmt: skip
    for n in args.budgets:
        torch.manual_seed(0)
        model = Llama(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
        steps = n // (B * 64)
        t0 = time.perf_counter()
        for s in range(steps):
            warm = min(1.0, (s + 1) / (0.05 * steps + 1))
            cos = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))
            for g in opt.param_groups:
                g["lr"] = args.lr * warm * cos
            start = s * B * 65
            batch = tr[start : start + B * 65].reshape(B, 65)
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            nll = float(
                F.cross_entropy(model(va[:, :-1]).reshape(-1, VOCAB), va[:, 1:].reshape(-1))
            )
        print(f"Llama {n_params:,} parameters, {steps * B * 64:,} characters, batch {B} x 64, lr {args.lr}: held-out "
              f"NLL {nll:.4f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
