"""Pre-tokenized ``uint16`` memory-mapped shards, document-level splits and the shared data order.

Shard layout: every document is preceded by the tokenizer's end-of-text id, so the token stream is
``eos d1 eos d2 ... eos dn``. With this layout every token of every document is a prediction target
(the leading ``eos`` is the context of the first token), so bits per byte divides the summed NLL by
the UTF-8 byte count of exactly the documents (plus ``n_docs - 1`` separator predictions, which are
part of the model's job). A JSON sidecar ``<path>.json`` records the token and byte counts, the
number of documents, the tokenizer identity and a hash of the documents.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuro_models.data.tokenizers import Tokenizer

__all__ = ["DataOrder", "Shard", "docs_hash", "load_shard", "split_documents", "tokenize_to_shard"]


@dataclass(frozen=True)
class Shard:
    """A token stream with the facts evaluation needs.

    Attributes:
        tokens: ``uint16`` array (a ``np.memmap`` when read from disk), shape ``[n_tokens]``.
        n_bytes: UTF-8 byte count of the documents (for bits per byte).
        n_docs: number of documents.
        tokenizer_id: :attr:`Tokenizer.identity` of the tokenizer that produced it.
        path: file the tokens live in (``None`` for in-memory shards).
    """

    tokens: np.ndarray
    n_bytes: int
    n_docs: int
    tokenizer_id: str
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def docs_hash(docs: Sequence[str]) -> str:
    """sha256 of the documents, length-prefixed so that document boundaries count."""
    h = hashlib.sha256()
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _encode_all(docs: Sequence[str], tokenizer: Tokenizer) -> list[list[int]]:
    batch = getattr(tokenizer, "encode_batch", None)
    if callable(batch):
        return list(batch(list(docs)))
    return [tokenizer.encode(d) for d in docs]


def tokenize_to_shard(
    docs: Sequence[str], tokenizer: Tokenizer, path: str | os.PathLike[str] | None = None
) -> Shard:
    """Tokenize ``docs`` into one ``uint16`` stream, written to ``path`` (memory-mapped) if given.

    An existing shard at ``path`` whose sidecar has the same tokenizer identity and document hash is
    reused without re-tokenizing. The file is written to a temporary name and renamed, so a killed
    run never leaves a half-written shard behind.

    Raises:
        ValueError: empty ``docs``, or a vocabulary that does not fit ``uint16``.
    """
    if len(docs) == 0:
        raise ValueError("docs must contain at least one document")
    if tokenizer.vocab_size > 65536:
        raise ValueError(f"tokenizer.vocab_size {tokenizer.vocab_size} does not fit uint16 shards")
    digest = docs_hash(docs)
    if path is not None:
        p = Path(path)
        meta_path = p.with_name(p.name + ".json")
        if p.is_file() and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                if meta["tokenizer_id"] == tokenizer.identity and meta["docs_sha256"] == digest:
                    return load_shard(p)
            except (ValueError, KeyError):
                pass
    ids = _encode_all(docs, tokenizer)
    n_tokens = sum(len(x) for x in ids) + len(ids)
    arr = np.empty(n_tokens, dtype=np.uint16)
    pos = 0
    for x in ids:
        arr[pos] = tokenizer.eos_id
        arr[pos + 1 : pos + 1 + len(x)] = x
        pos += 1 + len(x)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    if path is None:
        return Shard(arr, n_bytes, len(docs), tokenizer.identity, None)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    arr.tofile(tmp)
    os.replace(tmp, p)
    meta = {
        "n_tokens": n_tokens,
        "n_bytes": n_bytes,
        "n_docs": len(docs),
        "tokenizer_id": tokenizer.identity,
        "docs_sha256": digest,
        "dtype": "uint16",
    }
    meta_path = p.with_name(p.name + ".json")
    tmp_meta = meta_path.with_name(meta_path.name + f".tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, meta_path)
    return load_shard(p)


def load_shard(path: str | os.PathLike[str]) -> Shard:
    """Memory-map a shard written by :func:`tokenize_to_shard`; errors name the file."""
    p = Path(path)
    meta_path = p.with_name(p.name + ".json")
    for f in (p, meta_path):
        if not f.is_file():
            raise FileNotFoundError(f"shard file {str(f)!r} is missing")
    try:
        meta = json.loads(meta_path.read_text())
        n_tokens = int(meta["n_tokens"])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"shard metadata {str(meta_path)!r} is corrupt: {exc}") from exc
    if p.stat().st_size != 2 * n_tokens:
        raise ValueError(
            f"shard file {str(p)!r} has {p.stat().st_size} bytes, metadata says {2 * n_tokens}"
        )
    tokens = np.memmap(p, dtype=np.uint16, mode="r", shape=(n_tokens,))
    return Shard(tokens, int(meta["n_bytes"]), int(meta["n_docs"]), str(meta["tokenizer_id"]), p)


def split_documents(
    docs: Sequence[str], valid_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split documents into (train, valid) at the document level.

    The split is decided per *distinct* document text by a seeded hash, so duplicate documents
    always land in the same split and no text can appear in both. Order inside each split is the
    input order. ``valid_fraction`` is met in expectation, not exactly.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    train: list[str] = []
    valid: list[str] = []
    threshold = int(valid_fraction * 2**64)
    for d in docs:
        digest = hashlib.blake2b(d.encode("utf-8"), digest_size=8, key=str(seed).encode()).digest()
        (valid if int.from_bytes(digest, "little") < threshold else train).append(d)
    return train, valid


def _as_token_array(tokens: Shard | np.ndarray | torch.Tensor | Sequence[int]) -> np.ndarray:
    if isinstance(tokens, Shard):
        return tokens.tokens
    if isinstance(tokens, torch.Tensor):
        return tokens.detach().cpu().numpy()
    return np.asarray(tokens)


class DataOrder:
    """One seeded order of fixed-length training windows, shared by every arm of a comparison.

    The stream is cut into ``n_windows = (len(tokens) - 1) // seq_len`` non-overlapping windows of
    ``seq_len + 1`` tokens (inputs and shifted targets). Epoch ``e`` visits them in the order
    ``np.random.default_rng([seed, e]).permutation(n_windows)``; batch ``k`` is the windows
    ``k·batch_size … (k+1)·batch_size − 1`` of the concatenated epochs. So batch ``k`` is a pure
    function of ``(seed, k)``: two arms built with the same arguments see identical batches, and
    resuming needs only the position (``state_dict``).

    Args:
        tokens: token stream (:class:`Shard`, array or tensor), shape ``[N]``.
        seq_len: tokens per input window.
        batch_size: windows per batch (the global batch; ranks take equal slices).
        seed: seed of the order.
    """

    def __init__(
        self,
        tokens: Shard | np.ndarray | torch.Tensor | Sequence[int],
        seq_len: int,
        batch_size: int,
        seed: int = 0,
    ) -> None:
        if int(seq_len) < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tokens = _as_token_array(tokens)
        if self.tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D, got shape {self.tokens.shape}")
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.n_windows = (len(self.tokens) - 1) // self.seq_len
        if self.n_windows < 1:
            raise ValueError(
                f"tokens has {len(self.tokens)} tokens, fewer than seq_len + 1 = {self.seq_len + 1}"
            )
        self.position = 0
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perm_epoch = epoch
        return self._perm

    def window_ids(self, index: int) -> np.ndarray:
        """Window ids of batch ``index``, shape ``[batch_size]``."""
        flat = index * self.batch_size + np.arange(self.batch_size)
        epochs = flat // self.n_windows
        out = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._permutation(int(e))[flat[sel] % self.n_windows]
        return out

    def get_batch(
        self, index: int, rank: int = 0, world_size: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` as ``(inputs, targets)``, int64 ``[batch_size / world_size, seq_len]``.

        Rank ``r`` of ``world_size`` takes the contiguous slice ``r·b … (r+1)·b − 1`` with
        ``b = batch_size / world_size``.
        """
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by world_size {world_size}"
            )
        b = self.batch_size // world_size
        ids = self.window_ids(index)[rank * b : (rank + 1) * b]
        offs = ids[:, None] * self.seq_len + np.arange(self.seq_len + 1)
        chunk = torch.from_numpy(self.tokens[offs].astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]

    def next_batch(self, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch at :attr:`position`, then advance the position by one."""
        batch = self.get_batch(self.position, rank, world_size)
        self.position += 1
        return batch

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state: the order's identity and the position."""
        return {
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "n_windows": self.n_windows,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; refuses a state from a different order, naming the field."""
        for key in ("seed", "seq_len", "batch_size", "n_windows"):
            if key not in state:
                raise ValueError(f"data order state lacks field {key!r}")
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"data order state field {key!r} is {state[key]}, this order has "
                    f"{getattr(self, key)}"
                )
        pos = int(state.get("position", -1))
        if pos < 0:
            raise ValueError(f"data order state field 'position' must be >= 0, got {pos}")
        self.position = pos
