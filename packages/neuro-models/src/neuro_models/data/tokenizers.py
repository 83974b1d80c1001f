"""Tokenizers behind one protocol: ``encode``, ``decode``, ``vocab_size``, ``eos_id``, ``identity``.

``identity`` is a sha256 hex digest of everything that determines the token ids; checkpoints store
it so that resuming or evaluating with a different tokenizer is refused.

* :class:`ByteTokenizer`: UTF-8 bytes 0..255 plus an end-of-text id 256.
* :class:`CharTokenizer`: one id per character of a fixed alphabet (nanoGPT's shakespeare_char),
  plus an end-of-text id after the alphabet.
* :class:`BPETokenizer` from :func:`train_bpe_tokenizer`: byte-level BPE trained locally with
  Hugging Face ``tokenizers`` (GPT-2 style pre-tokenization), cached by corpus hash and vocab size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = [
    "EOS_TOKEN",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "train_bpe_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"


@runtime_checkable
class Tokenizer(Protocol):
    """What the harness needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def identity(self) -> str: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def to_json(self) -> str: ...


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; ``eos_id`` = 256, so ``vocab_size`` = 257."""

    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        # Invalid byte sequences (a sample cut inside a character) decode to U+FFFD.
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"type": "byte"})

    @property
    def identity(self) -> str:
        return _sha(self.to_json())


class CharTokenizer:
    """One id per character of ``alphabet`` (in the given order); ``eos_id`` = ``len(alphabet)``.

    Build it with :meth:`from_texts` (sorted set of characters, as nanoGPT's ``prepare.py``).
    Encoding a character outside the alphabet raises ``ValueError``.
    """

    def __init__(self, alphabet: str) -> None:
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        self.alphabet = alphabet
        self._index = {c: i for i, c in enumerate(alphabet)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        chars: set[str] = set()
        for t in texts:
            chars.update(t)
        return cls("".join(sorted(chars)))

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    @property
    def eos_id(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as exc:
            raise ValueError(
                f"text contains {exc.args[0]!r}, not in the tokenizer alphabet"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        n = len(self.alphabet)
        return "".join(self.alphabet[i] for i in ids if 0 <= i < n)

    def to_json(self) -> str:
        return json.dumps({"type": "char", "alphabet": self.alphabet})

    @property
    def identity(self) -> str:
        return _sha(self.to_json())


class BPETokenizer:
    """A Hugging Face ``tokenizers.Tokenizer`` behind the harness protocol."""

    def __init__(self, tokenizer: object) -> None:
        self._tok = tokenizer
        eos = tokenizer.token_to_id(EOS_TOKEN)  # type: ignore[attr-defined]
        if eos is None:
            raise ValueError(f"tokenizer has no {EOS_TOKEN!r} token")
        self._eos = int(eos)
        self._json = tokenizer.to_str()  # type: ignore[attr-defined]

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(text))

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())  # type: ignore[attr-defined]

    @property
    def eos_id(self) -> int:
        return self._eos

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text).ids)  # type: ignore[attr-defined]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self._tok.encode_batch(list(texts))]  # type: ignore[attr-defined]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))  # type: ignore[attr-defined]

    def to_json(self) -> str:
        return json.dumps({"type": "bpe", "tokenizer": json.loads(self._json)}, sort_keys=True)

    @property
    def identity(self) -> str:
        return _sha(self.to_json())


def load_tokenizer(text: str) -> Tokenizer:
    """Rebuild a tokenizer from its ``to_json()`` string."""
    try:
        spec = json.loads(text)
        kind = spec["type"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"tokenizer JSON is malformed: {exc}") from exc
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer(spec["alphabet"])
    if kind == "bpe":
        return BPETokenizer.from_json(json.dumps(spec["tokenizer"]))
    raise ValueError(f"tokenizer type must be byte, char or bpe, got {kind!r}")


def default_cache_dir() -> Path:
    """``$NEURO_CACHE_DIR/tokenizers`` or ``~/.cache/neuro_models/tokenizers``."""
    base = os.environ.get("NEURO_CACHE_DIR") or Path.home() / ".cache" / "neuro_models"
    return Path(base) / "tokenizers"


def train_bpe_tokenizer(
    texts: Sequence[str],
    vocab_size: int = 4096,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    min_frequency: int = 2,
) -> BPETokenizer:
    """Train (or load from cache) a byte-level BPE tokenizer on ``texts``.

    Args:
        texts: training documents (use the train split only).
        vocab_size: final vocabulary size including the 256 byte symbols and ``<|endoftext|>``;
            default 4096.
        cache_dir: where trained tokenizers are cached as ``bpe-<corpus sha256[:16]>-<vocab>.json``;
            default :func:`default_cache_dir`. ``False``-y path strings are not accepted.
        min_frequency: a pair must occur this often to be merged (HF default 2).

    The cache key is the sha256 of the documents (length-prefixed, so document boundaries count)
    and the vocabulary size; a cached file is used only if it parses and has that vocabulary size.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if not 257 <= vocab_size <= 65535:
        raise ValueError(f"vocab_size must be in [257, 65535] (uint16 shards), got {vocab_size}")
    if len(texts) == 0:
        raise ValueError("texts must contain at least one document")
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    key = f"bpe-{h.hexdigest()[:16]}-{vocab_size}-{min_frequency}.json"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / key
    if path.is_file():
        try:
            cached = BPETokenizer(HFTokenizer.from_file(str(path)))
            if cached.vocab_size == vocab_size:
                return cached
        except Exception:  # a corrupt cache entry is retrained and overwritten
            pass
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return BPETokenizer(tok)
