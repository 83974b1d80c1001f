"""Backend selection shared by every op with a kernel.

An op folder ``ops/<op>/`` exports one function taking ``backend: Backend = "auto"``. It calls
:func:`resolve_backend` once and branches on the answer; all speed heuristics live here or in that
dispatcher, never in layers.

``"auto"`` picks ``"triton"`` for CUDA tensors when Triton imports, and on CPU the reference, or its
``torch.compile`` form when ``NEURO_CPU_COMPILE=1`` is set (compiling pays off only for long runs,
so it is opt-in). ``"triton"`` on CPU tensors is allowed only under ``TRITON_INTERPRET=1`` (tests).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Literal, TypeVar, get_args

import torch

Backend = Literal["auto", "reference", "triton", "compile"]
_BACKENDS: tuple[str, ...] = get_args(Backend)

F = TypeVar("F", bound=Callable[..., object])


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported (it is an optional extra)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def cpu_compile_enabled() -> bool:
    """True when ``NEURO_CPU_COMPILE=1`` asks "auto" to use ``torch.compile`` on CPU."""
    return os.environ.get("NEURO_CPU_COMPILE", "0") == "1"


def resolve_backend(
    backend: str,
    *tensors: torch.Tensor | None,
    supported: tuple[str, ...] = _BACKENDS,
    op: str = "op",
) -> str:
    """Turn a requested backend into the one that will run.

    Args:
        backend: ``"auto"``, ``"reference"``, ``"triton"`` or ``"compile"`` (or an op-specific name
            listed in ``supported``).
        *tensors: the op's tensor inputs; the first non-None one decides the device.
        supported: backends this op implements.
        op: op name, for error messages.

    Returns:
        A concrete backend name from ``supported`` (never ``"auto"``).

    Raises:
        ValueError: unknown backend, or ``"triton"`` requested where it cannot run.
    """
    if backend not in supported:
        raise ValueError(f"{op}: backend must be one of {supported}, got {backend!r}")
    device = next((t.device for t in tensors if t is not None), torch.device("cpu"))
    if backend == "auto":
        if device.type == "cuda" and "triton" in supported and triton_available():
            return "triton"
        if device.type == "cpu" and "compile" in supported and cpu_compile_enabled():
            return "compile"
        return "reference"
    if backend == "triton":
        if not triton_available():
            raise ValueError(f"{op}: backend='triton' needs the optional extra: pip install triton")
        if device.type != "cuda" and not interpreting():
            raise ValueError(
                f"{op}: backend='triton' needs CUDA tensors (got device {device}); "
                "set TRITON_INTERPRET=1 to run the kernel in the CPU interpreter"
            )
    return backend


def compiled(fn: F) -> F:
    """``torch.compile`` ``fn`` lazily on first call and cache the compiled callable."""
    cache: list[Callable[..., object]] = []

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        if not cache:
            cache.append(torch.compile(fn, dynamic=None))
        return cache[0](*args, **kwargs)

    return wrapper  # type: ignore[return-value]
