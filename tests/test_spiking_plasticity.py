"""neuro-plasticity rules drive neuro-spiking's simulator through the hook protocol.

Neither package imports the other; this cross-package test checks that a rule built by
neuro-plasticity, bound to the simulator's CSR layout, satisfies the simulator's protocol and
produces exactly the weight change that the same rule gives when it is replayed by hand on the
recorded spike trains.
"""

from __future__ import annotations

import pytest
import torch

from neuro_plasticity import PlasticityHook as PlasticityProtocol
from neuro_plasticity.rule import on_topology
from neuro_plasticity.stdp import pair_stdp
from neuro_plasticity.topology import CSR
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import Network, PlasticityHook, Population, Projection

DT = 1.0


def _projection(n_pre: int, n_post: int, weight: float = 0.05) -> Projection:
    """All-to-all pre → post with one weight, delay 1 ms."""
    pre_idx = torch.arange(n_pre).repeat(n_post)
    post_idx = torch.arange(n_post).repeat_interleave(n_pre)
    return Projection.from_edges(
        "pre",
        "post",
        n_post=n_post,
        pre_index=pre_idx,
        post_index=post_idx,
        weight=weight,
        delay_ms=1.0,
    )


def _network(proj: Projection, n_pre: int, n_post: int, hook: PlasticityHook) -> Network:
    lif = LIFParams(tau_mem_ms=20.0, dt_ms=DT, reset="hard")
    pops = [
        Population(name="pre", size=n_pre, lif=lif),
        Population(name="post", size=n_post, lif=lif),
    ]
    return Network(pops, [proj], dt_ms=DT, plasticity={0: hook})


def _drive(
    n_steps: int,
    n: int,
    pre_spikes: dict[int, list[int]],
    post_spikes: dict[int, list[int]],
    n_pre: int,
) -> torch.Tensor:
    """Inputs strong enough to make the chosen neurons spike at the chosen steps."""
    inject = torch.zeros(n_steps, n)
    for t, idx in pre_spikes.items():
        inject[t, idx] = 5.0
    for t, idx in post_spikes.items():
        inject[t, [n_pre + i for i in idx]] = 5.0
    return inject


def _rule(proj: Projection, n_pre: int):
    topo = CSR(proj.crow_indices, proj.col_indices, n_pre)
    return on_topology(pair_stdp(a_plus=0.01, a_minus=0.012, dt_ms=DT), topo)


def test_rule_satisfies_both_protocols() -> None:
    rule = _rule(_projection(2, 2), 2)
    assert isinstance(rule, PlasticityHook)
    assert isinstance(rule, PlasticityProtocol)


@pytest.mark.parametrize(("pre_t", "post_t", "sign"), [(5, 12, 1.0), (12, 5, -1.0)])
def test_spike_order_sets_the_sign_inside_the_simulator(
    pre_t: int, post_t: int, sign: float
) -> None:
    proj = _projection(1, 1)
    net = _network(proj, 1, 1, _rule(proj, 1))
    inject = _drive(30, 2, {pre_t: [0]}, {post_t: [0]}, n_pre=1)
    state, result = net.run(30, inject=inject)
    assert result.spikes["pre"][pre_t, 0]
    assert result.spikes["post"][post_t, 0]
    dw = float(state.weights[0][0]) - 0.05
    assert dw * sign > 0, dw


def test_simulator_applies_the_rule_exactly() -> None:
    n_pre, n_post, steps = 3, 2, 40
    # weights far from 0 so the simulator's per-block clamp (Dale's law) never acts
    proj = _projection(n_pre, n_post, weight=0.8)
    rule = _rule(proj, n_pre)
    net = _network(proj, n_pre, n_post, rule)
    gen = torch.Generator().manual_seed(0)
    inject = (torch.rand(steps, n_pre + n_post, generator=gen) < 0.15).float() * 5.0
    state, result = net.run(steps, inject=inject)

    # Replay: the same rule on the recorded spikes, one step at a time, additive bounds.
    w = proj.weight.clone()
    st = rule.init(w)
    total = torch.zeros_like(w)
    pre, post = result.spikes["pre"].float(), result.spikes["post"].float()
    for t in range(steps):
        dw, st = rule(pre[t : t + 1], post[t : t + 1], st, w)
        total += dw
    assert total.abs().sum() > 0, "the drive produced no pairings; the test would prove nothing"
    torch.testing.assert_close(state.weights[0], (w + total).clamp_min(0.0))
