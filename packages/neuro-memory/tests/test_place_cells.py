"""Place-cell code: numpy reference, exactly k active cells, the k rule, gradients, validation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_memory import PlaceCellEncoder, PlaceCellParams, place_cell_code


def _numpy_code(e, w_p, b_p, w_r, b_r, k, s):
    """Independent float64 reference: argsort for the top k, logistic by hand."""
    z = e @ w_p.T + b_p
    a = np.zeros_like(z)
    flat_z, flat_a = z.reshape(-1, z.shape[-1]), a.reshape(-1, z.shape[-1])
    for row in range(flat_z.shape[0]):
        top = np.argsort(-flat_z[row], kind="stable")[:k]
        flat_a[row, top] = 1.0 / (1.0 + np.exp(-flat_z[row, top]))
    a = flat_a.reshape(z.shape)
    return e + s * (a @ w_r.T + b_r), a


def _weights(d: int, p: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, generator=g, dtype=torch.float64)
        for shape in ((p, d), (p,), (d, p), (d,))
    ]


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 6),
    p=st.integers(1, 40),
    k_frac=st.floats(0.0, 1.0),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    scale=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_code_matches_numpy_and_has_exactly_k_active(d, p, k_frac, lead, scale, seed):
    k = round(k_frac * p)
    w = _weights(d, p, seed)
    e = torch.randn(
        *lead, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    out, act, idx = place_cell_code(e, *w, k=k, residual_scale=scale)
    ref_out, ref_act = _numpy_code(e.numpy(), *(t.numpy() for t in w), k, scale)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(act.numpy(), ref_act, rtol=1e-12, atol=1e-12)
    assert ((act != 0).sum(-1) == k).all()
    assert idx.shape == (*lead, k)
    # the indices are the active cells
    chosen = torch.zeros_like(act, dtype=torch.bool).scatter(-1, idx, True)
    assert torch.equal(chosen, act != 0)


@pytest.mark.parametrize(
    ("n_cells", "sparsity", "ours", "published"),
    [
        (2000, 0.03, 60, 60),
        (256, 0.03, 7, 7),
        (100, 0.29, 29, 28),
        (33, 0.03, 1, 0),
        (20, 0.03, 1, 0),
    ],
)
def test_k_rule(n_cells, sparsity, ours, published):
    # independent: exact decimal arithmetic, floor, at least one
    exact = math.floor(Fraction(str(sparsity)) * n_cells)
    assert max(1, exact) == ours
    assert PlaceCellParams(n_cells=n_cells, sparsity=sparsity).k == ours
    assert PlaceCellParams(n_cells=n_cells, sparsity=sparsity, k_rule="published").k == published


def test_published_k_zero_is_a_constant_shift():
    """With P ≤ 33 the published rule activates no cell: the output is e + 0.1 b_r for every e."""
    enc = PlaceCellEncoder(8, PlaceCellParams(n_cells=20, k_rule="published"))
    x = torch.randn(5, 8)
    out, act, _ = enc(x)
    assert not act.any()
    torch.testing.assert_close(out, x + 0.1 * enc.readout.bias.detach(), rtol=0, atol=1e-7)
    ours = PlaceCellEncoder(8, PlaceCellParams(n_cells=20))
    assert ((ours(x).activity != 0).sum(-1) == 1).all()


def test_default_is_aura_configuration():
    prm = PlaceCellParams()
    assert (prm.n_cells, prm.sparsity, prm.residual_scale, prm.k) == (2000, 0.03, 0.1, 60)


def test_gradcheck_float64():
    d, p, k = 4, 9, 3
    w = [t.requires_grad_() for t in _weights(d, p, 3)]
    e = torch.randn(2, d, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: place_cell_code(a[0], *a[1:], k=k, residual_scale=0.1).output, (e, *w)
    )


def test_only_selected_prototypes_get_gradient():
    enc = PlaceCellEncoder(6, PlaceCellParams(n_cells=50, sparsity=0.1)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    code = enc(x)
    code.output.sum().backward()
    assert enc.prototypes.grad is not None
    selected = torch.zeros(50, dtype=torch.bool)
    selected[code.indices.reshape(-1)] = True
    assert (enc.prototypes.grad[~selected] == 0).all()
    assert (enc.prototypes.grad[selected].abs().sum(-1) > 0).all()


def test_fixed_prototypes_are_buffers():
    enc = PlaceCellEncoder(6, PlaceCellParams(n_cells=30, learnable_prototypes=False))
    names = {n for n, _ in enc.named_parameters()}
    assert names == {"readout.weight", "readout.bias"}
    assert {"prototypes", "bias"} <= {n for n, _ in enc.named_buffers()}
    enc(torch.randn(2, 6)).output.sum().backward()
    assert enc.readout.weight.grad is not None


def test_validation_names_the_argument():
    enc = PlaceCellEncoder(4, PlaceCellParams(n_cells=10))
    with pytest.raises(ValueError, match="x must have shape"):
        enc(torch.randn(2, 5))
    with pytest.raises(ValueError, match="x must be floating"):
        enc(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        enc(torch.full((2, 4), float("nan")))
    w = _weights(4, 10, 0)
    with pytest.raises(ValueError, match="prototypes must have dtype"):
        place_cell_code(torch.randn(2, 4), *w, k=1, residual_scale=0.1)
    w32 = [t.float() for t in w]
    with pytest.raises(ValueError, match="readout must have shape"):
        place_cell_code(
            torch.randn(2, 4), w32[0], w32[1], w32[2].T, w32[3], k=1, residual_scale=0.1
        )
    with pytest.raises(ValueError, match="k must be an int"):
        place_cell_code(torch.randn(2, 4), *w32, k=11, residual_scale=0.1)
    with pytest.raises(ValueError, match="residual_scale"):
        place_cell_code(torch.randn(2, 4), *w32, k=1, residual_scale=float("nan"))
    with pytest.raises(ValueError, match="sparsity"):
        PlaceCellParams(sparsity=0.0)
    with pytest.raises(ValueError, match="n_cells"):
        PlaceCellParams(n_cells=0)
    with pytest.raises(ValueError, match="k_rule"):
        PlaceCellParams(k_rule="round")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        PlaceCellEncoder(0)
