"""Input validation that names the offending argument.

Every public function of the neuro-* packages checks its inputs with these helpers so that bad input
raises a ``ValueError`` saying which argument is wrong and how, before any work is done.

Finiteness checks (``finite=True``) read the data: on a GPU they synchronize the device, and under
``torch.compile`` they would break the graph. They are therefore skipped while ``torch.compile``
traces, and can be switched off for hot loops with ``NEURO_FINITE_CHECKS=0`` or
``with finite_checks(False):``. Shape, dtype and device checks always run (they cost nothing).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

_FINITE_OVERRIDE: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "neuro_finite_checks", default=None
)


def finite_checks_enabled() -> bool:
    """Whether ``check_tensor(..., finite=True)`` reads the data right now.

    False while ``torch.compile`` traces; otherwise the innermost :func:`finite_checks` context, or
    else the environment (``NEURO_FINITE_CHECKS=0`` disables; default enabled)."""
    if torch.compiler.is_compiling():
        return False
    override = _FINITE_OVERRIDE.get()
    if override is not None:
        return override
    return os.environ.get("NEURO_FINITE_CHECKS", "1") != "0"


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Enable or disable the NaN/inf checks of every neuro-* function inside the block."""
    token = _FINITE_OVERRIDE.set(bool(enabled))
    try:
        yield
    finally:
        _FINITE_OVERRIDE.reset(token)


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    floating: bool = False,
    device: torch.device | None = None,
    finite: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given properties and return it.

    Args:
        name: argument name used in the error message.
        x: the value to check.
        ndim: required number of dimensions (or a set of allowed ones).
        shape: required shape; ``None`` entries match any size.
        dtype: required dtype (or a set of allowed ones).
        floating: require a floating-point dtype.
        device: required device (compared by type and index).
        finite: require every element to be finite (costs one reduction and, on a GPU, a device
            synchronization; skipped when :func:`finite_checks_enabled` is False).

    Raises:
        ValueError: naming ``name`` and what was expected.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dims, got shape {tuple(x.shape)}"
            )
    if shape is not None:
        ok = len(shape) == x.ndim and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            want = ", ".join("*" if s is None else str(s) for s in shape)
            raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    if dtype is not None:
        allowed_dt = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if x.dtype not in allowed_dt:
            raise ValueError(f"{name} must have dtype in {allowed_dt}, got {x.dtype}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if device is not None and not _same_device(x.device, device):
        raise ValueError(f"{name} is on {x.device} but the other inputs are on {device}")
    if finite and finite_checks_enabled() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_same_device(**tensors: torch.Tensor | None) -> None:
    """Raise ``ValueError`` if the given (non-None) tensors are not all on one device."""
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    first_name, first = items[0]
    for k, v in items[1:]:
        if not _same_device(v.device, first.device):
            raise ValueError(f"{k} is on {v.device} but {first_name} is on {first.device}")


def check_int(name: str, value: object, *, low: int = 1, high: int | None = None) -> int:
    """Check an integer argument (Python or numpy integer; a bool is not one) with
    ``low ≤ value`` (default ≥ 1) and, when ``high`` is given, ``value ≤ high``; return it as
    an ``int``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if not ok or int(value) < low or (high is not None and int(value) > high):  # type: ignore[call-overload]
        want = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {want}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check a scalar is finite and > 0 (or ≥ 0 with ``allow_zero``)."""
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_in_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check ``low ≤ value ≤ high`` (with optional open ends), naming the argument on failure."""
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}, got {value!r}")
    return v


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` if ``x`` has NaN or infinite values."""
    return check_tensor(name, x, finite=True)
