"""Tokenizers: lossless round trips, identities, the BPE cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_models.data import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    load_tokenizer,
    train_bpe_tokenizer,
)

CORPUS = [
    "Once upon a time there was a little dog named Tom. Tom liked to run in the park.",
    "One day, Lily found a shiny red ball. She was very happy and played all day.",
    "The cat sat on the mat. The dog sat on the log. They were friends.",
] * 20


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_byte_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode([tok.eos_id, *ids]) == text  # eos is dropped on decode


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcxyz \n!", min_size=1))
def test_char_round_trip(text):
    tok = CharTokenizer.from_texts([text])
    assert tok.vocab_size == len(set(text)) + 1
    assert tok.decode(tok.encode(text)) == text
    assert tok.eos_id == tok.vocab_size - 1


def test_char_tokenizer_matches_nanogpt_and_rejects_unknown():
    tok = CharTokenizer.from_texts(["hello", "world"])
    assert tok.alphabet == "dehlorw"  # sorted(set(text)), as nanoGPT's prepare.py
    assert tok.encode("hold") == [2, 4, 3, 0]
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("zoo")


def test_bpe_trains_caches_and_round_trips(tmp_path, monkeypatch):
    tok = train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path)
    assert tok.vocab_size == 300
    assert tok.decode([tok.eos_id]) == "<|endoftext|>"
    held_out = "A dog and a cat played with the ball. Ünïcode ✓ 日本"
    assert tok.decode(tok.encode(held_out)) == held_out
    # Merges were learned: common words take fewer tokens than bytes.
    assert len(tok.encode(CORPUS[0])) < 0.6 * len(CORPUS[0].encode())
    assert len(list(tmp_path.glob("bpe-*-300-*.json"))) == 1
    # Second call is a cache hit: training is not run again.
    import tokenizers

    def boom(*a, **k):
        raise AssertionError("retrained despite cache")

    monkeypatch.setattr(tokenizers.Tokenizer, "train_from_iterator", boom)
    again = train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path)
    assert again.identity == tok.identity


def test_bpe_identity_depends_on_corpus_and_vocab(tmp_path):
    a = train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path)
    b = train_bpe_tokenizer(CORPUS, vocab_size=320, cache_dir=tmp_path)
    c = train_bpe_tokenizer(
        CORPUS[:3] + ["zebra quartz jumps"] * 5, vocab_size=300, cache_dir=tmp_path
    )
    assert len({a.identity, b.identity, c.identity}) == 3


def test_corrupt_cache_entry_is_retrained(tmp_path):
    a = train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path)
    (path,) = tmp_path.glob("bpe-*.json")
    path.write_text("{broken")
    b = train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path)
    assert b.identity == a.identity


def test_json_round_trip_preserves_identity(tmp_path):
    for tok in (
        ByteTokenizer(),
        CharTokenizer("abc "),
        train_bpe_tokenizer(CORPUS, vocab_size=300, cache_dir=tmp_path),
    ):
        back = load_tokenizer(tok.to_json())
        assert back.identity == tok.identity
        assert back.encode("abc cab") == tok.encode("abc cab")
    assert isinstance(
        load_tokenizer(train_bpe_tokenizer(CORPUS, 300, tmp_path).to_json()), BPETokenizer
    )
    with pytest.raises(ValueError, match="tokenizer"):
        load_tokenizer('{"type": "sentencepiece"}')


def test_bpe_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(CORPUS, vocab_size=70000, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="texts"):
        train_bpe_tokenizer([], cache_dir=tmp_path)
