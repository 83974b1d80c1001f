"""Activity-driven neuromodulation on spike sets whose Jaccard similarities are worked out by hand
in the comments (novelty, surprise, reward, decays, clip, warm-up, history window)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_plasticity.neuromodulation import (
    ActivityModulator,
    ActivityModulatorParams,
    activity_modulator_init,
    activity_modulator_step,
    jaccard,
)


def _run(sets: list[list[int]], params: ActivityModulatorParams, **kw: object) -> list[float]:
    state = activity_modulator_init(params)
    out = []
    for s in sets:
        m, state = activity_modulator_step(np.array(s, dtype=np.int64), state, params, **kw)  # type: ignore[arg-type]
        out.append(m)
    return out


def test_jaccard_by_hand() -> None:
    a = np.array([0, 1])
    assert jaccard(a, np.array([1, 2])) == pytest.approx(1 / 3)  # {1} / {0, 1, 2}
    assert jaccard(a, a) == 1.0
    assert jaccard(a, np.array([3])) == 0.0
    assert jaccard(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == 1.0
    assert jaccard(np.array([1]), a) == 0.5


def test_published_defaults_warmup_novelty_and_clip() -> None:
    """S1..S4 are in the warm-up (novelty 0.5: m = 1.5 + 4 = 5.5, clipped to 5).
    S5 = {0, 1} against S1..S4 = {0,1}, {1,2}, {0,1}, {3}: J = 1, 1/3, 1, 0, mean 7/12,
    novelty 5/12, m = 1.5 + 8·5/12 = 29/6 (below the clip).
    S6 = {1} against S1..S5: J = 1/2, 1/2, 1/2, 0, 1/2, mean 2/5, novelty 3/5, m = 6.3 → 5.
    S7 = {7, 8} shares nothing: novelty 1, m = 9.5 → 5. S8 = S7 repeated, against S2..S7 only
    (history 10 is not reached: 7 sets): J = 0, 0, 0, 0, 0, 1 → novelty 5/6, m → 5."""
    p = ActivityModulatorParams()
    sets = [[0, 1], [1, 2], [0, 1], [3], [0, 1], [1], [7, 8]]
    got = _run(sets, p)
    assert got[:4] == [5.0] * 4
    assert got[4] == pytest.approx(1.5 + 8 * 5 / 12)
    assert got[5:] == [5.0, 5.0]


def test_formula_decays_surprise_and_reward_by_hand() -> None:
    """Gains (n 2, s 3, r 2), warm-up 2 so that novelty is measured from the 2nd set on."""
    p = ActivityModulatorParams(novelty_gain=2.0, warmup=2)
    state = activity_modulator_init(p)
    # initial novelty 0.2
    assert state.m == pytest.approx(1.5 + 2 * 0.2)
    # step 1: {0, 1}: warm-up novelty 0.5; reward 0.25 given: m = 1.5 + 1 + 0.5
    m, state = activity_modulator_step(np.array([0, 1]), state, p, reward=0.25)
    assert m == pytest.approx(1.5 + 2 * 0.5 + 2 * 0.25)
    # step 2: {1, 2} vs {0, 1}: J = 1/3, novelty 2/3; reward decays to 0.2;
    # predicted [0.5, 0.0, 1.0] vs actual [1, 0, 0]: surprise (0.5 + 0 + 1) / 3 = 0.5
    m, state = activity_modulator_step(
        np.array([2, 1]),
        state,
        p,
        output_activity=np.array([1.0, 0.0, 0.0]),
        predicted=np.array([0.5, 0.0, 1.0]),
    )
    assert state.novelty == pytest.approx(2 / 3)
    assert state.reward == pytest.approx(0.25 * 0.8)
    assert state.surprise == pytest.approx(0.5)
    assert m == pytest.approx(1.5 + 2 * (2 / 3) + 3 * 0.5 + 2 * 0.2)
    # step 3: silent; every signal decays once (default decay_on="every_step")
    m, state = activity_modulator_step(np.array([], dtype=np.int64), state, p)
    n3, s3, r3 = 2 / 3 * 0.95, 0.5 * 0.9, 0.2 * 0.8
    assert m == pytest.approx(1.5 + 2 * n3 + 3 * s3 + 2 * r3)
    # step 4: {1} vs {0,1} and {1,2} (the silent step left no set): J = 1/2, 1/2: novelty 1/2;
    # reward 7 is clipped to 1; surprise keeps decaying
    m, state = activity_modulator_step(np.array([1]), state, p, reward=7.0)
    assert state.reward == 1.0
    assert state.surprise == pytest.approx(s3 * 0.9)
    assert state.novelty == pytest.approx(0.5)
    assert m == 5.0  # 1.5 + 1 + 1.215 + 2 = 5.715, clipped
    assert state.n_sets == 3


def test_published_decay_on_spiking_steps_skips_silent_steps() -> None:
    p = ActivityModulatorParams(novelty_gain=2.0, warmup=2, decay_on="spiking_steps")
    state = activity_modulator_init(p)
    m1, state = activity_modulator_step(np.array([0, 1]), state, p, reward=0.5)
    m2, s2 = activity_modulator_step(np.array([], dtype=np.int64), state, p)
    assert m2 == m1
    assert s2 == state
    # a reward at a silent step is stored (published set_reward) without a decay
    _, s3 = activity_modulator_step(np.array([], dtype=np.int64), s2, p, reward=0.75)
    assert s3.reward == 0.75
    # next spiking step: decay once then measure: {0, 1} again: J = 1, novelty 0
    m4, _ = activity_modulator_step(np.array([0, 1]), s3, p)
    assert m4 == pytest.approx(1.5 + 0.0 + 2 * 0.75 * 0.8)
    assert m1 == pytest.approx(1.5 + 2 * 0.5 + 2 * 0.5)


def test_only_the_last_history_sets_are_compared() -> None:
    """history = 3: after {0}, {0}, {0}, {1}, {1}, {1}, the set {0} is compared with
    {1}, {1}, {1} only: novelty 1 (with all six it would be 1/2)."""
    p = ActivityModulatorParams(history=3, warmup=1, novelty_gain=1.0)
    state = activity_modulator_init(p)
    for s in ([0], [0], [0], [1], [1], [1]):
        _, state = activity_modulator_step(np.array(s), state, p)
    _, state = activity_modulator_step(np.array([0]), state, p)
    assert state.novelty == 1.0
    assert len(state.history) == 3


@settings(max_examples=40, deadline=None)
@given(
    sets=st.lists(st.lists(st.integers(0, 12), max_size=6), min_size=1, max_size=25),
    history=st.integers(1, 10),
    warmup=st.integers(1, 6),
)
def test_matches_a_set_based_reference(sets: list[list[int]], history: int, warmup: int) -> None:
    """Python-set reference of the update rule: m stays in [m_min, m_max] and equals it."""
    p = ActivityModulatorParams(history=history, warmup=warmup)
    got = _run(sets, p)
    seen: list[set[int]] = []
    nov = p.initial_novelty
    want = []
    for s in sets:
        cur = set(s)
        nov *= 0.95
        if cur:
            if len(seen) + 1 < warmup or not seen:
                nov = 0.5
            else:
                past = seen[-history:]
                nov = 1 - sum(len(cur & h) / len(cur | h) for h in past) / len(past)
            seen.append(cur)
        want.append(min(max(1.5 + 8 * nov, 0.1), 5.0))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_network_hook_reads_reward_and_predicted_rows() -> None:
    mod = ActivityModulator(
        ActivityModulatorParams(novelty_gain=0.0, surprise_gain=3.0), output=slice(4, 6)
    )
    state = mod.init(6)
    nan = torch.tensor(math.nan)
    # output neurons 4, 5: neuron 5 spiked; predicted [1, 1]: surprise = (1 + 0) / 2
    m, state = mod.update(
        0,
        torch.tensor([0, 5]),
        state,
        {"reward": nan, "predicted": torch.tensor([1.0, 1.0])},
    )
    assert m == pytest.approx(1.5 + 3 * 0.5)
    # NaN rows mean "not given": surprise decays, reward stays 0
    m, state = mod.update(1, torch.tensor([1]), state, {"reward": nan, "predicted": nan.expand(2)})
    assert m == pytest.approx(1.5 + 3 * 0.5 * 0.9)
    m, state = mod.update(2, torch.tensor([1]), state, {"reward": torch.tensor(1.0)})
    assert m == pytest.approx(1.5 + 3 * 0.5 * 0.81 + 2 * 1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        mod.update(3, torch.tensor([1]), state, {"dopamine": nan})
    with pytest.raises(ValueError, match="predicted"):
        mod.update(3, torch.tensor([1]), state, {"predicted": torch.zeros(3)})
    with pytest.raises(ValueError, match="output"):
        ActivityModulator(output=slice(0, 9)).init(6)
    with pytest.raises(ValueError, match="m_min"):
        ActivityModulatorParams(m_min=5.0, m_max=1.0)
    with pytest.raises(ValueError, match="decay_on"):
        ActivityModulatorParams(decay_on="never")  # type: ignore[arg-type]
    # restricting the watched neurons: only 0..2 form the sets
    watch = ActivityModulator(ActivityModulatorParams(warmup=1), neurons=slice(0, 3))
    st0 = watch.init(6)
    _, st1 = watch.update(0, torch.tensor([0, 4]), st0, {})
    assert st1.history[-1].tolist() == [0]
