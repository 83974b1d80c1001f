"""Shared plumbing of the neuro-* packages: dispatch, validation, the hook protocols, the CSR
builder, kernels, test helpers."""

from neuro_core.dispatch import Backend, resolve_backend, triton_available
from neuro_core.protocols import EventPlasticityHook, Modulator, NeuromodulatorHook, PlasticityHook
from neuro_core.sparse import CSRIndices, csr_from_edges
from neuro_core.validation import (
    check_finite,
    check_in_range,
    check_int,
    check_positive,
    check_tensor,
)

__version__ = "0.2.0"

__all__ = [
    "Backend",
    "CSRIndices",
    "EventPlasticityHook",
    "Modulator",
    "NeuromodulatorHook",
    "PlasticityHook",
    "__version__",
    "check_finite",
    "check_in_range",
    "check_int",
    "check_positive",
    "check_tensor",
    "csr_from_edges",
    "resolve_backend",
    "triton_available",
]
