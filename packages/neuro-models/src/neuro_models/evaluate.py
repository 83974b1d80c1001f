"""Exact held-out evaluation: per-token NLL, perplexity and bits per byte; mean ± std over seeds.

Definitions (``shared/specs/reference-systems.md`` §6.2):

    NLL = −(1/N) Σ_t log p(x_{t+1} | x_{≤t})     (nats, fp32 log-softmax over the full vocabulary)
    ppl = exp(NLL)
    bpb = (Σ_t −log p(x_{t+1} | x_{≤t})) / (ln 2 · n_bytes)

The stream is cut into **non-overlapping** windows of ``seq_len + 1`` tokens that share one token
(window ``i`` covers tokens ``i·seq_len … (i+1)·seq_len``), so every token after the first is
predicted exactly once and the last window may be shorter. Tokens early in a window see
little context; this is the standard, cheap choice (nanoGPT, most papers) and the same for
every arm. A sliding window with stride < ``seq_len`` would give lower NLL at ``seq_len/stride``
times the cost; we do not use it so that numbers are comparable with the training loss. The
model runs in ``eval()`` mode (dropout off) under ``torch.no_grad``, without autocast, and its
training mode is restored afterwards; no label smoothing, no auxiliary losses.

Command line (``neuro-eval`` is the same)::

    python -m neuro_models.evaluate BUNDLE --text FILE [--seq-len N] [--batch-size N]
                                    [--max-tokens N] [--json]

scores a model bundle (:mod:`neuro_models.bundle`) on a UTF-8 text file, read as one document laid
out as a shard lays it out (the tokenizer's end-of-text id, then the text), so ``n_tokens`` is the
number of text tokens and bits per byte divides by the file's UTF-8 byte count.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.data.shards import Shard

__all__ = ["EvalResult", "evaluate", "logits_of", "main", "mean_std"]


@dataclass(frozen=True)
class EvalResult:
    """Held-out metrics. ``bpb`` is ``None`` when the byte count is unknown."""

    nll: float
    ppl: float
    bpb: float | None
    n_tokens: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"nll": self.nll, "ppl": self.ppl, "bpb": self.bpb, "n_tokens": self.n_tokens}


def logits_of(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Call ``model(inputs)`` and return the logits ``[B, T, V]`` (plain tensor, ``.logits`` or
    the first element of a tuple)."""
    out = model(inputs)
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits  # type: ignore[no-any-return]
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ValueError(f"model must return logits [B, T, V], got {type(out).__name__}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokens: Shard | np.ndarray | torch.Tensor | Sequence[int],
    seq_len: int,
    *,
    n_bytes: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """Exact per-token NLL of ``model`` on a held-out token stream.

    Args:
        model: maps int64 ``[B, T]`` to logits ``[B, T, V]``.
        tokens: the stream, shape ``[N]`` (a :class:`Shard` also supplies ``n_bytes``).
        seq_len: window length (≤ the model's context).
        n_bytes: UTF-8 bytes of the evaluated text, for bits per byte; defaults to the shard's. When
            ``max_tokens`` cuts the stream, bpb is scaled by the evaluated fraction of tokens (an
            approximation, flagged by passing ``n_bytes`` explicitly).
        batch_size: windows per forward pass (no effect on the result).
        max_tokens: evaluate only the first ``max_tokens + 1`` tokens (``None``: all).
        device: where to run; default the device of the model's first parameter.

    Returns:
        :class:`EvalResult` with ``n_tokens`` = number of predicted tokens (``N − 1``).
    """
    if isinstance(tokens, Shard):
        if n_bytes is None:
            n_bytes = tokens.n_bytes
        arr = np.asarray(tokens.tokens)
    elif isinstance(tokens, torch.Tensor):
        arr = tokens.detach().cpu().numpy()
    else:
        arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {arr.shape}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    full = len(arr)
    if max_tokens is not None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        arr = arr[: max_tokens + 1]
    if len(arr) < 2:
        raise ValueError(f"tokens must have at least 2 tokens, got {len(arr)}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    stream = torch.from_numpy(arr.astype(np.int64))
    n_pred = len(stream) - 1
    starts = list(range(0, n_pred, seq_len))
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    try:
        full_starts = [s for s in starts if s + seq_len <= n_pred]
        tail = [s for s in starts if s + seq_len > n_pred]
        for i in range(0, len(full_starts), batch_size):
            idx = torch.tensor(full_starts[i : i + batch_size])
            win = stream[idx[:, None] + torch.arange(seq_len + 1)].to(device)
            total += _nll_sum(model, win[:, :-1], win[:, 1:])
        for s in tail:
            win = stream[s:].to(device)[None]
            total += _nll_sum(model, win[:, :-1], win[:, 1:])
    finally:
        model.train(was_training)
    nll = float(total) / n_pred
    bpb = None
    if n_bytes is not None:
        if n_bytes <= 0:
            raise ValueError(f"n_bytes must be > 0, got {n_bytes}")
        # A cut stream covers roughly the same fraction of the bytes as of the tokens.
        frac = n_pred / (full - 1) if max_tokens is not None and full > 1 else 1.0
        bpb = float(total) / (math.log(2) * n_bytes * frac)
    return EvalResult(nll=nll, ppl=math.exp(min(nll, 700.0)), bpb=bpb, n_tokens=n_pred)


def _nll_sum(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = logits_of(model, inputs).float()
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets[..., None]).squeeze(-1)
    return nll.double().sum().cpu()


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single value)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("values must be non-empty")
    m = sum(v) / len(v)
    if len(v) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; ``ValueError`` naming the file if it is missing, not UTF-8 or
    empty."""
    if not path.is_file():
        raise ValueError(f"--text: file {str(path)!r} is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"--text: file {str(path)!r} cannot be read: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"--text: file {str(path)!r} is not UTF-8 (invalid byte at offset {exc.start})"
        ) from None
    if not text:
        raise ValueError(f"--text: file {str(path)!r} is empty")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """``neuro-eval`` / ``python -m neuro_models.evaluate``: score a model bundle on a text file.

    Prints NLL (nats/token), perplexity, bits per byte, the token count and the tokenizer
    identity, or one JSON object with ``--json``. Returns 0, or 2 after printing an error
    (missing, non-UTF-8 or empty text; not a bundle; a window longer than the model's context).
    """
    from neuro_models.bundle import BundleError, load_bundle
    from neuro_models.data.shards import tokenize_to_shard

    ap = argparse.ArgumentParser(
        prog="neuro-eval",
        description="Exact NLL, perplexity and bits per byte of a model bundle on a UTF-8 text.",
    )
    ap.add_argument("bundle", type=Path, help="model bundle folder (neuro_models.save_bundle)")
    ap.add_argument("--text", type=Path, required=True, help="UTF-8 text file, one document")
    ap.add_argument(
        "--seq-len", type=_positive_int, default=None, help="window length (default: max_seq_len)"
    )
    ap.add_argument("--batch-size", type=_positive_int, default=8, help="windows per forward")
    ap.add_argument(
        "--max-tokens", type=_positive_int, default=None, help="score only the first N tokens"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    try:
        text = _read_text(args.text)
        bundle = load_bundle(args.bundle)
        max_len = bundle.config.max_seq_len
        seq_len = max_len if args.seq_len is None else args.seq_len
        if seq_len > max_len:
            raise ValueError(f"--seq-len {seq_len} exceeds the model's max_seq_len {max_len}")
        # One document, laid out exactly as in a shard: eos, then the text.
        shard = tokenize_to_shard([text], bundle.tokenizer)
        result = evaluate(
            bundle.model,
            shard,
            seq_len,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
        )
    except (BundleError, ValueError) as exc:
        sys.stderr.write(f"{ap.prog}: error: {exc}\n")
        return 2

    report = {
        **result.as_dict(),
        "n_bytes": shard.n_bytes,
        "seq_len": seq_len,
        "tokenizer_id": bundle.tokenizer.identity,
        "kind": bundle.kind,
        "bundle": str(args.bundle),
        "text": str(args.text),
    }
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        bpb = "n/a" if result.bpb is None else f"{result.bpb:.6f}"
        cut = " (scaled: --max-tokens)" if args.max_tokens is not None else ""
        sys.stdout.write(
            f"bundle     {args.bundle} ({bundle.kind})\n"
            f"text       {args.text} ({shard.n_bytes} bytes)\n"
            f"tokenizer  {bundle.tokenizer.identity}\n"
            f"tokens     {result.n_tokens} (seq_len {seq_len})\n"
            f"nll        {result.nll:.6f} nats/token\n"
            f"ppl        {result.ppl:.6f}\n"
            f"bpb        {bpb}{cut}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
