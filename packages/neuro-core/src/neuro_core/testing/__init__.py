"""Test helpers shared by every neuro-* package (imported by tests only, never by library code)."""

from neuro_core.testing.contracts import (
    CATALOGUE,
    CONTRACTS,
    ContractSpec,
    check_contract,
    contract_cases,
    register,
)
from neuro_core.testing.kernels import (
    TOLERANCES,
    Tolerance,
    assert_backends_match,
    poisoned_allocations,
)

__all__ = [
    "CATALOGUE",
    "CONTRACTS",
    "TOLERANCES",
    "ContractSpec",
    "Tolerance",
    "assert_backends_match",
    "check_contract",
    "contract_cases",
    "poisoned_allocations",
    "register",
]
