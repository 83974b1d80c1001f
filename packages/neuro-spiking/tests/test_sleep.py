"""Spiking sleep on a network small enough that every synapse's fate is known in advance.

``pre`` (4 spike sources) → ``post`` (2 neurons), all 8 synapses, weights chosen so that:

* (post0, pre0) = 0.005 and (post1, pre1) = 0.009 start below the pruning threshold 0.01;
* (post0, pre3) = 0.012 is pushed below it by the replay: pre3 spikes once in the replayed
  pattern and the hook lowers every synapse of a presynaptic spike by η·m = 0.01 · (0.3 · 1);
* pre0 spikes 60 times and pre1 51 times while awake (> 50 activations), pre2 exactly 50.

So 3 synapses are pruned (8 → 5), and the survivors of pre0 and pre1, (post1, pre0) and
(post0, pre1), become slow: 2 — once the network is older than 1000 ms.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from neuro_spiking.lif import LIFParams
from neuro_spiking.network import Network, Population, Projection, SpikeSource
from neuro_spiking.sleep_phase import (
    ConsolidationHook,
    SleepParams,
    last_spike_sets,
    raster,
    sleep,
)

ETA = 0.01
W0 = [0.005, 0.3, 0.3, 0.012, 0.3, 0.009, 0.3, 0.3]  # rows post0 (pre 0..3), post1 (pre 0..3)


class DepressOnPre:
    """Δw = −η·m on the synapses whose presynaptic neuron spiked (m None: no change); a slow
    synapse changes 5× less. State: the slow mask."""

    def __init__(self, proj: Projection) -> None:
        self.cols = proj.col_indices

    def init(self, weight: torch.Tensor, batch: int = 1) -> torch.Tensor:
        return torch.zeros_like(weight, dtype=torch.bool)

    def __call__(self, pre, post, state, weight, modulator=None):  # type: ignore[no-untyped-def]
        if modulator is None:
            return torch.zeros_like(weight), state
        dw = -ETA * float(modulator) * pre[0, self.cols]
        return torch.where(state, 0.2 * dw, dw), state

    def consolidate(self, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return state | mask


def _net() -> tuple[Network, DepressOnPre]:
    lif = LIFParams(tau_mem_ms=20.0, dt_ms=1.0, reset="hard", v_threshold=100.0)
    popl: list[Any] = [SpikeSource(name="pre", size=4), Population(name="post", size=2, lif=lif)]
    proj = Projection.from_edges(
        "pre",
        "post",
        n_post=2,
        pre_index=[0, 1, 2, 3, 0, 1, 2, 3],
        post_index=[0, 0, 0, 0, 1, 1, 1, 1],
        weight=torch.tensor(W0),
        delay_ms=1.0,
    )
    hook = DepressOnPre(proj)
    assert isinstance(hook, ConsolidationHook)
    return Network(popl, [proj], dt_ms=1.0, plasticity={0: hook}, dtype=torch.float64), hook


def _wake(n_steps: int) -> torch.Tensor:
    src = torch.zeros(n_steps, 4, dtype=torch.bool)
    src[torch.arange(60) * 15, 0] = True
    src[torch.arange(51) * 17 + 3, 1] = True
    src[torch.arange(50) * 13 + 5, 2] = True
    return src


@pytest.mark.parametrize(("n_wake", "want_slow"), [(1100, (2,)), (900, (0,))])
def test_sleep_prunes_and_consolidates_the_known_synapses(
    n_wake: int, want_slow: tuple[int, ...]
) -> None:
    net, _hook = _net()
    awake, _ = net.run(n_wake, source_spikes={"pre": _wake(n_wake)})
    assert awake.spike_count[:4].tolist() == [60, 51, 50, 0]
    torch.testing.assert_close(awake.weights[0], torch.tensor(W0, dtype=torch.float64))
    pattern = torch.zeros(6, net.size, dtype=torch.bool)
    pattern[1, 3] = True  # pre3 once
    pattern[2, [1, 4]] = True  # pre1 and post0
    pattern[4, 1] = True  # pre1 again
    slept, report = sleep(net, awake, pattern, modulator=1.0)
    assert report.synapses_before == (8,)
    assert report.synapses_after == (5,)
    assert report.pruned == (3,)
    assert report.slow == want_slow
    assert report.replayed_steps == 6
    torch.testing.assert_close(report.modulation, torch.full((6,), 0.3, dtype=torch.float64))
    want = torch.tensor(W0, dtype=torch.float64)
    want[[3, 7]] -= ETA * 0.3  # pre3 once; (post0, pre3): 0.012 → 0.009, pruned below
    want[[1, 5]] -= 2 * ETA * 0.3  # pre1 replayed twice
    alive = torch.tensor([0, 1, 1, 0, 1, 0, 1, 1], dtype=torch.bool)
    assert torch.equal(slept.alive[0], alive)
    torch.testing.assert_close(slept.weights[0], torch.where(alive, want, 0.0))
    slow = torch.zeros(8, dtype=torch.bool)
    if want_slow[0]:
        slow[[1, 4]] = True  # (post0, pre1) and (post1, pre0)
    assert torch.equal(slept.hook_states[0], slow)
    assert slept.step == awake.step + 6
    assert torch.equal(slept.v, awake.v)
    assert torch.equal(awake.alive[0], torch.ones(8, dtype=torch.bool))  # input untouched
    # awake again: a potentiating modulator (m = −10: +0.1 per pre spike, 0.02 when slow);
    # pruned synapses stay at 0
    again = torch.zeros(3, 4, dtype=torch.bool)
    again[0] = True
    final, _ = net.run(3, slept, source_spikes={"pre": again}, modulator=-10.0)
    grow = torch.where(slow, 0.02, 0.1).double()
    torch.testing.assert_close(final.weights[0], torch.where(alive, want + grow, 0.0))
    # a second sleep has nothing left to prune
    _, second = sleep(net, final, torch.zeros(2, net.size, dtype=torch.bool), modulator=1.0)
    assert (second.synapses_before, second.synapses_after) == ((5,), (5,))


def test_replay_buffers_and_validation() -> None:
    net, _ = _net()
    _, res = net.run(40, source_spikes={"pre": _wake(900)[:40]})
    r = raster(net, res.spikes)
    assert r.shape == (40, 6)
    sets = last_spike_sets(r, n=3)
    assert sets.shape == (3, 6)
    assert bool(sets.any(1).all())
    assert torch.equal(sets, r[r.any(1)][-3:])
    with pytest.raises(ValueError, match="missing"):
        raster(net, {"pre": res.spikes["pre"]})
    with pytest.raises(ValueError, match="spikes must be"):
        net.replay(torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="consolidate_after"):
        SleepParams(consolidate_after=-1)
    with pytest.raises(ValueError, match="modulation_scale"):
        SleepParams(modulation_scale=-0.3)


def test_replaying_a_run_gives_the_run_s_weights_and_leaves_the_state_alone() -> None:
    """The hooks see the same spikes at the same steps whether the network emits them or a
    replay plays them back, so the weights agree; the neurons are not advanced by a replay."""
    net, _hook = _net()
    lif = net.populations[1]
    assert isinstance(lif, Population)
    start, _ = net.run(7, source_spikes={"pre": _wake(900)[:7]})
    src = _wake(900)[7:307]
    kick = torch.zeros(300, 6, dtype=torch.float64)
    kick[::9, 4] = 150.0  # post0 fires (threshold 100)
    ran, res = net.run(300, start, inject=kick, source_spikes={"pre": src}, modulator=-1.0)
    assert int(res.spikes["post"].sum()) > 10
    saved = start.weights[0].clone()
    replayed, rep = net.replay(raster(net, res.spikes), start, modulator=-1.0)
    torch.testing.assert_close(replayed.weights[0], ran.weights[0], rtol=0, atol=1e-15)
    assert not torch.equal(ran.weights[0], saved)
    assert torch.equal(start.weights[0], saved)
    assert torch.equal(replayed.v, start.v)
    assert torch.equal(replayed.spike_count, start.spike_count)
    assert replayed.step == ran.step
    torch.testing.assert_close(rep.modulation, torch.full((300,), -1.0, dtype=torch.float64))
