"""save_memory / load_memory: round trips, a fresh process, corrupt files, atomic writes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import pytest
import torch

from neuro_memory import (
    CognitiveMapParams,
    EpisodicParams,
    MemoryFileError,
    decay,
    init_map,
    init_state,
    load_memory,
    map_insert,
    persistence,
    read,
    save_memory,
    write,
)

PARAMS = EpisodicParams(capacity=16, decay_rate=0.05, replacement="weakest")


def _state(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    s = init_state(PARAMS, 6, 4, dtype=dtype)
    s = write(
        s,
        torch.randn(10, 6, generator=gen, dtype=dtype),
        torch.randn(10, 4, generator=gen, dtype=dtype),
        PARAMS,
    )
    s = decay(s, PARAMS, steps=3)
    return write(
        s,
        torch.randn(9, 6, generator=gen, dtype=dtype),
        torch.randn(9, 4, generator=gen, dtype=dtype),
        PARAMS,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_episodic_round_trip(tmp_path, dtype):
    state = _state(dtype)
    path = tmp_path / "mem.safetensors"
    save_memory(path, state, PARAMS, metadata={"corpus": "tiny", "step": 3})
    got = load_memory(path, params=PARAMS)
    assert got.params == PARAMS
    assert got.metadata == {"corpus": "tiny", "step": 3}
    assert got.state.count == state.count
    for a, b in zip(got.state[:5], state[:5]):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_map_round_trip(tmp_path):
    params = CognitiveMapParams(n_neighbors=3)
    graph = map_insert(init_map(5, params), torch.randn(20, 5), params)
    path = tmp_path / "map.safetensors"
    save_memory(path, graph, params)
    got = load_memory(path)
    assert got.params == params
    for a, b in zip(got.state, graph):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_survives_a_restart(tmp_path):
    """A fresh interpreter loads the file and retrieves exactly what this process retrieves."""
    state = _state()
    path = tmp_path / "mem.safetensors"
    save_memory(path, state, PARAMS)
    queries = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    torch.save(queries, tmp_path / "q.pt")
    here = read(state, queries, 4, PARAMS)
    code = textwrap.dedent(
        f"""
        import torch
        from neuro_memory import load_memory, read
        m = load_memory({str(path)!r})
        q = torch.load({str(tmp_path / "q.pt")!r})
        r = read(m.state, q, 4, m.params)
        torch.save((r.indices, r.scores), {str(tmp_path / "out.pt")!r})
        """
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    indices, scores = torch.load(tmp_path / "out.pt")
    torch.testing.assert_close(indices, here.indices)
    torch.testing.assert_close(scores, here.scores, rtol=0, atol=0)


def test_readable_by_safetensors_library(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    from safetensors import safe_open

    state = _state()
    path = tmp_path / "mem.safetensors"
    save_memory(path, state, PARAMS, metadata={"a": 1})
    tensors = st.load_file(str(path))
    for name in ("keys", "values", "strength", "age", "stamp"):
        torch.testing.assert_close(tensors[name], getattr(state, name), rtol=0, atol=0)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "neuro_memory"
    assert json.loads(meta["params"])["capacity"] == 16


def _corrupt(path, fn):
    blob = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(blob)))


def _flip_last(b):
    b[-1] ^= 0xFF
    return b


def _bad_json(b):
    b[9] = ord("#")
    return b


def _other_format(b):
    n = struct.unpack("<Q", bytes(b[:8]))[0]
    h = json.loads(bytes(b[8 : 8 + n]))
    h["__metadata__"]["format"] = "other"
    raw = json.dumps(h).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(b[8 + n :])


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b[:5], "no header length"),
        (lambda b: b[:40], "truncated"),
        (lambda b: b[:-4], "checksum"),
        (_flip_last, "checksum"),
        (_bad_json, "not JSON"),
        (_other_format, "not a neuro_memory file"),
    ],
)
def test_corrupt_file_names_the_file(tmp_path, mutate, match):
    path = tmp_path / "mem.safetensors"
    save_memory(path, _state(), PARAMS)
    _corrupt(path, mutate)
    with pytest.raises(MemoryFileError, match=match) as err:
        load_memory(path)
    assert str(path) in str(err.value)


def test_mismatched_params_named(tmp_path):
    path = tmp_path / "mem.safetensors"
    save_memory(path, _state(), PARAMS)
    with pytest.raises(MemoryFileError, match=r"capacity: file 16 != expected 32") as err:
        load_memory(
            path, params=EpisodicParams(capacity=32, decay_rate=0.05, replacement="weakest")
        )
    assert str(path) in str(err.value)
    with pytest.raises(MemoryFileError, match="params mismatch"):
        load_memory(path, params=CognitiveMapParams())


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "mem.safetensors"
    save_memory(path, _state(), PARAMS, metadata={"v": 1})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_memory(path, init_state(PARAMS, 6, 4), PARAMS, metadata={"v": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.safetensors"]
    assert load_memory(path).metadata == {"v": 1}


def test_save_validation(tmp_path):
    with pytest.raises(ValueError, match="params"):
        save_memory(tmp_path / "x", _state(), EpisodicParams(capacity=3))
    with pytest.raises(ValueError, match="state"):
        save_memory(tmp_path / "x", (1, 2), PARAMS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metadata"):
        save_memory(tmp_path / "x", _state(), PARAMS, metadata={"f": object()})
    assert not list(tmp_path.iterdir())
