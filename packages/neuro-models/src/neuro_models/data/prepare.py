"""One call from a corpus name to a tokenizer and cached train/valid/test shards."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from neuro_models.data.registry import load_corpus
from neuro_models.data.shards import Shard, tokenize_to_shard
from neuro_models.data.tokenizers import (
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    default_cache_dir,
    train_bpe_tokenizer,
)

__all__ = ["PreparedData", "prepare_data"]

TokenizerKind = Literal["bpe", "byte", "char"]


@dataclass(frozen=True)
class PreparedData:
    """A tokenizer and the shards of each split (``test`` is ``None`` if the corpus has none)."""

    corpus: str
    tokenizer: Tokenizer
    train: Shard
    valid: Shard
    test: Shard | None


def prepare_data(
    corpus: str,
    tokenizer: TokenizerKind = "bpe",
    *,
    vocab_size: int = 4096,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PreparedData:
    """Load ``corpus``, build the tokenizer on its train split, and tokenize every split.

    Args:
        corpus: a name of :data:`neuro_models.data.CORPORA` with a train split.
        tokenizer: ``"bpe"`` (byte-level BPE trained on the train split, ``vocab_size``),
            ``"byte"`` or ``"char"`` (alphabet of all splits, as nanoGPT).
        vocab_size: BPE vocabulary size (ignored otherwise).
        data_dir: see :func:`neuro_models.data.resolve_data_dir`.
        cache_dir: root of the tokenizer and shard caches; default
            ``$NEURO_CACHE_DIR`` or ``~/.cache/neuro_models``.
    """
    if tokenizer not in ("bpe", "byte", "char"):
        raise ValueError(f"tokenizer must be 'bpe', 'byte' or 'char', got {tokenizer!r}")
    c = load_corpus(corpus, data_dir)
    if not c.train:
        raise ValueError(f"corpus {corpus!r} has no train split; use it for evaluation only")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir().parent
    tok: Tokenizer
    if tokenizer == "bpe":
        tok = train_bpe_tokenizer(c.train, vocab_size, cache_dir=root / "tokenizers")
    elif tokenizer == "byte":
        tok = ByteTokenizer()
    else:
        # nanoGPT's shakespeare_char builds the alphabet from the whole text; so do we, so that
        # a held-out character never makes evaluation fail.
        tok = CharTokenizer.from_texts([*c.train, *c.valid, *(c.test or [])])
    shard_dir = root / "shards"
    stem = f"{corpus}-{tokenizer}-{tok.identity[:12]}"
    train = tokenize_to_shard(c.train, tok, shard_dir / f"{stem}-train.bin")
    valid = tokenize_to_shard(c.valid, tok, shard_dir / f"{stem}-valid.bin")
    test = tokenize_to_shard(c.test, tok, shard_dir / f"{stem}-test.bin") if c.test else None
    return PreparedData(corpus, tok, train, valid, test)
