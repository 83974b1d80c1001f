"""Contract catalogue entries of v3 (reference-systems §6.3): our causal flags keep causality,
batch independence and call independence; each published flag breaks exactly what it should.

Every entry primes the spiking layers near threshold (synaptic bias 0.3, membrane
u₀ = (1 − 0.3)/0.9, so u ≈ 1 after one step) so that spikes and refractory masks occur in every
call, and the routing entries use ``complexity_scale = 10⁴`` and ``complexity_threshold = 10⁻³``
so that every token takes a branch and any change of the routing statistic changes it: a contract that holds does so because the mechanism is
causal, not because the probe was too weak to see it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from contract_forwards import padded_forward

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_models.v3 import V3Config, V3Model

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"dim": 24, "num_layers": 2, "memory_size": 8, "concept_dim": 8, "num_concepts": 12,
         "episodic_slots": 5, "max_dim": 4, "max_seq_len": 32}  # fmt: skip
ALL = frozenset({"causality", "batch_independence", "call_independence"})


def _build(published: bool = False, **changes: Any) -> V3Model:
    cfg = (V3Config.published if published else V3Config)(**{**SMALL, **changes})
    model = V3Model(cfg)
    with torch.no_grad():
        for neuron in model.spiking_neurons:
            neuron.synaptic_weights.bias.fill_(0.3)
            neuron.membrane_potential.fill_(0.7 / 0.9)
    return model


def _tokens(gen: torch.Generator, b: int, t: int) -> torch.Tensor:
    return torch.randint(0, 256, (b, t), generator=gen)


def _train_mode(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # The in-forward state writes happen in training mode only.
    module.train()
    try:
        return module(x)
    finally:
        module.eval()


SPECS = [
    # Ours: every flag causal.
    register(ContractSpec(name="neuro_models.V3Model", build=_build, make_input=_tokens)),
    register(
        ContractSpec(
            name="neuro_models.V3Model[train-mode]",
            build=lambda: _build(complexity_scale=1e4, complexity_threshold=1e-3),
            make_input=_tokens,
            forward=_train_mode,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[left-padded]",
            build=_build,
            make_input=_tokens,
            forward=padded_forward,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[complexity_scale=1e4]",
            build=lambda: _build(complexity_scale=1e4, complexity_threshold=1e-3),
            make_input=_tokens,
        )
    ),
    # Published flags, one at a time, then all together.
    register(
        ContractSpec(
            name="neuro_models.V3Model[softmax=sequence]",
            build=lambda: _build(softmax="sequence"),
            make_input=_tokens,
            expect_fail=frozenset({"causality"}),
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[spiking=global]",
            build=lambda: _build(spiking="global"),
            make_input=_tokens,
            expect_fail=ALL,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[routing=batch]",
            build=lambda: _build(routing="batch", complexity_scale=1e4, complexity_threshold=1e-3),
            make_input=_tokens,
            expect_fail=frozenset({"causality", "batch_independence"}),
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[memory_writes,train-mode]",
            build=lambda: _build(memory_writes=True),
            make_input=_tokens,
            forward=_train_mode,
            expect_fail=ALL,
        )
    ),
    register(
        ContractSpec(
            name="neuro_models.V3Model[published]",
            build=lambda: _build(published=True),
            make_input=_tokens,
            expect_fail=ALL,
        )
    ),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


def test_memory_writes_are_invisible_in_eval_mode() -> None:
    # The published STM/consolidation writes happen in training only: in eval mode the flag alone
    # keeps every contract (what breaks them is the train-mode forward above).
    spec = ContractSpec(
        name="v3[memory_writes,eval]",
        build=lambda: _build(memory_writes=True),
        make_input=_tokens,
    )
    for contract in sorted(ALL):
        check_contract(spec, contract)


def test_primed_spiking_layers_spike_in_every_entry() -> None:
    # The probe is informative only if the membranes cross threshold (see the module docstring).
    for causal in (True, False):
        model = _build(spiking="causal" if causal else "global").eval()
        x = _tokens(torch.Generator().manual_seed(0), 3, 12)
        h = model.short_term_memory(model.embed(x))
        _, spikes = model.spiking_neurons[0].run(h)
        assert 0.05 < float(spikes.mean()) < 0.95


NO_SPIKES_NO_BRANCHES = {"spike_threshold": 1e6, "complexity_threshold": 1e6}


@pytest.mark.parametrize(("changes", "bound"), [({}, 2.0), (NO_SPIKES_NO_BRANCHES, 0.05)])
def test_causal_version_learns_with_backprop(changes: dict[str, float], bound: float) -> None:
    # The fixed model is a differentiable LM: 40 AdamW steps on the bigram stream "abcd..." take
    # it far below ln 256. With spikes and branch routing switched off (thresholds out of reach)
    # it fits the stream exactly; with them, the refractory masks (most features silent after a
    # spike) and the branch switches of each token slow it down.
    torch.manual_seed(0)
    model = V3Model(V3Config(**SMALL, **changes))
    stream = torch.tensor(list(b"abcd" * 9))
    x, y = stream[:32].view(1, -1), stream[1:33].view(1, -1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with torch.no_grad():
        assert float(model.loss(x, y)) > 5.0
    for _ in range(40):
        opt.zero_grad()
        model.loss(x, y).backward()
        opt.step()
    with torch.no_grad():
        assert float(model.loss(x, y)) < bound
