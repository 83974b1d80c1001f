"""The download path, offline: normalization reproduces the shipped files' sha256, and a fetch
whose checksum differs writes nothing."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from neuro_models.data import fetch as dl

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
SOURCE = SHARED / "tinystories" / "source" / "toy-RNN_data_tinystories_sample.txt.gz"


@pytest.mark.skipif(not SOURCE.is_file(), reason="shared data directory not present")
def test_tinystories_normalization_reproduces_the_train_head(tmp_path, monkeypatch):
    # The source blob is the first 2 MiB of the official TinyStories-train.txt (data README), i.e.
    # exactly what download() fetches with its Range request.
    raw = gzip.decompress(SOURCE.read_bytes())
    assert len(raw) == 2 * 1024 * 1024
    src = dl.SOURCES["tinystories"][0]
    assert hashlib.sha256(src.transform(raw)).hexdigest() == src.sha256
    monkeypatch.setattr(dl, "SOURCES", {"tinystories": [src]})
    monkeypatch.setattr(dl, "_fetch", lambda url, byte_range, timeout: raw[:byte_range])
    (path,) = dl.download("tinystories", tmp_path)
    assert path == tmp_path / src.relpath
    assert hashlib.sha256(path.read_bytes()).hexdigest() == src.sha256


def test_checksum_mismatch_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_fetch", lambda url, byte_range, timeout: b"not shakespeare")
    with pytest.raises(ValueError, match=r"input\.txt: sha256"):
        dl.download("tinyshakespeare", tmp_path)
    assert not any(tmp_path.rglob("*.txt*"))


def test_existing_verified_file_is_not_fetched(tmp_path, monkeypatch):
    if not (SHARED / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("shared data directory not present")
    dest = tmp_path / "tinyshakespeare" / "input.txt"
    dest.parent.mkdir()
    dest.write_bytes((SHARED / "tinyshakespeare" / "input.txt").read_bytes())

    def no_network(*a, **k):
        raise AssertionError("fetched although the file was verified")

    monkeypatch.setattr(dl, "_fetch", no_network)
    assert dl.download("tinyshakespeare", tmp_path) == [dest]


def test_gzip_target_is_deterministic_and_checked():
    raw = b" a b \n"
    assert dl._gzip(raw) == dl._gzip(raw)  # mtime=0: same bytes every time
    assert gzip.decompress(dl._gzip(raw)) == raw
    with pytest.raises(ValueError, match="name must be one of"):
        dl.download("enwik8", "/nonexistent")
