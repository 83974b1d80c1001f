"""The naming convention of ``docs/conventions.rst`` ("Names and units"), checked over every
package's public API: frozen, picklable parameter/config dataclasses with one of the two
suffixes, and time arguments of the spiking and plasticity APIs that name their unit."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

PACKAGES = ("neuro_core", "neuro_attention", "neuro_plasticity", "neuro_memory", "neuro_spiking",
            "neuro_objectives", "neuro_models")  # fmt: skip
#: Packages whose times are biological (milliseconds) or counted in steps, and must say which.
TIMED = ("neuro_spiking", "neuro_plasticity")
#: Result records: written once by the code that returns them, the only mutable dataclasses.
MUTABLE_RECORDS = {"TrainResult"}
#: Words that start a time-like name.
TIME_PREFIXES = ("tau", "dt", "delay", "refractory", "t_ref")
UNIT_SUFFIXES = ("_ms", "_steps", "_s")


def _public(package: str) -> Iterator[tuple[str, Any]]:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    assert names, f"{package} must declare __all__"
    for name in names:
        yield name, getattr(module, name)


def _time_like(name: str) -> bool:
    bare = name.lstrip("_")
    if bare in ("dtype", "delays") or bare.startswith("dtype"):
        return False
    return any(bare == p or bare.startswith(p + "_") or bare == p + "s" for p in TIME_PREFIXES)


def _dataclasses() -> list[tuple[str, str, type]]:
    out = []
    for package in PACKAGES:
        for name, obj in _public(package):
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
                out.append((package, name, obj))
    return out


DATACLASSES = _dataclasses()


def test_the_scan_sees_the_public_api() -> None:
    # guards the checks below against passing vacuously (an import that finds nothing)
    names = {n for _, n, _ in DATACLASSES}
    assert {"LIFParams", "PairSTDPParams", "PlaceCellParams", "LlamaConfig"} <= names
    for timed in ("tau_mem_ms", "dt", "tau_rate", "delay_ms", "refractory"):
        assert _time_like(timed), timed
    for untimed in ("dtype", "taurine", "delta", "data"):
        assert not _time_like(untimed), untimed


@pytest.mark.parametrize(
    ("package", "name", "cls"), DATACLASSES, ids=lambda x: getattr(x, "__name__", x)
)
def test_dataclasses_are_frozen(package: str, name: str, cls: type) -> None:
    if name in MUTABLE_RECORDS:
        return
    assert cls.__dataclass_params__.frozen, f"{package}.{name} must be a frozen dataclass"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("package", "name", "cls"), DATACLASSES, ids=lambda x: getattr(x, "__name__", x)
)
def test_config_like_names_use_the_two_suffixes(package: str, name: str, cls: type) -> None:
    for bad in ("Options", "Settings", "Parameters", "Hyperparams", "Cfg", "Conf"):
        assert not name.endswith(bad), f"{package}.{name}: use the suffix Params or Config"


@pytest.mark.parametrize(
    ("package", "name", "cls"), DATACLASSES, ids=lambda x: getattr(x, "__name__", x)
)
def test_default_constructible_params_pickle_and_replace(
    package: str, name: str, cls: type
) -> None:
    if not name.endswith(("Params", "Config")):
        return
    try:
        obj = cls()
    except TypeError:  # required fields: nothing to build generically
        return
    assert pickle.loads(pickle.dumps(obj)) == obj
    assert dataclasses.replace(obj) == obj


def _time_names() -> list[tuple[str, str, str]]:
    """(package, owner, argument or field) of every time-like name in the timed packages."""
    found = []
    for package in TIMED:
        for name, obj in _public(package):
            if name.endswith("State"):  # simulation state (e.g. steps left refractory), no API
                continue
            if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
                found += [(package, name, f.name) for f in dataclasses.fields(obj)]
            elif callable(obj):
                try:
                    sig = inspect.signature(obj)
                except (TypeError, ValueError):
                    continue
                found += [(package, name, p) for p in sig.parameters]
    return [(pkg, owner, arg) for pkg, owner, arg in found if _time_like(arg)]


TIME_NAMES = _time_names()


def test_time_names_were_found() -> None:
    owners = {(o, a) for _, o, a in TIME_NAMES}
    assert ("LIFParams", "tau_mem_ms") in owners


@pytest.mark.parametrize(("package", "owner", "arg"), TIME_NAMES)
def test_times_name_their_unit(package: str, owner: str, arg: str) -> None:
    assert arg.endswith(UNIT_SUFFIXES), (
        f"{package}.{owner}({arg}=...): a time says its unit (_ms, or _steps when counted in "
        "update steps)"
    )
