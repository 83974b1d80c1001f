"""The CSR builder against an independent dense reference, and the hook protocols."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_core import (
    EventPlasticityHook,
    NeuromodulatorHook,
    PlasticityHook,
    csr_from_edges,
)


@settings(max_examples=60, deadline=None)
@given(
    n_post=st.integers(0, 7),
    n_pre=st.integers(1, 6),
    data=st.data(),
)
def test_csr_from_edges_matches_dense_reference(n_post: int, n_pre: int, data: Any) -> None:
    nnz = data.draw(st.integers(0, 20)) if n_post else 0
    post = data.draw(st.lists(st.integers(0, max(n_post - 1, 0)), min_size=nnz, max_size=nnz))
    pre = data.draw(st.lists(st.integers(0, n_pre - 1), min_size=nnz, max_size=nnz))
    value = torch.arange(1, nnz + 1, dtype=torch.float64)
    crow, col, order = csr_from_edges(
        torch.tensor(post, dtype=torch.long), torch.tensor(pre, dtype=torch.long), n_post
    )
    assert crow.dtype == col.dtype == order.dtype == torch.int64
    assert crow.shape == (n_post + 1,)
    assert col.shape == (nnz,)
    # reference: walk the rows in order, keeping the edges of a row in input order
    expect_crow, expect_col, expect_order = [0], [], []
    for i in range(n_post):
        for e in range(nnz):
            if post[e] == i:
                expect_col.append(pre[e])
                expect_order.append(e)
        expect_crow.append(len(expect_col))
    assert crow.tolist() == expect_crow
    assert col.tolist() == expect_col
    assert order.tolist() == expect_order
    if n_post:
        dense = torch.zeros(n_post, n_pre, dtype=torch.float64)
        dense.index_put_(
            (torch.tensor(post, dtype=torch.long), torch.tensor(pre, dtype=torch.long)),
            value,
            accumulate=True,
        )
        csr = torch.sparse_csr_tensor(crow, col, value[order], size=(n_post, n_pre))
        torch.testing.assert_close(csr.to_dense(), dense, rtol=0, atol=0)


def test_csr_from_edges_validates() -> None:
    p = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="post must lie in"):
        csr_from_edges(torch.tensor([0, 2]), p, 2)
    with pytest.raises(ValueError, match="pre must lie in"):
        csr_from_edges(p, torch.tensor([0, 3]), 2, n_pre=3)
    with pytest.raises(ValueError, match="same length"):
        csr_from_edges(p, torch.tensor([0]), 2)
    with pytest.raises(ValueError, match="post must"):
        csr_from_edges(torch.tensor([0.0, 1.0]), p, 2)
    with pytest.raises(ValueError, match="pre must"):
        csr_from_edges(p, p[None], 2)
    with pytest.raises(ValueError, match="n_post must be an int"):
        csr_from_edges(p, p, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_post must be an int ≥ 0"):
        csr_from_edges(p[:0], p[:0], -1)


def test_protocols_are_structural() -> None:
    class Dense:
        def init(self, weight: torch.Tensor, batch: int = 1) -> None:
            return None

        def __call__(
            self, pre: Any, post: Any, state: Any, weight: Any, modulator: Any = None
        ) -> Any:
            return torch.zeros_like(weight), state

    class Event:
        def init(self, weight: torch.Tensor, batch: int = 1) -> None:
            return None

        def on_spikes(
            self, step: int, pre: Any, post: Any, state: Any, weight: Any, modulator: Any = None
        ) -> Any:
            return pre[:0], weight[:0], state

    class Modulator:
        def init(self, n_neurons: int) -> None:
            return None

        def update(self, step: int, spikes: Any, state: Any, inputs: Any) -> Any:
            return 1.0, state

    assert isinstance(Dense(), PlasticityHook)
    assert not isinstance(Dense(), EventPlasticityHook)
    assert isinstance(Event(), EventPlasticityHook)
    assert not isinstance(Event(), PlasticityHook)
    assert isinstance(Modulator(), NeuromodulatorHook)
    assert not isinstance(object(), PlasticityHook)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    data=st.data(),
)
def test_gather_ranges_concatenates_the_rows_in_order(lengths, data) -> None:
    import numpy as np

    from neuro_core.sparse import gather_ranges

    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.array(
        data.draw(st.lists(st.integers(0, len(lengths) - 1), max_size=6)), dtype=np.int64
    )
    want = [k for r in rows for k in range(ptr[r], ptr[r + 1])]
    got_np = gather_ranges(ptr, rows)
    got_t = gather_ranges(torch.from_numpy(ptr), torch.from_numpy(rows))
    assert isinstance(got_np, np.ndarray)
    assert isinstance(got_t, torch.Tensor)
    assert got_np.tolist() == want
    assert got_t.tolist() == want
