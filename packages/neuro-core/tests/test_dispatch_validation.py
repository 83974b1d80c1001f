from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from neuro_core import dispatch
from neuro_core.dispatch import resolve_backend
from neuro_core.validation import (
    check_in_range,
    check_int,
    check_positive,
    check_same_device,
    check_tensor,
    finite_checks,
    finite_checks_enabled,
)


def test_auto_on_cpu_is_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURO_CPU_COMPILE", raising=False)
    assert resolve_backend("auto", torch.zeros(1)) == "reference"
    monkeypatch.setenv("NEURO_CPU_COMPILE", "1")
    assert resolve_backend("auto", torch.zeros(1)) == "compile"
    assert resolve_backend("auto", torch.zeros(1), supported=("auto", "reference")) == "reference"


def test_triton_on_cpu_needs_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA"):
        resolve_backend("triton", torch.zeros(1), op="myop")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", torch.zeros(1)) == "triton"


def test_triton_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="pip install triton"):
        resolve_backend("triton", torch.zeros(1))


def test_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="myop: backend must be one of"):
        resolve_backend("fast", torch.zeros(1), op="myop")


def test_check_tensor_messages() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="q must have 4 dims"):
        check_tensor("q", x, ndim=4)
    with pytest.raises(ValueError, match=r"k must have shape \(2, \*, 4\)"):
        check_tensor("k", x, shape=(2, None, 4))
    with pytest.raises(ValueError, match="v must have dtype"):
        check_tensor("v", x, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"beta contains NaN"):
        check_tensor("beta", torch.tensor([1.0, float("nan")]), finite=True)
    with pytest.raises(ValueError, match=r"w must be a torch\.Tensor"):
        check_tensor("w", [1.0])
    with pytest.raises(ValueError, match="ids must be floating"):
        check_tensor("ids", torch.zeros(2, dtype=torch.long), floating=True)
    assert check_tensor("x", x, ndim=(2, 3), shape=(2, 3), dtype=torch.float32, finite=True) is x
    check_same_device(a=x, b=None, c=torch.ones(1))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_positive_agrees_with_definition(v: float) -> None:
    ok = v == v and abs(v) != float("inf") and v > 0
    if ok:
        assert check_positive("tau_ms", v) == v
    else:
        with pytest.raises(ValueError, match="tau_ms"):
            check_positive("tau_ms", v)


def test_check_in_range_open_ends() -> None:
    assert check_in_range("decay", 1.0, 0.0, 1.0, low_open=True) == 1.0
    with pytest.raises(ValueError, match=r"decay must be in \(0.0, 1.0\]"):
        check_in_range("decay", 0.0, 0.0, 1.0, low_open=True)


@given(
    st.one_of(
        st.integers(-5, 12),
        st.integers(-5, 12).map(np.int64),
        st.booleans(),
        st.booleans().map(np.bool_),
        st.floats(-2, 12),
        st.none(),
        st.text(max_size=2),
    )
)
def test_check_int_agrees_with_definition(v: object) -> None:
    # Python and numpy integers count; bools and floats do not
    is_int = type(v) in (int, np.int64)
    ok_default = is_int and v >= 1  # type: ignore[operator]
    ok_range = is_int and 0 <= v <= 10  # type: ignore[operator]
    if ok_default:
        assert check_int("k", v) == v
    else:
        with pytest.raises(ValueError, match="k must be an int ≥ 1, got"):
            check_int("k", v)
    if ok_range:
        assert check_int("k", v, low=0, high=10) == v
    else:
        with pytest.raises(ValueError, match=r"k must be an int in \[0, 10\], got"):
            check_int("k", v, low=0, high=10)


def test_finite_checks_switch_and_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = torch.tensor([1.0, float("inf")])
    with pytest.raises(ValueError, match="beta contains NaN"):
        check_tensor("beta", bad, finite=True)
    with finite_checks(False):
        assert not finite_checks_enabled()
        assert check_tensor("beta", bad, finite=True) is bad
        with finite_checks(True), pytest.raises(ValueError, match="beta"):
            check_tensor("beta", bad, finite=True)
    monkeypatch.setenv("NEURO_FINITE_CHECKS", "0")
    assert check_tensor("beta", bad, finite=True) is bad
    monkeypatch.setenv("NEURO_FINITE_CHECKS", "1")
    assert finite_checks_enabled()

    # under torch.compile the check is skipped instead of breaking the graph
    def f(x: torch.Tensor) -> torch.Tensor:
        return check_tensor("x", x, ndim=1, finite=True) * 2

    traced = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(traced(torch.ones(3)), torch.full((3,), 2.0))
