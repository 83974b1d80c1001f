"""Durable, atomic file output shared by checkpoints, model bundles and experiment records.

A folder is written under a temporary sibling name, every file in it and the folder itself are
fsynced, and only then is it renamed into place; the parent folder is fsynced after the rename so
that the rename itself survives a power cut. A reader therefore sees either the old folder or the
complete new one, never a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "atomic_write_bytes", "fsync_file", "fsync_write", "sha256_file"]


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it before returning."""
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync it, and rename it to ``path`` (mode 0644).

    A reader sees the old file or the complete new one; a failure leaves no temporary behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fsync_write(tmp, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """fsync an existing file (or, on POSIX, a folder: it makes renames inside it durable)."""
    if path.is_dir() and os.name != "posix":
        return  # Windows cannot open a folder for fsync; its renames are journaled by NTFS.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling folder of ``final`` to fill; publish it as ``final``.

    On normal exit of the ``with`` block every file in the folder, the folder and (after the
    rename) its parent are fsynced, and the folder is renamed to ``final``, replacing an existing
    ``final`` (moved aside first, then deleted; restored if the rename fails). If the block or the
    publishing raises, the temporary folder is deleted and ``final`` is left as it was.

    Args:
        final: the folder to create or replace; its parent is created if needed.
    """
    final = Path(final)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                fsync_file(f)
        fsync_file(tmp)
        if final.exists():
            # Rename is atomic but cannot replace a non-empty folder: move the old one aside.
            trash = parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, trash)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(trash, final)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_file(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
