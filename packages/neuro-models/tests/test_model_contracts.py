"""Contract catalogue entries of the Llama baseline: it must keep every contract (§6.3)."""

from __future__ import annotations

import pytest
import torch
from contract_forwards import cached_forward, padded_forward

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_models.config import LlamaConfig
from neuro_models.llama import Llama

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 40
CONFIG = LlamaConfig(
    vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48, max_seq_len=16
)


def _tokens(gen: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=gen)


SPECS = [
    register(
        ContractSpec(
            name="neuro_models.Llama",
            build=lambda: Llama(CONFIG),
            make_input=_tokens,
            compile=True,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.Llama[kv-cache]",
            build=lambda: Llama(CONFIG),
            make_input=_tokens,
            forward=cached_forward,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.Llama[left-padded]",
            build=lambda: Llama(CONFIG),
            make_input=_tokens,
            forward=padded_forward,
        )
    ),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


def test_causality_check_catches_a_leak() -> None:
    # A baseline whose attention ignores the causal mask must fail the causality contract, so the
    # passing result above is informative.
    class Leaky(Llama):
        def _layout(self, B, T, start, cache, attention_mask, device):  # type: ignore[no-untyped-def]
            ctx, positions = super()._layout(B, T, start, cache, attention_mask, device)
            ctx.mask, ctx.is_causal = None, False
            return ctx, positions

    spec = ContractSpec(name="leaky", build=lambda: Leaky(CONFIG), make_input=_tokens)
    with pytest.raises(AssertionError, match="changed outputs"):
        check_contract(spec, "causality")
