"""Contract catalogue of Aura's models (reference-systems §6.3): ours keep causality, batch and
call independence (also through the KV cache and with left padding); each published flag breaks
exactly what it should:

* random prosody (notebook): new noise at every call, so every comparison of two calls differs;
  seeded identically per call it keeps every contract (the noise is per token);
* amygdala prosody (Colab): one state from the sequence- and batch-mean embedding: causality and
  batch independence fail;
* memory stored but never read (``store_memory`` without retrieval): nothing fails, the outputs
  never see the store (test_aura checks that the bank fills);
* SNN-RAG sequence-mean query: causality fails;
* SNN-RAG as published (store every call + sequence-mean read): all three fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from contract_forwards import cached_forward, padded_forward

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_models.aura import (
    AuraConfig,
    HippocampalTransformer,
    RetrievalConfig,
    colab_config,
    notebook_config,
    snn_rag_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 40
SHAPE = dict(
    vocab_size=VOCAB,
    d_model=32,
    n_layers=2,
    n_heads=4,
    ffn_dim=48,
    max_seq_len=16,
    n_place_cells=64,
    dropout=0.0,
)


def _tokens(gen: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=gen)


def _build(config: AuraConfig, memories: int = 0) -> Callable[[], HippocampalTransformer]:
    def build() -> HippocampalTransformer:
        model = HippocampalTransformer(config)
        if memories:
            model.write_memory(torch.randn(memories, config.d_model))
        return model

    return build


def _seeded(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # The same noise at every call: U[0, 1)^4 drawn per token from one seed.
    torch.manual_seed(1234)
    out: torch.Tensor = module(x)
    return out


ALL = frozenset({"causality", "batch_independence", "call_independence"})
OURS = AuraConfig(**SHAPE)
SNN_RAG = snn_rag_config(**SHAPE)

ENTRIES: list[tuple[str, Callable[[], HippocampalTransformer], Any, frozenset[str]]] = [
    ("HippocampalTransformer", _build(OURS), None, frozenset()),
    ("HippocampalTransformer[kv-cache]", _build(OURS), cached_forward, frozenset()),
    ("HippocampalTransformer[left-padded]", _build(OURS), padded_forward, frozenset()),
    ("HippocampalTransformer[rope]", _build(OURS.replace(positions="rope")), None, frozenset()),
    ("HippocampalTransformer[published-notebook]", _build(notebook_config(**SHAPE)), None, ALL),
    (
        "HippocampalTransformer[published-notebook, noise seeded per call]",
        _build(notebook_config(**SHAPE)),
        _seeded,
        frozenset(),
    ),
    (
        "HippocampalTransformer[published-colab-amygdala]",
        _build(colab_config("test", **SHAPE)),
        None,
        frozenset({"causality", "batch_independence"}),
    ),
    (
        "HippocampalTransformer[published-store-never-read]",
        _build(OURS.replace(store_memory=True)),
        None,
        frozenset(),
    ),
    ("SNNRAG", _build(SNN_RAG, memories=6), None, frozenset()),
    ("SNNRAG[kv-cache]", _build(SNN_RAG, memories=6), cached_forward, frozenset()),
    ("SNNRAG[left-padded]", _build(SNN_RAG, memories=6), padded_forward, frozenset()),
    (
        "SNNRAG[published-sequence-mean-query]",
        _build(
            SNN_RAG.replace(retrieval=RetrievalConfig(query="sequence_mean", temperature=1.0)),
            memories=6,
        ),
        None,
        frozenset({"causality"}),
    ),
    (
        "SNNRAG[published]",
        _build(snn_rag_config(published=True, **{**SHAPE, "prosody": "zeros"})),
        None,
        ALL,
    ),
]

SPECS = [
    register(
        ContractSpec(
            name=f"neuro_models.aura.{name}",
            build=build,
            make_input=_tokens,
            expect_fail=expect,
            **({} if forward is None else {"forward": forward}),
        )
    )
    for name, build, forward, expect in ENTRIES
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


def test_the_published_store_alone_breaks_the_contracts() -> None:
    # A per-token (causal) query, but the store on: each call reads what the previous call
    # wrote, so every comparison of two calls differs.
    cfg = snn_rag_config(**SHAPE, store_memory=True)
    spec = ContractSpec(
        name="store-token-query", build=_build(cfg), make_input=_tokens, expect_fail=ALL
    )
    for contract in sorted(ALL):
        check_contract(spec, contract)
    with pytest.raises(AssertionError, match="two identical calls differ"):
        check_contract(
            ContractSpec(name="s", build=_build(cfg), make_input=_tokens), "call_independence"
        )
