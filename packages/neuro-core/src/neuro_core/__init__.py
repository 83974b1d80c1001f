"""Shared plumbing of the neuro-* packages: dispatch, validation, kernels, test helpers."""

from neuro_core.dispatch import Backend, resolve_backend, triton_available
from neuro_core.validation import check_finite, check_positive, check_tensor

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "__version__",
    "check_finite",
    "check_positive",
    "check_tensor",
    "resolve_backend",
    "triton_available",
]
