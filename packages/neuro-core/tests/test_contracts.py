"""The contract checks pass for well-behaved modules and catch each kind of published bug."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuro_core.testing import ContractSpec, check_contract, contract_cases


class CausalMix(nn.Module):
    """Prefix mean plus a pointwise layer: causal, batch- and call-independent."""

    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
        return self.proj(x.cumsum(1) / steps)


class WholeSequencePool(CausalMix):
    """The NCN-style bug: pooling over the whole sequence leaks the future."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + x.mean(1, keepdim=True))


class BatchMean(CausalMix):
    """Statistics over the batch: one item's input changes another's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x - x.mean(0, keepdim=True))


class HiddenState(CausalMix):
    """Module-resident state that survives between calls."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("memory", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj(x) + self.memory
        self.memory += x.detach().mean((0, 1))
        return out


class Unseeded(CausalMix):
    """Draws noise from a fresh, unseeded generator at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator()
        gen.seed()
        return self.proj(x) + torch.rand(x.shape, generator=gen)


def _spec(cls: type[nn.Module], **kw: object) -> ContractSpec:
    return ContractSpec(
        name=cls.__name__,
        build=cls,
        make_input=lambda g, b, t: torch.randn(b, t, 4, generator=g),
        **kw,  # type: ignore[arg-type]
    )


GOOD = _spec(CausalMix, compile=True)


@pytest.mark.parametrize(("spec", "contract"), contract_cases([GOOD]))
def test_well_behaved_module_passes(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


@pytest.mark.parametrize(
    ("cls", "contract"),
    [
        (WholeSequencePool, "causality"),
        (BatchMean, "batch_independence"),
        (HiddenState, "call_independence"),
        (Unseeded, "determinism"),
        (Unseeded, "call_independence"),
    ],
)
def test_each_bug_is_caught(cls: type[nn.Module], contract: str) -> None:
    with pytest.raises(AssertionError):
        check_contract(_spec(cls), contract)


def test_expected_failure_is_asserted() -> None:
    check_contract(_spec(WholeSequencePool, expect_fail=frozenset({"causality"})), "causality")
    with pytest.raises(AssertionError, match="expected to break"):
        check_contract(_spec(CausalMix, expect_fail=frozenset({"causality"})), "causality")


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="expect_fail"):
        _spec(CausalMix, expect_fail=frozenset({"causalty"}))
    with pytest.raises(ValueError, match="batch"):
        _spec(CausalMix, batch=1)
    with pytest.raises(ValueError, match="contract must be"):
        check_contract(GOOD, "speed")
