"""Why the free HebLLM does not learn and what the teacher-clamped one learns (issue 15 item 6).

Trains one network per configuration on the first ``--train`` characters of Tiny Shakespeare's
train split (first 90 %, nanoGPT's split) by its local rules and reads it, frozen, on
``--eval`` characters of the validation split. Prints, per configuration: the weight change of
every projection; output spikes per slot and the fraction on the next character's group (and on
the current one's); the held-out NLL of the model's own readout (scalar fitted prequentially on
training, as in the reproduction); and, as upper bounds on the information in the counts (not
models: fitted on the evaluated tokens), the best softmax, Laplace and unigram-Dirichlet
readouts. Unigram (add-0.5) and bigram (add-0.1) floors are fitted on the same training
characters (not tuned). Usage:

    python reproductions/hebllm-tinyshakespeare/diagnosis/diagnose.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from neuro_models.hebllm import HebLLM, fit_readout, readout_nll

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiment import NETWORKS, VOCAB

FREE = dataclasses.replace(
    NETWORKS["cpu"], output_learning="free", readout="softmax", readout_prior=False,
    readout_window="gap", window_ms=4.0, gap_ms=6.0,
)  # fmt: skip
CONFIGS = {
    "free (the previous default)": FREE,
    "teacher (the reproduction's cpu network)": NETWORKS["cpu"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--train", type=int, default=4096)
    ap.add_argument("--eval", type=int, default=1024)
    args = ap.parse_args()
    text = (Path(args.data_dir) / "tinyshakespeare" / "input.txt").read_text()
    chars = sorted(set(text))
    assert len(chars) + 1 == VOCAB
    ids = torch.tensor([chars.index(ch) for ch in text])
    cut = int(0.9 * len(ids))
    L = 64
    tr = ids[: args.train // L * L].reshape(-1, L)
    te = ids[cut : cut + args.eval // L * L].reshape(-1, L)
    x, y = te[:, :-1].reshape(-1), te[:, 1:].reshape(-1)
    flat = tr.reshape(-1)
    uni = torch.bincount(flat, minlength=VOCAB).double() + 0.5
    uni /= uni.sum()
    big = torch.full((VOCAB, VOCAB), 0.1, dtype=torch.float64)
    big.index_put_((flat[:-1], flat[1:]), torch.ones(flat.numel() - 1, dtype=torch.float64),
                   accumulate=True)  # fmt: skip
    big /= big.sum(1, keepdim=True)
    print(f"train {tr.numel()} chars, evaluated {y.numel()} next characters")
    print(
        f"unigram NLL {float(-uni[y].log().mean()):.4f}, bigram NLL {float(-big[x, y].log().mean()):.4f}"
    )
    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        m = HebLLM(dataclasses.replace(cfg, seed=1))
        w0 = [w.clone() for w in m.weights]
        t0 = time.perf_counter()
        for b in range(0, tr.shape[0], 4):
            m.learn(tr[b : b + 4])
        sec = time.perf_counter() - t0
        print(f"\n== {name}: learned in {sec:.1f} s")
        for i, (a, b0) in enumerate(zip(m.weights, w0)):
            pr = m.projections[i]
            dw = float((a - b0).abs().max()) if a.numel() else 0.0
            print(f"  projection {i} {pr.pre}->{pr.post}: mean w {float(b0.mean()):.3f} -> "
                  f"{float(a.mean()):.3f}, max |dw| {dw:.3f}")  # fmt: skip
        cnt = m.counts(te)[:, :-1].reshape(-1, VOCAB)
        tot = cnt.sum().clamp(min=1)
        print(f"  output spikes per character {float(cnt.sum(1).mean()):.2f} "
              f"({cfg.output_per_token * VOCAB} output neurons); on the next character's group "
              f"{float(cnt.gather(1, y[:, None]).sum() / tot):.3f}, on the current one's "
              f"{float(cnt.gather(1, x[:, None]).sum() / tot):.3f} (1/V = {1 / VOCAB:.3f})")  # fmt: skip
        lp = m(te)[:, :-1].reshape(-1, VOCAB).double()
        print(f"  model readout ({cfg.readout}, prior {cfg.readout_prior}): held-out NLL "
              f"{float(-lp.gather(1, y[:, None]).mean()):.4f}, top-1 "
              f"{float((lp.argmax(1) == y).double().mean()):.3f}")  # fmt: skip
        for kind in ("softmax", "laplace"):
            for prior in (None, uni):
                s = fit_readout(cnt, y, kind, prior=prior)  # type: ignore[arg-type]
                nll = readout_nll(cnt, y, s, kind, prior)  # type: ignore[arg-type]
                print(f"  upper bound, {kind} fitted on the evaluated tokens, prior "
                      f"{'unigram' if prior is not None else 'uniform'}: {nll:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
