"""Kernel-versus-reference comparison: outputs **and** gradients, with poisoned fresh buffers.

Every op with a kernel is tested with :func:`assert_backends_match`:

* the reference runs on fp32 copies of the inputs (it is the spec), the backend under test on the
  inputs in the dtype under test;
* every floating output gets a random upstream gradient (never ``ones``: a sum hides sign and
  permutation bugs), and the gradients of every input that requires grad are compared;
* while the backend under test runs, :func:`poisoned_allocations` makes ``torch.empty``-style
  allocations come back filled with NaN, so an element a kernel forgets to write shows up as NaN;
* tolerances are named per dtype in :data:`TOLERANCES`, identical locally and in CI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Tolerance:
    """Absolute and relative tolerance for ``torch.testing.assert_close``."""

    atol: float
    rtol: float


#: Named tolerances per dtype of the backend under test (reference always runs in fp32).
TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float32: Tolerance(atol=1e-4, rtol=1e-4),
    torch.float16: Tolerance(atol=5e-3, rtol=5e-3),
    torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2),
}


@contextlib.contextmanager
def poisoned_allocations() -> Iterator[None]:
    """Within the block, uninitialized float allocations are filled with NaN.

    Patches ``torch.empty``, ``torch.empty_like``, ``torch.empty_strided`` and
    ``Tensor.new_empty``: a kernel that leaves part of its output unwritten then produces NaN
    instead of whatever happened to be in memory.
    """
    originals = (torch.empty, torch.empty_like, torch.empty_strided, torch.Tensor.new_empty)

    def poison(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() or t.is_complex():
            t.fill_(float("nan"))
        return t

    def empty(*a: Any, **k: Any) -> torch.Tensor:
        return poison(originals[0](*a, **k))

    def empty_like(*a: Any, **k: Any) -> torch.Tensor:
        return poison(originals[1](*a, **k))

    def empty_strided(*a: Any, **k: Any) -> torch.Tensor:
        return poison(originals[2](*a, **k))

    def new_empty(self: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        return poison(originals[3](self, *a, **k))

    torch.empty, torch.empty_like, torch.empty_strided = empty, empty_like, empty_strided  # type: ignore[assignment]
    torch.Tensor.new_empty = new_empty  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.empty, torch.empty_like, torch.empty_strided = originals[:3]  # type: ignore[assignment]
        torch.Tensor.new_empty = originals[3]  # type: ignore[method-assign]


def _as_tuple(out: object) -> tuple[torch.Tensor | None, ...]:
    if isinstance(out, torch.Tensor) or out is None:
        return (out,)
    if isinstance(out, tuple | list):
        return tuple(out)
    raise TypeError(f"op must return a tensor or a tuple of tensors, got {type(out).__name__}")


def assert_backends_match(
    reference: Callable[..., object],
    candidate: Callable[..., object],
    inputs: Mapping[str, object],
    *,
    dtype: torch.dtype,
    grad: tuple[str, ...] = (),
    seed: int = 0,
    tolerance: Tolerance | None = None,
    grad_tolerance: Tolerance | None = None,
    poison: bool = True,
) -> None:
    """Compare ``candidate(**inputs)`` with ``reference(**inputs)``, forward and backward.

    Args:
        reference: the spec; called on fp32 copies of the floating inputs.
        candidate: the backend under test; called on the inputs cast to ``dtype``.
        inputs: keyword arguments; tensors are cast, anything else is passed through. Tuples of
            tensors are cast element-wise.
        dtype: dtype of the floating inputs given to ``candidate``.
        grad: names of tensor inputs whose gradients are compared.
        seed: seed of the random upstream gradients.
        tolerance: for outputs; defaults to ``TOLERANCES[dtype]``.
        grad_tolerance: for gradients; defaults to 2× ``tolerance`` (gradients accumulate more
            rounding than outputs).
        poison: fill fresh allocations with NaN while the candidate runs.

    Raises:
        AssertionError: with the output or gradient name that differs.
    """
    tol = tolerance or TOLERANCES[dtype]
    gtol = grad_tolerance or Tolerance(2 * tol.atol, 2 * tol.rtol)

    def prepare(cast: torch.dtype) -> dict[str, object]:
        def conv(v: object, name: str) -> object:
            if isinstance(v, torch.Tensor):
                t = v.detach().to(cast) if v.is_floating_point() else v.detach().clone()
                if name in grad:
                    t.requires_grad_(True)
                return t
            if isinstance(v, tuple):
                return tuple(conv(e, name) for e in v)
            return v

        return {k: conv(v, k) for k, v in inputs.items()}

    ref_in, cand_in = prepare(torch.float32), prepare(dtype)
    ref_out = _as_tuple(reference(**ref_in))

    def ctx() -> contextlib.AbstractContextManager[None]:
        return poisoned_allocations() if poison else contextlib.nullcontext()

    with ctx():
        cand_out = _as_tuple(candidate(**cand_in))
    if len(ref_out) != len(cand_out):
        raise AssertionError(
            f"reference returned {len(ref_out)} outputs, candidate {len(cand_out)}"
        )

    gen = torch.Generator().manual_seed(seed)
    ref_terms, cand_terms = [], []
    for i, (r, c) in enumerate(zip(ref_out, cand_out)):
        if r is None or c is None:
            if (r is None) != (c is None):
                raise AssertionError(f"output {i}: one backend returned None")
            continue
        if r.shape != c.shape:
            raise AssertionError(
                f"output {i}: shape {tuple(c.shape)} != reference {tuple(r.shape)}"
            )
        torch.testing.assert_close(
            c.detach().float(),
            r.detach().float(),
            atol=tol.atol,
            rtol=tol.rtol,
            msg=_prefixed(f"output {i} differs from the reference"),
        )
        if grad and r.requires_grad and r.is_floating_point():
            up = torch.randn(r.shape, generator=gen, dtype=torch.float32).to(r.device)
            ref_terms.append((r.float() * up).sum())
            cand_terms.append((c.float() * up.to(c.device)).sum())
    if not grad:
        return
    if not ref_terms:
        raise AssertionError("grad requested but no output requires grad")
    ref_grads = torch.autograd.grad(
        torch.stack(ref_terms).sum(), [_find(ref_in, g) for g in grad], allow_unused=True
    )
    with ctx():
        cand_grads = torch.autograd.grad(
            torch.stack(cand_terms).sum(), [_find(cand_in, g) for g in grad], allow_unused=True
        )
    for name, rg, cg in zip(grad, ref_grads, cand_grads):
        if rg is None and cg is None:
            continue
        if rg is None or cg is None:
            raise AssertionError(f"grad of {name}: one backend returned no gradient")
        torch.testing.assert_close(
            cg.float(),
            rg.float(),
            atol=gtol.atol,
            rtol=gtol.rtol,
            msg=_prefixed(f"gradient of {name} differs from the reference"),
        )


def _prefixed(text: str) -> Callable[[str], str]:
    def message(detail: str) -> str:
        return f"{text}: {detail}"

    return message


def _find(inputs: Mapping[str, object], name: str) -> torch.Tensor:
    v = inputs[name]
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"grad input {name!r} must be a tensor")
    return v
