"""The contract-test catalogue: invariants every sequence module and model must keep.

Several published brain-inspired models break exactly these (a pooling that sees future tokens, a
buffer shared across the batch, a hidden state that changes between two identical calls), so every
component registers one :class:`ContractSpec` and gets all checks for free.

Contracts (sequences are ``[B, T, ...]``, batch first, time second):

``causality``
    Replacing inputs at positions ``> t`` leaves outputs at positions ``≤ t`` unchanged.
``batch_independence``
    Replacing batch item ``b'`` leaves every other item's output unchanged.
``call_independence``
    Two identical calls in eval mode give identical outputs (no state leaks between calls).
``determinism``
    Building the module twice under the same seed and calling it on the same input gives the
    same output.
``compile``
    ``torch.compile(fullgraph=True)`` runs without graph breaks and matches eager.

A component that is *expected* to fail a contract (a published behaviour we keep behind a flag)
lists it in ``expect_fail``; the generated test then asserts that the contract really fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

CONTRACTS: tuple[str, ...] = (
    "causality",
    "batch_independence",
    "call_independence",
    "determinism",
    "compile",
)


def _default_forward(module: nn.Module, x: Any) -> torch.Tensor:
    out = module(x)
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward returned {type(out).__name__}; give ContractSpec a forward=")
    return out


@dataclass(frozen=True, kw_only=True)
class ContractSpec:
    """How to build, feed and read one component for the contract checks.

    Attributes:
        name: catalogue key, e.g. ``"neuro_attention.HabituatingAttention"``.
        build: returns a fresh module; called after ``torch.manual_seed``.
        make_input: ``(generator, batch, seq_len) -> input`` (a tensor ``[B, T, ...]``).
        forward: ``(module, input) -> output [B, T, ...]``; default calls the module and takes
            the first element of a tuple.
        batch: batch size used by the checks (≥ 2).
        seq_len: sequence length used by the checks (≥ 3).
        atol: absolute tolerance of "unchanged" (fp32).
        compile: whether ``torch.compile(fullgraph=True)`` must work (slow; keep it for
            components that promise it).
        expect_fail: contracts this component is known to break (published behaviour kept behind
            a flag); the check then asserts that it fails.
    """

    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[torch.Generator, int, int], Any]
    forward: Callable[[nn.Module, Any], torch.Tensor] = _default_forward
    batch: int = 3
    seq_len: int = 12
    atol: float = 1e-5
    compile: bool = False
    expect_fail: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = set(self.expect_fail) - set(CONTRACTS)
        if unknown:
            raise ValueError(
                f"expect_fail has unknown contracts {sorted(unknown)}; known: {CONTRACTS}"
            )
        if self.batch < 2:
            raise ValueError(f"batch must be ≥ 2 for batch independence, got {self.batch}")
        if self.seq_len < 3:
            raise ValueError(f"seq_len must be ≥ 3, got {self.seq_len}")


#: Every registered component, by name.
CATALOGUE: dict[str, ContractSpec] = {}


def register(spec: ContractSpec) -> ContractSpec:
    """Add ``spec`` to :data:`CATALOGUE` (re-registering the same name replaces it)."""
    CATALOGUE[spec.name] = spec
    return spec


def _splice(x: Any, y: Any, select: Callable[[torch.Tensor], Any]) -> Any:
    """Copy ``x`` and overwrite the elements picked by ``select`` with those of ``y``."""
    if isinstance(x, torch.Tensor):
        out = x.clone()
        select(out)[...] = select(y)
        return out
    if isinstance(x, tuple | list):
        return type(x)(_splice(a, b, select) for a, b in zip(x, y))
    if isinstance(x, dict):
        return {k: _splice(x[k], y[k], select) for k in x}
    raise TypeError(f"cannot splice inputs of type {type(x).__name__}")


def _after(t: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Selector of the positions after ``t`` (dim 1)."""

    def select(z: torch.Tensor) -> torch.Tensor:
        return z[:, t + 1 :]

    return select


def _build(spec: ContractSpec, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return spec.build().eval()


def _inputs(spec: ContractSpec, seed: int) -> Any:
    gen = torch.Generator().manual_seed(seed)
    return spec.make_input(gen, spec.batch, spec.seq_len)


def _run(spec: ContractSpec, module: nn.Module, x: Any) -> torch.Tensor:
    with torch.no_grad():
        return spec.forward(module, x).detach()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return (
        float((a.float() - b.float()).abs().nan_to_num(nan=float("inf")).max())
        if a.numel()
        else 0.0
    )


def _causality(spec: ContractSpec) -> None:
    module = _build(spec)
    x, noise = _inputs(spec, 1), _inputs(spec, 2)
    y = _run(spec, module, x)
    for t in sorted({0, spec.seq_len // 2, spec.seq_len - 2}):
        x2 = _splice(x, noise, _after(t))
        d = _max_diff(_run(spec, module, x2)[:, : t + 1], y[:, : t + 1])
        if d > spec.atol:
            raise AssertionError(
                f"{spec.name}: changing inputs after position {t} changed outputs at ≤ {t} "
                f"(max abs diff {d:.3g} > {spec.atol})"
            )


def _batch_independence(spec: ContractSpec) -> None:
    module = _build(spec)
    x, noise = _inputs(spec, 1), _inputs(spec, 2)
    y = _run(spec, module, x)
    x2 = _splice(x, noise, lambda z: z[1:2])
    y2 = _run(spec, module, x2)
    keep = [b for b in range(spec.batch) if b != 1]
    d = _max_diff(y2[keep], y[keep])
    if d > spec.atol:
        raise AssertionError(
            f"{spec.name}: changing batch item 1 changed other items (max abs diff {d:.3g})"
        )


def _call_independence(spec: ContractSpec) -> None:
    module = _build(spec)
    x = _inputs(spec, 1)
    d = _max_diff(_run(spec, module, x), _run(spec, module, x))
    if d > spec.atol:
        raise AssertionError(f"{spec.name}: two identical calls differ (max abs diff {d:.3g})")


def _determinism(spec: ContractSpec) -> None:
    x = _inputs(spec, 1)
    d = _max_diff(_run(spec, _build(spec, 7), x), _run(spec, _build(spec, 7), x))
    if d > spec.atol:
        raise AssertionError(f"{spec.name}: same seed, different outputs (max abs diff {d:.3g})")


def _compile(spec: ContractSpec) -> None:
    module = _build(spec)
    x = _inputs(spec, 1)
    eager = _run(spec, module, x)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    with torch.no_grad():
        out = spec.forward(compiled, x)  # type: ignore[arg-type]
    d = _max_diff(out, eager)
    if d > max(spec.atol, 1e-4):
        raise AssertionError(f"{spec.name}: compiled output differs from eager by {d:.3g}")


_CHECKS: dict[str, Callable[[ContractSpec], None]] = {
    "causality": _causality,
    "batch_independence": _batch_independence,
    "call_independence": _call_independence,
    "determinism": _determinism,
    "compile": _compile,
}


def check_contract(spec: ContractSpec, contract: str) -> None:
    """Run one contract on one component.

    If ``contract`` is in ``spec.expect_fail``, assert that it *fails* instead.

    Raises:
        AssertionError: the contract is broken (or unexpectedly holds).
        ValueError: unknown contract name.
    """
    if contract not in _CHECKS:
        raise ValueError(f"contract must be one of {CONTRACTS}, got {contract!r}")
    if contract not in spec.expect_fail:
        _CHECKS[contract](spec)
        return
    try:
        _CHECKS[contract](spec)
    except AssertionError:
        return
    raise AssertionError(f"{spec.name}: expected to break {contract}, but it holds")


def contract_cases(specs: list[ContractSpec] | None = None) -> list[Any]:
    """``pytest.param`` objects for every (spec, contract) pair, for ``@pytest.mark.parametrize``.

    ``compile`` cases are generated only for specs with ``compile=True`` and carry the
    ``compile`` marker.
    """
    import pytest

    out = []
    for spec in specs if specs is not None else list(CATALOGUE.values()):
        for contract in CONTRACTS:
            if contract == "compile" and not spec.compile:
                continue
            marks = [pytest.mark.compile] if contract == "compile" else []
            out.append(pytest.param(spec, contract, id=f"{spec.name}-{contract}", marks=marks))
    return out
