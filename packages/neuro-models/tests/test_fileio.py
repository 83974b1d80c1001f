"""atomic_write_bytes: a reader sees the old file or the whole new one; a failure leaves nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from neuro_models import _fileio
from neuro_models._fileio import atomic_write_bytes


def test_writes_replaces_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "rec.json"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["rec.json"]


def test_failed_rename_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.json"
    atomic_write_bytes(path, b"old")

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path, data: bytes) -> None:
        path.write_bytes(data[:1])
        raise OSError("interrupted")

    monkeypatch.setattr(_fileio, "fsync_write", broken)
    with pytest.raises(OSError, match="interrupted"):
        atomic_write_bytes(tmp_path / "rec.json", b"payload")
    assert list(tmp_path.iterdir()) == []
