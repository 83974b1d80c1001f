"""Token shards and the shared data order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_models.data import ByteTokenizer, CharTokenizer, DataOrder, load_shard, tokenize_to_shard


def test_shard_layout_bytes_and_cache(tmp_path):
    docs = ["héllo", "a\nb", "✓"]
    tok = ByteTokenizer()
    shard = tokenize_to_shard(docs, tok, tmp_path / "s.bin")
    assert isinstance(shard.tokens, np.memmap)
    assert shard.tokens.dtype == np.uint16
    expected = []
    for d in docs:
        expected += [tok.eos_id, *d.encode("utf-8")]
    assert shard.tokens.tolist() == expected
    assert shard.n_bytes == sum(len(d.encode("utf-8")) for d in docs) == 12
    assert shard.n_docs == 3
    assert shard.tokenizer_id == tok.identity
    # Decoding the pieces between separators gives the documents back.
    stream = shard.tokens.tolist()
    cuts = [i for i, t in enumerate(stream) if t == tok.eos_id] + [len(stream)]
    assert [tok.decode(stream[a + 1 : b]) for a, b in itertools.pairwise(cuts)] == docs
    again = load_shard(tmp_path / "s.bin")
    assert again.tokens.tolist() == expected
    assert again.n_bytes == 12
    # Same docs and tokenizer: reused; other tokenizer: rebuilt.
    mtime = (tmp_path / "s.bin").stat().st_mtime_ns
    tokenize_to_shard(docs, tok, tmp_path / "s.bin")
    assert (tmp_path / "s.bin").stat().st_mtime_ns == mtime
    char = CharTokenizer.from_texts(docs)
    assert tokenize_to_shard(docs, char, tmp_path / "s.bin").tokenizer_id == char.identity


def test_truncated_shard_is_named(tmp_path):
    tokenize_to_shard(["abcdef"], ByteTokenizer(), tmp_path / "s.bin")
    (tmp_path / "s.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match=r"s\.bin"):
        load_shard(tmp_path / "s.bin")
    (tmp_path / "s.bin.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"s\.bin\.json"):
        load_shard(tmp_path / "s.bin")


def test_order_windows_are_exact_and_epoch_is_a_permutation():
    tokens = np.arange(1001) % 65000
    order = DataOrder(tokens, seq_len=10, batch_size=7, seed=3)
    assert order.n_windows == 100
    seen = []
    for k in range(100):  # 700 windows = 7 epochs
        x, y = order.get_batch(k)
        assert x.dtype == torch.int64
        assert x.shape == (7, 10)
        assert torch.equal(y, x + 1)  # the stream counts up: targets are inputs shifted by one
        assert bool((x[:, 0] % 10 == 0).all())  # windows start on multiples of seq_len
        seen += (x[:, 0] // 10).tolist()
    for e in range(7):
        assert sorted(seen[e * 100 : (e + 1) * 100]) == list(range(100))
    assert seen[:100] != seen[100:200]  # epochs are reshuffled


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 500), world=st.sampled_from([1, 2, 4]))
def test_order_is_a_pure_function_of_seed_and_index(seed, index, world):
    tokens = np.arange(3000)
    a = DataOrder(tokens, 16, 8, seed)
    b = DataOrder(tokens, 16, 8, seed)
    xa, ya = a.get_batch(index)
    xb, yb = b.get_batch(index)
    assert torch.equal(xa, xb)
    assert torch.equal(ya, yb)
    parts = [a.get_batch(index, r, world)[0] for r in range(world)]
    assert torch.equal(torch.cat(parts), xa)


def test_grad_accum_micro_batches_tile_the_big_batch():
    tokens = np.arange(5000)
    big = DataOrder(tokens, 8, 8, seed=1)
    small = DataOrder(tokens, 8, 4, seed=1)
    for k in range(20):
        x = big.get_batch(k)[0]
        assert torch.equal(torch.cat([small.get_batch(2 * k)[0], small.get_batch(2 * k + 1)[0]]), x)


def test_state_dict_resumes_and_refuses_other_orders():
    tokens = np.arange(2000)
    a = DataOrder(tokens, 8, 4, seed=0)
    for _ in range(13):
        a.next_batch()
    b = DataOrder(tokens, 8, 4, seed=0)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.next_batch()[0], b.next_batch()[0])
    for field, other in (
        ("seed", DataOrder(tokens, 8, 4, seed=1)),
        ("seq_len", DataOrder(tokens, 16, 4, seed=0)),
        ("batch_size", DataOrder(tokens, 8, 2, seed=0)),
        ("n_windows", DataOrder(tokens[:1000], 8, 4, seed=0)),
    ):
        with pytest.raises(ValueError, match=f"'{field}'"):
            other.load_state_dict(a.state_dict())


def test_order_validation():
    with pytest.raises(ValueError, match="seq_len"):
        DataOrder(np.arange(100), 0, 4)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        DataOrder(np.arange(10), 10, 4)
    with pytest.raises(ValueError, match="world_size"):
        DataOrder(np.arange(100), 4, 3).get_batch(0, 0, 2)
    with pytest.raises(ValueError, match="docs"):
        tokenize_to_shard([], ByteTokenizer())
