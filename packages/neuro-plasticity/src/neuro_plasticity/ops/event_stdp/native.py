"""The compiled block kernel of event-driven STDP (``stdp_block.c``), built on first use.

Event-driven STDP does a few operations per touched synapse; in numpy each of them is a pass
over a short array with a per-call cost, which leaves a plastic network several times slower
than a static one. ``stdp_block.c`` runs one block of steps (:meth:`EventPairSTDP.on_block
<neuro_plasticity.ops.event_stdp.EventPairSTDP.on_block>`) as plain loops, with the arithmetic
of the numpy code in the same order and precision (tests compare the two bitwise).

Like Brian2's runtime code generation it needs a C compiler at run time: the first use compiles
the file with ``$CC`` (default ``cc``) into ``$NEURO_CACHE_DIR`` (default
``~/.cache/neuro``)``/native/``, named by a hash of the source, compiler, flags and platform, written to a
temporary name and renamed (no half-written library is ever loaded), and later uses load it.
Without a compiler, or with ``NEURO_NATIVE=0``, :func:`load` returns None and the numpy path
runs (same weights, slower); :func:`status` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("stdp_block.c")
#: No fused multiply-add and no fast-math: the kernel must round like numpy.
CFLAGS = ("-O2", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-std=c99")

_lib: ctypes.CDLL | None = None
_tried = False
_why = "not loaded yet"


class StdpParams(ctypes.Structure):
    """Mirror of ``stdp_params`` in ``stdp_block.c``."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in ("soft", "nearest", "has_md", "has_lo", "has_hi", "floor")
    ] + [
        (name, ctypes.c_double)
        for name in ("c_plus", "c_minus", "w_min", "w_max", "md", "lo", "hi")
    ]


def cache_dir() -> Path:
    """Where the compiled kernel is kept: ``$NEURO_CACHE_DIR/native`` or
    ``~/.cache/neuro/native``."""
    root = os.environ.get("NEURO_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "neuro"
    )
    return Path(root) / "native"


def _compile(target: Path, cc: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(
            [cc, *CFLAGS, str(SOURCE), "-o", tmp],
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load() -> ctypes.CDLL | None:
    """The kernel library, compiling it on first use; None when it is unavailable."""
    global _lib, _tried, _why
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("NEURO_NATIVE", "1") == "0":
        _why = "disabled by NEURO_NATIVE=0"
        return None
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        _why = f"no C compiler ({cc!r} not found; set CC)"
        return None
    src = SOURCE.read_bytes()
    key = " ".join((cc, *CFLAGS, platform.machine(), platform.system()))
    tag = hashlib.sha256(src + key.encode()).hexdigest()[:16]
    target = cache_dir() / f"stdp_block-{tag}.so"
    try:
        if not target.exists():
            _compile(target, cc)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        _why = f"compiling {SOURCE.name} failed: {err} {detail.decode(errors='replace')[:500]}"
        return None
    fn = lib.stdp_block
    fn.restype = None
    fn.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 16 + [ctypes.POINTER(StdpParams)]
    fn.argtypes += [ctypes.c_void_p] * 5
    _lib = lib
    _why = f"loaded {target}"
    return _lib


def status() -> str:
    """Why the kernel is or is not in use (loads it if not tried yet)."""
    load()
    return _why


def reset() -> None:
    """Forget the loaded kernel so that the next :func:`load` tries again (tests)."""
    global _lib, _tried, _why
    _lib, _tried, _why = None, False, "not loaded yet"


__all__ = ["CFLAGS", "SOURCE", "StdpParams", "cache_dir", "load", "reset", "status"]
