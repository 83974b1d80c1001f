"""Rules and transforms pickle (issue 17: rules inspectable and picklable): a round trip gives a
rule of the same type, name and parameters that computes the same weight changes."""

from __future__ import annotations

import pickle

import pytest
import torch

import neuro_plasticity as npl
from neuro_plasticity import CSR, Rule

CSR_3x4 = CSR.from_dense_mask(torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]]).bool())

RULES = {
    "pair_stdp": lambda: npl.pair_stdp(dt_ms=0.5, bound="soft", pairing="nearest"),
    "triplet_stdp": lambda: npl.triplet_stdp(dt_ms=0.5),
    "three_factor_stdp": lambda: npl.three_factor_stdp(tau_e_ms=20.0, dt_ms=0.5),
    "hebbian": lambda: npl.hebbian(0.1, decay=0.9),
    "oja": lambda: npl.oja(0.1),
    "bcm": lambda: npl.bcm(0.1, tau_theta_steps=5.0),
    "foldiak": lambda: npl.foldiak(0.1, 0.2),
    "reward_modulated_hebbian": lambda: npl.reward_modulated_hebbian(0.1),
    "synaptic_scaling": lambda: npl.synaptic_scaling(0.1, 0.2),
    "chain": lambda: npl.chain(
        npl.pair_stdp(dt_ms=0.5),
        npl.weight_decay(0.01),
        npl.scale(0.5),
        npl.modulate(),
        npl.prune(1e-3),
        npl.clip(w_min=0.0, w_max=1.0, max_delta=0.05),
    ),
    "eligibility chain": lambda: npl.chain(npl.hebbian(0.1), npl.eligibility(5.0, dt_ms=0.5)),
    "consolidating": lambda: npl.consolidating(npl.pair_stdp(), npl.pair_stdp(a_plus=0.001)),
    "two_regime_stdp": lambda: npl.two_regime_stdp(),
    "on_topology": lambda: npl.on_topology(npl.pair_stdp(dt_ms=0.5), CSR_3x4),
}


def _drive(rule: Rule, weight: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    st = rule.init(weight)
    out = []
    for _ in range(6):
        pre = (torch.rand(1, 4, generator=g) < 0.5).float()
        post = (torch.rand(1, 3, generator=g) < 0.5).float()
        dw, st = rule(pre, post, st, weight, 0.7)
        weight = weight + dw
        out.append(dw)
    return torch.stack(out)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_round_trips_through_pickle(name: str) -> None:
    rule = RULES[name]()
    back = pickle.loads(pickle.dumps(rule))
    assert type(back) is type(rule)
    assert back.name == rule.name
    assert back.params == rule.params
    w = torch.full((CSR_3x4.nnz,), 0.5) if rule.topology is not None else torch.full((3, 4), 0.5)
    a, b = _drive(rule, w), _drive(back, w)
    assert a.abs().sum() > 0
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_transforms_pickle_with_their_parameters() -> None:
    t = npl.clip(w_min=0.1, w_max=0.9, max_delta=0.01)
    back = pickle.loads(pickle.dumps(t))
    assert back.params == t.params
    assert back.sparse_safe is t.sparse_safe


def test_a_hand_built_rule_says_why_it_cannot_be_pickled() -> None:
    rule = Rule("mine", lambda topo, w, b: (), lambda topo, pre, post, s, w, m: (w * 0, s))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(rule)
