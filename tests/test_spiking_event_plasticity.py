"""neuro-plasticity's STDP rules inside neuro-spiking's simulator with blocks of K steps.

* The dense rules (``chain(pair_stdp(...), clip(w_min=0, w_max=1))`` and soft-bound
  ``pair_stdp``) give, for K = min_delay/dt ∈ {1, 5, 15}, exactly the weights of the same rule
  replayed here one step at a time on the recorded spike trains (issue 15: with K = 15 the
  simulator used to sum K changes computed from the block-start weight).
* The event-driven form (``event_driven(rule, CSR)``, cost proportional to spikes) gives the
  spikes and, up to float rounding, the weights of the dense rule inside the simulator.
"""

from __future__ import annotations

import pytest
import torch

from neuro_plasticity import CSR, Rule, chain, clip, event_driven, on_topology, pair_stdp
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import (
    EventPlasticityHook,
    Network,
    Population,
    Projection,
    random_projection,
)

DT = 0.1


def _rule(bound: str) -> Rule:
    if bound == "soft":
        return pair_stdp(a_plus=0.1, a_minus=0.05, dt_ms=DT, bound="soft")
    return chain(pair_stdp(a_plus=0.2, a_minus=0.1, dt_ms=DT), clip(w_min=0.0, w_max=1.0))


def _network(k: int, rule: Rule, *, event: bool) -> tuple[Network, Projection]:
    """``a`` (10) → ``b`` (6) plastic (delays K·dt .. (K + 3)·dt), ``b`` → ``a`` static."""
    lif = LIFParams(tau_mem_ms=10.0, dt_ms=DT, reset="hard", v_threshold=1.0, v_reset=0.0)
    popl = [Population(name="a", size=10, lif=lif), Population(name="b", size=6, lif=lif)]
    ab = random_projection(
        popl[0], popl[1], p=0.5, weight=0.45, delay_ms=(k * DT, (k + 3) * DT), dt_ms=DT, seed=0
    )
    ba = random_projection(popl[1], popl[0], p=0.3, weight=0.1, delay_ms=k * DT, dt_ms=DT, seed=1)
    topo = CSR(ab.crow_indices, ab.col_indices, 10)
    hook = event_driven(rule, topo, backend="events") if event else on_topology(rule, topo)
    return Network(popl, [ab, ba], dt_ms=DT, plasticity={0: hook}), ab


def _inject(net: Network, n_steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (torch.rand(n_steps, net.size, generator=g) < 0.01).float() * 1.5


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("bound", ["additive", "soft"])
def test_dense_rule_in_blocks_equals_step_by_step_replay(k: int, bound: str) -> None:
    rule = _rule(bound)
    net, ab = _network(k, rule, event=False)
    state, res = net.run(600, inject=_inject(net, 600))
    # replay: the same rule, one step at a time, the weight updated after every step
    topo = CSR(ab.crow_indices, ab.col_indices, 10)
    bound_rule = on_topology(rule, topo)
    w = ab.weight.clone()
    st = bound_rule.init(w)
    pre, post = res.spikes["a"].float(), res.spikes["b"].float()
    for t in range(pre.shape[0]):
        dw, st = bound_rule(pre[t : t + 1], post[t : t + 1], st, w)
        w = (w + dw).clamp_min(0.0)
    assert int(pre.sum()) > 60
    assert (w - ab.weight).abs().max() > 0.3
    torch.testing.assert_close(state.weights[0], w, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("bound", ["additive", "soft"])
def test_event_driven_rule_equals_dense_rule_in_the_simulator(k: int, bound: str) -> None:
    dense_net, _ = _network(k, _rule(bound), event=False)
    event_net, _ = _network(k, _rule(bound), event=True)
    assert isinstance(event_net.plasticity[0], EventPlasticityHook)
    inject = _inject(dense_net, 600)
    s_dense, r_dense = dense_net.run(600, inject=inject)
    s1, r1 = event_net.run(250, inject=inject[:250])
    s_event, r2 = event_net.run(350, s1, inject=inject[250:])
    for name in ("a", "b"):
        assert torch.equal(torch.cat([r1.spikes[name], r2.spikes[name]]), r_dense.spikes[name])
    # float32 weights; the dense rule rounds its traces every step, the event rule once
    torch.testing.assert_close(s_event.weights[0], s_dense.weights[0], rtol=0, atol=1e-5)
    assert (s_dense.weights[0] - dense_net.projections[0].weight).abs().max() > 0.3


class _StepOnly:
    """The event hook without its block form: the simulator then calls it step by step."""

    def __init__(self, hook: EventPlasticityHook) -> None:
        self.hook = hook

    def init(self, weight: torch.Tensor, batch: int = 1) -> object:
        return self.hook.init(weight, batch)

    def on_spikes(self, *args: object) -> object:
        return self.hook.on_spikes(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("bound", ["additive", "soft"])
@pytest.mark.parametrize("native_kernel", [True, False])
def test_block_form_equals_step_by_step_calls_bitwise(
    k: int, bound: str, native_kernel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuro_plasticity.ops.event_stdp import native

    if not native_kernel:
        monkeypatch.setattr(native, "load", lambda: None)
    elif native.load() is None:
        pytest.skip(native.status())
    block_net, ab = _network(k, _rule(bound), event=True)
    step_net = Network(
        block_net.populations,
        block_net.projections,
        dt_ms=DT,
        plasticity={0: _StepOnly(block_net.plasticity[0])},  # type: ignore[dict-item]
    )
    inject = _inject(block_net, 900) * 1.6
    s_blk, r_blk = block_net.run(900, inject=inject)
    s_step, r_step = step_net.run(900, inject=inject)
    for name in ("a", "b"):
        assert torch.equal(r_blk.spikes[name], r_step.spikes[name])
    assert torch.equal(s_blk.weights[0], s_step.weights[0])
    assert (s_blk.weights[0] - ab.weight).abs().max() > 0.3
    assert int(r_blk.spikes["b"].sum()) > 30
