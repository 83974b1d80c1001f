"""Contract catalogue entries of the Llama baseline: it must keep every contract (§6.3)."""

from __future__ import annotations

import pytest
import torch

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_models.config import LlamaConfig
from neuro_models.llama import KVCache, Llama

VOCAB = 40
CONFIG = LlamaConfig(
    vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48, max_seq_len=16
)


def _tokens(gen: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=gen)


def _cached(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # The same contracts through the KV-cache path: prefill 2 tokens, then one token at a time.
    model = module._orig_mod if hasattr(module, "_orig_mod") else module
    assert isinstance(model, Llama)
    cache = KVCache(model.config, x.shape[0], x.shape[1])
    parts = [module(x[:, :2], cache=cache)]
    parts += [module(x[:, t : t + 1], cache=cache) for t in range(2, x.shape[1])]
    return torch.cat(parts, dim=1)


def _padded(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Row b is left-padded by b % 3 positions; only the real positions are compared.
    mask = torch.ones_like(x, dtype=torch.bool)
    for b in range(x.shape[0]):
        mask[b, : b % 3] = False
    out = module(x.masked_fill(~mask, 0), attention_mask=mask)
    return out.masked_fill(~mask[..., None], 0.0)


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
            forward=_cached,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.Llama[left-padded]",
            build=lambda: Llama(CONFIG),
            make_input=_tokens,
            forward=_padded,
        )
    ),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
