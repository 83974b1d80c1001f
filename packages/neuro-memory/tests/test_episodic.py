"""Episodic memory: exact top-k against numpy, replacement policies, decay, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import (
    EpisodicMemory,
    EpisodicParams,
    EpisodicState,
    decay,
    init_state,
    read,
    write,
)


def _brute_force(keys: np.ndarray, strength: np.ndarray, queries: np.ndarray, eps: float):
    """Independent score matrix in float64: cos(q, key) * strength, norms clamped at eps."""
    kn = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), eps)
    qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), eps)
    return (qn @ kn.T) * strength[None, :]


def _filled(params: EpisodicParams, n: int, dk: int = 5, dv: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    state = init_state(params, dk, dv)
    keys, values = torch.randn(n, dk, generator=gen), torch.randn(n, dv, generator=gen)
    return write(state, keys, values, params), keys, values


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 24),
    n_written=st.integers(1, 40),
    n_decays=st.integers(0, 4),
    n_queries=st.integers(1, 6),
    dk=st.integers(1, 6),
    k_frac=st.floats(0.0, 1.0),
    policy=st.sampled_from(["fifo", "weakest"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_read_matches_numpy_brute_force(
    capacity, n_written, n_decays, n_queries, dk, k_frac, policy, seed
):
    params = EpisodicParams(capacity=capacity, decay_rate=0.2, replacement=policy)
    rng = np.random.default_rng(seed)
    state = init_state(params, dk, 2, dtype=torch.float64)
    # Writes in a few chunks with random strengths and decays between them.
    for chunk in np.array_split(np.arange(n_written), 3):
        if len(chunk) == 0:
            continue
        keys = torch.from_numpy(rng.standard_normal((len(chunk), dk)))
        values = torch.from_numpy(rng.standard_normal((len(chunk), 2)))
        strength = torch.from_numpy(rng.uniform(0.1, 2.0, len(chunk)))
        state = write(state, keys, values, params, strength=strength)
        for _ in range(n_decays):
            state = decay(state, params)
    size = state.size
    assert size == min(n_written, capacity)
    k = 1 + int(k_frac * (size - 1))
    queries = rng.standard_normal((n_queries, dk))
    got = read(state, torch.from_numpy(queries), k, params)

    expected = _brute_force(
        state.keys[:size].numpy(), state.strength[:size].numpy(), queries, params.eps
    )
    want_scores = -np.sort(-expected, axis=1)[:, :k]
    np.testing.assert_allclose(got.scores.numpy(), want_scores, rtol=1e-9, atol=1e-12)
    idx = got.indices.numpy()
    # Each returned slot really has the returned score (robust to ties), and slots are distinct.
    np.testing.assert_allclose(np.take_along_axis(expected, idx, 1), got.scores.numpy(), atol=1e-12)
    assert all(len(set(row)) == k for row in idx.tolist())
    np.testing.assert_array_equal(got.values.numpy(), state.values.numpy()[idx])


def test_fifo_is_a_ring_buffer():
    params = EpisodicParams(capacity=4, replacement="fifo")
    state = init_state(params, 1, 1)
    for i in range(10):
        x = torch.tensor([[float(i)]])
        state = write(state, x, x, params)
    # The last four writes survive, written round-robin: 8, 9 in slots 0, 1 and 6, 7 in 2, 3.
    assert state.values[:, 0].tolist() == [8.0, 9.0, 6.0, 7.0]
    assert state.stamp.tolist() == [8, 9, 6, 7]
    assert state.count == 10
    assert state.size == 4


@pytest.mark.parametrize("policy", ["fifo", "weakest"])
@pytest.mark.parametrize(("before", "batch"), [(0, 3), (2, 5), (5, 2), (3, 9), (0, 11)])
def test_batch_write_equals_sequential_writes(policy, before, batch):
    # Holds whenever new memories are at least as strong as stored ones (the default strength).
    params = EpisodicParams(capacity=5, replacement=policy, decay_rate=0.1)
    gen = torch.Generator().manual_seed(before * 31 + batch)
    state = init_state(params, 3, 2)
    for _ in range(before):
        state = write(
            state, torch.randn(1, 3, generator=gen), torch.randn(1, 2, generator=gen), params
        )
        state = decay(state, params)
    keys, values = torch.randn(batch, 3, generator=gen), torch.randn(batch, 2, generator=gen)
    batched = write(state, keys, values, params)
    seq = state
    for i in range(batch):
        seq = write(seq, keys[i : i + 1], values[i : i + 1], params)
    for a, b in zip(batched, seq):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:
            assert a == b


def test_weakest_evicts_lowest_strength_then_oldest():
    params = EpisodicParams(capacity=4, replacement="weakest")
    state = init_state(params, 1, 1)
    vals = torch.arange(4.0).view(4, 1)
    state = write(state, vals, vals, params, strength=torch.tensor([0.5, 0.2, 0.9, 0.2]))
    new = torch.tensor([[10.0], [11.0], [12.0]])
    state = write(state, new, new, params, strength=torch.ones(3))
    # Slots 1 and 3 tie at 0.2: slot 1 (written first) goes first, then slot 3, then 0 (0.5).
    assert state.values[:, 0].tolist() == [12.0, 10.0, 2.0, 11.0]
    assert state.strength.tolist() == pytest.approx([1.0, 1.0, 0.9, 1.0])


def test_weakest_keeps_strong_old_memory_that_fifo_evicts():
    for policy, survives in (("fifo", False), ("weakest", True)):
        params = EpisodicParams(capacity=3, replacement=policy)
        state = init_state(params, 1, 1)
        state = write(
            state, torch.ones(1, 1), torch.full((1, 1), 7.0), params, strength=torch.tensor([5.0])
        )
        for i in range(5):
            x = torch.tensor([[float(i)]])
            state = write(state, x, x, params)
        assert (7.0 in state.values[:, 0].tolist()) is survives


def test_decay_closed_form_and_age():
    params = EpisodicParams(capacity=6, decay_rate=0.03)
    state, _, _ = _filled(params, 4)
    state = write(state, torch.ones(0, 5), torch.ones(0, 3), params)  # empty write is a no-op
    for _ in range(7):
        state = decay(state, params)
    state = decay(state, params, steps=3)
    want = np.array([0.97**10] * 4 + [0.0, 0.0])
    np.testing.assert_allclose(state.strength.double().numpy(), want, rtol=1e-6)
    assert state.age.tolist() == [10, 10, 10, 10, 0, 0]
    # A fresh write resets age and strength of its slot only.
    state = write(state, torch.ones(1, 5), torch.ones(1, 3), params)
    assert state.age.tolist() == [10, 10, 10, 10, 0, 0]
    assert state.strength[4] == 1.0
    assert state.stamp.tolist() == [0, 1, 2, 3, 4, -1]


def test_decay_lowers_old_memories_in_the_ranking():
    params = EpisodicParams(capacity=4, decay_rate=0.5)
    state = init_state(params, 2, 1)
    key = torch.tensor([[1.0, 0.0]])
    state = write(state, key, torch.tensor([[1.0]]), params)
    state = decay(state, params)
    # A slightly less similar but fresh memory now wins: 1.0 * 0.5 < cos(30°) * 1.
    state = write(state, torch.tensor([[0.866, 0.5]]), torch.tensor([[2.0]]), params)
    got = read(state, key, 2, params)
    assert got.indices.tolist() == [[1, 0]]
    assert got.scores[0].tolist() == pytest.approx([0.866 / (0.866**2 + 0.25) ** 0.5, 0.5])


def test_read_is_differentiable_in_queries_keys_values():
    params = EpisodicParams(capacity=6)
    state, _, _ = _filled(params, 6)
    state = EpisodicState(
        *(t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in state)
    )
    q = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    keys = state.keys.clone().requires_grad_(True)
    values = state.values.clone().requires_grad_(True)

    def f(q, keys, values):
        got = read(state._replace(keys=keys, values=values), q, 2, params)
        return (got.values * got.scores.unsqueeze(-1)).sum(1)

    assert torch.autograd.gradcheck(f, (q, keys, values))


def test_module_is_stateless_wrapper():
    mem = EpisodicMemory(5, 3, EpisodicParams(capacity=4))
    assert list(mem.parameters()) == []
    assert list(mem.buffers()) == []
    s0 = mem.init_state()
    s1 = mem.write(s0, torch.randn(2, 5), torch.randn(2, 3))
    assert (s0.count, s1.count) == (0, 2)
    assert bool((s0.keys == 0).all())
    q = torch.randn(3, 5)
    got, want = mem(s1, q, 2), read(s1, q, 2, mem.params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert mem.decay(s1).strength[:2].tolist() == pytest.approx([0.99, 0.99])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 2.0}, "capacity"),
        ({"decay_rate": 1.0}, "decay_rate"),
        ({"decay_rate": -0.1}, "decay_rate"),
        ({"replacement": "lru"}, "replacement"),
        ({"initial_strength": 0.0}, "initial_strength"),
        ({"eps": float("nan")}, "eps"),
    ],
)
def test_params_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EpisodicParams(**kwargs)


def test_input_validation_names_the_argument():
    params = EpisodicParams(capacity=4)
    state, _, _ = _filled(params, 3)
    ok_k, ok_v = torch.randn(2, 5), torch.randn(2, 3)
    bad_keys = ok_k.clone()
    bad_keys[0, 1] = float("nan")
    cases = [
        (lambda: write(state, torch.randn(2, 4), ok_v, params), "keys"),
        (lambda: write(state, torch.randn(5), ok_v, params), "keys"),
        (lambda: write(state, bad_keys, ok_v, params), "keys"),
        (lambda: write(state, ok_k, torch.randn(3, 3), params), "values"),
        (lambda: write(state, ok_k, ok_v.fill_(float("inf")), params), "values"),
        (
            lambda: write(state, ok_k, torch.randn(2, 3), params, strength=-torch.ones(2)),
            "strength",
        ),
        (lambda: write(state, ok_k, torch.randn(2, 3), EpisodicParams(capacity=5)), "capacity"),
        (lambda: read(state, torch.randn(2, 4), 1, params), "queries"),
        (lambda: read(state, torch.randn(2, 5), 4, params), "k=4"),
        (lambda: read(state, torch.randn(2, 5), 0, params), "k"),
        (lambda: read(state, torch.randn(2, 5).fill_(float("nan")), 1, params), "queries"),
        (lambda: decay(state, params, steps=-1), "steps"),
        (lambda: init_state(params, 0, 3), "key_dim"),
        (lambda: read(init_state(params, 5, 3), torch.randn(1, 5), 1, params), "k=1"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


def test_chunked_read_equals_one_shot(monkeypatch):
    import neuro_memory.episodic as episodic

    params = EpisodicParams(capacity=10)
    state, _, _ = _filled(params, 9)
    q = torch.randn(13, 5, requires_grad=True)
    whole = read(state, q, 3, params)
    monkeypatch.setattr(episodic, "MAX_SCORES", 20)  # two queries per chunk
    chunked = read(state, q, 3, params)
    # Same slots; scores to float rounding (BLAS may block a smaller matmul differently).
    torch.testing.assert_close(chunked.indices, whole.indices, rtol=0, atol=0)
    torch.testing.assert_close(chunked.values, whole.values, rtol=0, atol=0)
    torch.testing.assert_close(chunked.scores, whole.scores)
    (g1,) = torch.autograd.grad(whole.scores.sum(), q)
    (g2,) = torch.autograd.grad(chunked.scores.sum(), q)
    torch.testing.assert_close(g1, g2)
    empty = read(state, torch.randn(0, 5), 3, params)
    assert empty.values.shape == (0, 3, 3)


class _PythonBank:
    """Independent list-based model of the replacement and decay rules (one memory per slot)."""

    def __init__(self, capacity: int, policy: str, rate: float) -> None:
        self.slots: list[tuple[int, float, float] | None] = [None] * capacity  # stamp, s, value
        self.policy, self.rate, self.count = policy, rate, 0

    def write(self, items: list[tuple[float, float]]) -> None:  # (value, strength)
        n = len(self.slots)
        for lo in range(0, len(items), n):
            chunk = items[lo : lo + n]
            free = [i for i, s in enumerate(self.slots) if s is None]
            if self.policy == "fifo":
                targets = [(self.count + j) % n for j in range(len(chunk))]
            else:
                old = [(s[1], s[0], i) for i, s in enumerate(self.slots) if s is not None]
                targets = (free + [i for _, _, i in sorted(old)])[: len(chunk)]
            for j, (t, (value, strength)) in enumerate(zip(targets, chunk)):
                self.slots[t] = (self.count + j, strength, value)
            self.count += len(chunk)

    def decay(self) -> None:
        self.slots = [
            None if s is None else (s[0], s[1] * (1 - self.rate), s[2]) for s in self.slots
        ]


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 6),
    policy=st.sampled_from(["fifo", "weakest"]),
    ops=st.lists(
        st.one_of(
            st.just("decay"),
            st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0]), min_size=1, max_size=8),
        ),
        max_size=8,
    ),
)
def test_replacement_matches_a_python_model(capacity, policy, ops):
    params = EpisodicParams(capacity=capacity, replacement=policy, decay_rate=0.5)
    model = _PythonBank(capacity, policy, 0.5)
    state = init_state(params, 1, 1, dtype=torch.float64)
    for op in ops:
        if op == "decay":
            model.decay()
            state = decay(state, params)
            continue
        items = [(float(model.count + j), s) for j, s in enumerate(op)]
        model.write(items)
        vals = torch.tensor([[v] for v, _ in items], dtype=torch.float64)
        state = write(state, vals, vals, params, strength=torch.tensor(op, dtype=torch.float64))
    want = [s if s is not None else (-1, 0.0, 0.0) for s in model.slots]
    assert state.stamp.tolist() == [w[0] for w in want]
    assert state.strength.tolist() == pytest.approx([w[1] for w in want])
    assert state.values[:, 0].tolist() == [w[2] for w in want]
    assert state.count == model.count
