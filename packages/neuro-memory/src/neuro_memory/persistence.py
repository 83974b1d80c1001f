"""Saving and loading memories: safetensors files with JSON metadata, written atomically.

:func:`save_memory` writes an :class:`~neuro_memory.EpisodicState` or a
:class:`~neuro_memory.CognitiveMap` with its params to one file in the `safetensors format
<https://huggingface.co/docs/safetensors>`_::

    [8 bytes: header length n, little-endian u64][n bytes: JSON header][raw tensor bytes]

The header maps each tensor name to ``{"dtype", "shape", "data_offsets"}`` and holds string
metadata under ``"__metadata__"``: ``format = "neuro_memory"``, ``version``, ``kind``, the params
as JSON, the state's ``count``, the caller's ``metadata`` as JSON, and the SHA-256 of the tensor
bytes. The file is written to a temporary file in the same directory, flushed, fsynced and then
renamed over ``path`` (``os.replace``, atomic on POSIX and Windows), so ``path`` holds either the
old file or the complete new one, never a half-written one.

:func:`load_memory` checks everything it reads and raises :class:`MemoryFileError` (a
``ValueError``) naming the file and what is wrong: not a safetensors/neuro_memory file,
truncated, checksum mismatch (corrupt data), unknown kind or version, inconsistent shapes, or
params different from the ``params`` the caller expects.

Why our own reader/writer: the format is a length-prefixed JSON header plus raw bytes (a few lines
with numpy), so ``neuro-memory`` keeps depending on torch and numpy only; the files are standard
safetensors, readable by ``safetensors.torch.load_file`` (tested when the library is installed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import sys
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from neuro_memory.cognitive_map import CognitiveMap, CognitiveMapParams
from neuro_memory.episodic import EpisodicParams, EpisodicState

FORMAT = "neuro_memory"
VERSION = "1"

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_FROM_CODE = {v: k for k, v in _DTYPES.items()}
#: A header larger than this is refused (the safetensors library's own limit is 100 MB).
MAX_HEADER = 100_000_000


class MemoryFileError(ValueError):
    """A memory file that cannot be loaded; the message names the file and the reason."""


class LoadedMemory(NamedTuple):
    """Result of :func:`load_memory`: the state, its params, and the caller's metadata."""

    state: EpisodicState | CognitiveMap
    params: EpisodicParams | CognitiveMapParams
    metadata: dict[str, Any]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def _encode(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> bytes:
    header: dict[str, Any] = {}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = _tensor_bytes(t)
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    body = b"".join(chunks)
    meta = {**meta, "sha256": hashlib.sha256(body).hexdigest()}
    header = {"__metadata__": meta, **header}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as the safetensors library does
    return struct.pack("<Q", len(raw)) + raw + body


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_memory(
    path: str | os.PathLike[str],
    state: EpisodicState | CognitiveMap,
    params: EpisodicParams | CognitiveMapParams,
    *,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``state`` and ``params`` (and JSON-serialisable ``metadata``) to ``path`` atomically.

    Raises:
        ValueError: a state that does not match ``params``, or metadata that is not JSON.
    """
    if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
        raise NotImplementedError("save_memory writes little-endian files on little-endian hosts")
    path = Path(path)
    if isinstance(state, EpisodicState):
        if not isinstance(params, EpisodicParams) or params.capacity != state.capacity:
            raise ValueError("params must be the EpisodicParams of state (same capacity)")
        tensors = {n: getattr(state, n) for n in ("keys", "values", "strength", "age", "stamp")}
        kind, count = "EpisodicState", state.count
    elif isinstance(state, CognitiveMap):
        if (
            not isinstance(params, CognitiveMapParams)
            or params.n_neighbors != state.neighbors.shape[1]
        ):
            raise ValueError("params must be the CognitiveMapParams of state (same n_neighbors)")
        tensors = {n: getattr(state, n) for n in ("keys", "neighbors", "similarity")}
        kind, count = "CognitiveMap", state.size
    else:
        raise ValueError(
            f"state must be an EpisodicState or CognitiveMap, got {type(state).__name__}"
        )
    try:
        user = json.dumps(metadata if metadata is not None else {})
    except TypeError as err:
        raise ValueError(f"metadata must be JSON-serialisable: {err}") from err
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "params": json.dumps(dataclasses.asdict(params)),
        "count": str(count),
        "user": user,
    }
    _atomic_write(path, _encode(tensors, meta))


def _fail(path: Path, why: str) -> MemoryFileError:
    return MemoryFileError(f"{path}: {why}")


def _decode(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    blob = path.read_bytes()
    if len(blob) < 8:
        raise _fail(path, f"not a safetensors file ({len(blob)} bytes, no header length)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise _fail(
            path, f"truncated or not a safetensors file (header of {n} bytes, file of {len(blob)})"
        )
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"corrupt header (not JSON: {err})") from err
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise _fail(path, "not a neuro_memory file (no __metadata__ in the header)")
    meta = header.pop("__metadata__")
    if meta.get("format") != FORMAT:
        raise _fail(path, f"not a neuro_memory file (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise _fail(path, f"unsupported version {meta.get('version')!r} (this reader: {VERSION})")
    body = memoryview(blob)[8 + n :]
    if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
        raise _fail(path, "checksum mismatch: the tensor data is corrupt or truncated")
    tensors = {}
    for name, info in header.items():
        try:
            dtype = _FROM_CODE[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            lo, hi = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(path, f"corrupt header entry for tensor {name!r}") from err
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if not 0 <= lo <= hi <= len(body) or hi - lo != int(np.prod(shape)) * itemsize:
            raise _fail(path, f"tensor {name!r}: data_offsets {lo}..{hi} do not fit shape {shape}")
        raw = np.frombuffer(body[lo:hi], dtype=np.uint8).copy()
        tensors[name] = torch.from_numpy(raw).view(dtype).reshape(shape)
    return tensors, meta


def _params_from(path: Path, meta: dict[str, str], cls: type) -> Any:
    try:
        return cls(**json.loads(meta["params"]))
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(path, f"invalid saved params: {err}") from err


def _require(path: Path, tensors: dict[str, torch.Tensor], names: tuple[str, ...]) -> None:
    missing = sorted(set(names) - set(tensors))
    if missing:
        raise _fail(path, f"missing tensors {missing}")


def load_memory(
    path: str | os.PathLike[str],
    *,
    params: EpisodicParams | CognitiveMapParams | None = None,
    device: torch.device | str | None = None,
) -> LoadedMemory:
    """Read a file written by :func:`save_memory`.

    Args:
        path: the file.
        params: if given, the saved params must equal these (else :class:`MemoryFileError`
            naming the fields that differ).
        device: where to put the tensors (default CPU).

    Raises:
        FileNotFoundError: no such file.
        MemoryFileError: corrupt, truncated, foreign or mismatched file (message names the file).
    """
    path = Path(path)
    tensors, meta = _decode(path)
    kind = meta.get("kind")
    state: EpisodicState | CognitiveMap
    if kind == "EpisodicState":
        saved = _params_from(path, meta, EpisodicParams)
        _require(path, tensors, ("keys", "values", "strength", "age", "stamp"))
        n = saved.capacity
        ok = (
            tensors["keys"].ndim == 2
            and tensors["values"].ndim == 2
            and tensors["keys"].shape[0] == tensors["values"].shape[0] == n
            and all(tensors[k].shape == (n,) for k in ("strength", "age", "stamp"))
        )
        if not ok:
            raise _fail(path, f"tensor shapes do not match the saved capacity {n}")
        try:
            count = int(meta["count"])
        except (KeyError, ValueError) as err:
            raise _fail(path, "invalid saved count") from err
        keys, values, strength, age, stamp = (
            tensors[k].to(device) for k in ("keys", "values", "strength", "age", "stamp")
        )
        state = EpisodicState(keys, values, strength, age, stamp, count=count)
    elif kind == "CognitiveMap":
        saved = _params_from(path, meta, CognitiveMapParams)
        _require(path, tensors, ("keys", "neighbors", "similarity"))
        keys, nbr, sim = tensors["keys"], tensors["neighbors"], tensors["similarity"]
        n, k = keys.shape[0], saved.n_neighbors
        if keys.ndim != 2 or nbr.shape != (n, k) or sim.shape != (n, k):
            raise _fail(path, f"tensor shapes do not match {n} nodes of {k} neighbours")
        if nbr.numel() and bool(((nbr < -1) | (nbr >= n)).any()):
            raise _fail(path, f"neighbour ids outside [-1, {n})")
        state = CognitiveMap(keys.to(device), nbr.to(device), sim.to(device))
    else:
        raise _fail(path, f"unknown kind {kind!r}")
    if params is not None and params != saved:
        a, b = dataclasses.asdict(saved), dataclasses.asdict(params)
        diff = ", ".join(
            f"{f}: file {a[f]!r} != expected {b.get(f)!r}" for f in a if a[f] != b.get(f)
        )
        raise _fail(path, f"params mismatch ({diff or type(params).__name__ + ' expected'})")
    try:
        user = json.loads(meta.get("user", "{}"))
    except json.JSONDecodeError as err:
        raise _fail(path, "invalid user metadata") from err
    return LoadedMemory(state, saved, user)
