"""Autoregressive generation with a KV cache: greedy, temperature, top-k, top-p, repetition penalty.

The logit pipeline per step, in the order ``transformers`` applies it, so that the same settings
mean the same distribution:

    l ← repetition_penalty(l)   (CTRL, Keskar et al. 2019: l/p if l > 0 else l·p, for seen tokens)
    l ← l / temperature;  keep the top_k largest;  keep the smallest set with mass ≥ top_p
    (Holtzman et al. 2019);  next ~ softmax(l), or argmax(l) when temperature == 0.

Batches of prompts of different lengths are left-padded; padded positions are masked out of
attention and out of the repetition penalty. Generation stops per row at ``eos_id``, at a stop
token sequence, or (text API) at a stop string, and for the batch when every row has stopped.

CLI: ``python -m neuro_models.generate --run-dir RUN --prompt "Once upon a time"``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from neuro_models.decoder import Decoder
from neuro_models.llama import Llama

log = logging.getLogger(__name__)


class TextCodec(Protocol):
    """What the text API needs from a tokenizer (``neuro_models.data`` tokenizers satisfy it)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How to pick each next token.

    Attributes:
        max_new_tokens: tokens to generate per row (≥ 1).
        temperature: softmax temperature; ``0`` means greedy (argmax).
        top_k: keep only the ``k`` most likely tokens (None: all).
        top_p: nucleus sampling mass in (0, 1] (None or 1: all).
        repetition_penalty: CTRL penalty ``p ≥ 1`` on tokens already in the prompt or output
            (1: off).
        eos_id: token that ends a row (None: never).
        stop_sequences: token sequences that end a row when generated (kept in the output).
    """

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    eos_id: int | None = None
    stop_sequences: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be ≥ 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be ≥ 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if any(len(s) == 0 for s in self.stop_sequences):
            raise ValueError("stop_sequences must not contain an empty sequence")


def process_logits(
    logits: torch.Tensor,
    seen: torch.Tensor | None,
    config: SamplingConfig,
) -> torch.Tensor:
    """Apply repetition penalty, temperature, top-k and top-p to ``logits [B, V]`` (fp32).

    Args:
        logits: ``[B, V]`` next-token logits.
        seen: ``[B, V]`` bool, True for tokens already present in the row (None: no penalty).
        config: the sampling settings (``temperature == 0`` skips the temperature division).

    Returns:
        ``[B, V]`` fp32 logits with removed tokens at ``-inf``.
    """
    logits = logits.float()
    if config.repetition_penalty != 1.0 and seen is not None:
        p = config.repetition_penalty
        penalized = torch.where(logits > 0, logits / p, logits * p)
        logits = torch.where(seen, penalized, logits)
    if config.temperature > 0 and config.temperature != 1.0:
        logits = logits / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        kth = logits.topk(config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p is not None and config.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the mass of strictly more likely tokens already reaches top_p.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= config.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    seen: torch.Tensor | None,
    config: SamplingConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token ``[B]`` from ``logits [B, V]`` (see :func:`process_logits`)."""
    logits = process_logits(logits, seen, config)
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def _pad_left(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.bool)
    for i, p in enumerate(prompts):
        if len(p):
            tokens[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = True
    return tokens, mask


def _ends_with(row: list[int], stops: tuple[tuple[int, ...], ...]) -> bool:
    return any(len(row) >= len(s) and tuple(row[-len(s) :]) == s for s in stops)


@torch.inference_mode()
def generate(
    model: Decoder,
    prompts: Sequence[Sequence[int]] | torch.Tensor,
    config: SamplingConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    pad_id: int = 0,
    stop_check: Any = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Generate continuations of a batch of prompts with a KV cache (or by recomputation).

    Args:
        model: any :class:`~neuro_models.decoder.Decoder` (:class:`Llama`, ``NCNModel``, ...);
            switched to eval mode for the call and restored after.
        prompts: ``[B, T]`` int tensor of equal-length prompts, or ``B`` token lists of any
            lengths ≥ 1 (left-padded with ``pad_id``).
        config: sampling settings (default :class:`SamplingConfig`).
        generator: random generator for sampling (None: torch's global one).
        pad_id: token used for left padding (masked out, never attended to).
        stop_check: optional ``(row_index, generated_ids) -> bool`` called after each token;
            True ends that row (used for stop strings).
        use_cache: False recomputes the whole prefix at every step (the slow reference the
            tests compare the cache against, and the way to sample from a model whose token
            mixers cannot decode incrementally).

    Returns:
        ``B`` lists of generated token ids (prompt excluded), each ending at (and including) its
        eos/stop token, or ``max_new_tokens`` long.

    Raises:
        ValueError: empty prompts, out-of-range ids, or prompt + ``max_new_tokens`` longer than
            ``max_seq_len``.
    """
    config = config or SamplingConfig()
    if isinstance(prompts, torch.Tensor):
        if prompts.ndim != 2 or prompts.is_floating_point() or prompts.shape[1] == 0:
            raise ValueError(f"prompts must be an int tensor [B, T≥1], got {tuple(prompts.shape)}")
        tokens, mask = prompts.long(), None
    else:
        if len(prompts) == 0 or any(len(p) == 0 for p in prompts):
            raise ValueError("prompts must be a non-empty list of non-empty token lists")
        tokens, mask = _pad_left(prompts, pad_id)
        if bool(mask.all()):
            mask = None
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    mask = mask.to(device) if mask is not None else None
    B, T = tokens.shape
    V = model.spec.vocab_size
    capacity = T + config.max_new_tokens
    if capacity > model.spec.max_seq_len:
        raise ValueError(
            f"prompts: {T} prompt + {config.max_new_tokens} new tokens exceed "
            f"max_seq_len = {model.spec.max_seq_len}"
        )
    seen = None
    if config.repetition_penalty != 1.0:
        seen = torch.zeros(B, V, dtype=torch.bool, device=device)
        real = tokens if mask is None else tokens.masked_fill(~mask, 0)
        seen.scatter_(1, real, True if mask is None else mask)

    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache(B, capacity) if use_cache else None
        logits = model.lm_head(model.hidden_states(tokens, cache=cache, attention_mask=mask)[:, -1])
        out: list[list[int]] = [[] for _ in range(B)]
        done = [False] * B
        for step in range(config.max_new_tokens):
            nxt = sample_next(logits, seen, config, generator)
            if seen is not None:
                seen.scatter_(1, nxt[:, None], True)
            for i, t in enumerate(nxt.tolist()):
                if done[i]:
                    continue
                out[i].append(t)
                done[i] = (
                    t == config.eos_id
                    or _ends_with(out[i], config.stop_sequences)
                    or (stop_check is not None and bool(stop_check(i, out[i])))
                )
            if all(done) or step == config.max_new_tokens - 1:
                break
            if cache is not None:
                h = model.hidden_states(nxt[:, None], cache=cache)
            else:
                tokens = torch.cat([tokens, nxt[:, None]], dim=1)
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
                h = model.hidden_states(tokens, attention_mask=mask)
            logits = model.lm_head(h[:, -1])
    finally:
        model.train(was_training)
    return out


def generate_text(
    model: Decoder,
    codec: TextCodec,
    prompts: Sequence[str],
    config: SamplingConfig | None = None,
    *,
    stop_strings: Sequence[str] = (),
    generator: torch.Generator | None = None,
) -> list[str]:
    """Text in, text out: encode ``prompts``, :func:`generate`, decode, cut at stop strings.

    A row stops at the first generated token after which its decoded text contains a stop
    string; the returned text ends just before that stop string.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings, got a single str")
    stops = [s for s in stop_strings if s]
    encoded = [codec.encode(p) for p in prompts]

    def stop_check(_: int, ids: list[int]) -> bool:
        text = codec.decode(ids)
        return any(s in text for s in stops)

    ids = generate(
        model, encoded, config, generator=generator, stop_check=stop_check if stops else None
    )
    texts = []
    for row in ids:
        text = codec.decode(row)
        cut = min((text.index(s) for s in stops if s in text), default=len(text))
        texts.append(text[:cut])
    return texts


def _load_run(run_dir: Path) -> tuple[Llama, Any]:
    """Model (latest checkpoint) and tokenizer of a ``neuro-train`` output directory."""
    from neuro_models.checkpoint import load_checkpoint
    from neuro_models.config import LlamaConfig
    from neuro_models.data.tokenizers import load_tokenizer

    tok_path = run_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"--run-dir: {str(tok_path)!r} is missing")
    ckpt = load_checkpoint(run_dir / "checkpoints")
    model_config = ckpt.meta.get("model_config")
    if not isinstance(model_config, dict):
        raise ValueError(f"--run-dir: checkpoint {str(ckpt.path)!r} has no model_config")
    model_config = {k: v for k, v in model_config.items() if k != "type"}
    model = Llama(LlamaConfig.from_dict(model_config))
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as err:
        raise ValueError(
            f"--run-dir: checkpoint {str(ckpt.path)!r} does not fit a Llama: {err}"
        ) from err
    return model, load_tokenizer(tok_path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m neuro_models.generate``: sample from a trained run (or a random tiny model)."""
    ap = argparse.ArgumentParser(prog="python -m neuro_models.generate", description=__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", type=Path, help="output directory of neuro-train")
    src.add_argument(
        "--random-tiny", action="store_true", help="untrained byte-level tiny model (smoke test)"
    )
    ap.add_argument("--prompt", action="append", required=True, help="repeat for a batch")
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.run_dir is not None:
        model, codec = _load_run(args.run_dir)
    else:
        from neuro_models.data.tokenizers import ByteTokenizer
        from neuro_models.params import tiny

        torch.manual_seed(args.seed)
        model, codec = Llama(tiny(vocab_size=256)), ByteTokenizer()
    eos = getattr(codec, "eos_id", None)
    config = SamplingConfig(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        eos_id=eos if isinstance(eos, int) else None,
    )
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    texts = generate_text(model, codec, args.prompt, config, stop_strings=args.stop, generator=gen)
    for prompt, text in zip(args.prompt, texts):
        sys.stdout.write(prompt + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
