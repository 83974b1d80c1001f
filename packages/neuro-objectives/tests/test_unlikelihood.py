import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_objectives import (
    repeated_ngram_mask,
    sequence_unlikelihood_loss,
    token_unlikelihood_loss,
)


def _ref_token_ul(z: torch.Tensor, y: list[list[int]], alpha: float) -> float:
    """Loop over positions: NLL of the target plus α Σ over the *set* of earlier valid targets
    (minus the current one) of −log(1 − p)."""
    logp = z.log_softmax(-1)
    total, count = 0.0, 0
    for b, row in enumerate(y):
        for t, tok in enumerate(row):
            if tok == -100:
                continue
            cands = {s for s in row[:t] if s != -100} - {tok}
            ul = sum(-math.log(max(1 - math.exp(float(logp[b, t, c])), 1e-6)) for c in cands)
            total += -float(logp[b, t, tok]) + alpha * ul
            count += 1
    return total / count


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.sampled_from([0, 1, 2, 3, -100]), min_size=5, max_size=5),
        min_size=1,
        max_size=3,
    ),
    alpha=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 1000),
)
def test_token_ul_matches_a_set_based_loop(rows: list[list[int]], alpha: float, seed: int) -> None:
    if all(x == -100 for r in rows for x in r):
        rows[0][0] = 1
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(rows), 5, 4, generator=g, dtype=torch.float64)
    loss, report = token_unlikelihood_loss(z, torch.tensor(rows), alpha=alpha)
    assert float(loss) == pytest.approx(_ref_token_ul(z, rows, alpha), rel=1e-10)
    assert float(report["ul/token"]) >= 0


def test_token_ul_gradcheck_and_pushes_repeats_down() -> None:
    torch.manual_seed(0)
    z = torch.randn(2, 6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1, 2, 1, 3, 2, 4], [0, 0, 1, 1, 2, 2]])
    assert torch.autograd.gradcheck(lambda x: token_unlikelihood_loss(x, y)[0], (z,))
    (grad,) = torch.autograd.grad(token_unlikelihood_loss(z, y, alpha=1.0)[0], z)
    (grad0,) = torch.autograd.grad(token_unlikelihood_loss(z, y, alpha=0.0)[0], z)
    # at position 3 of row 0 the candidates are {1, 2}: a small step against the UL gradient
    # lowers their total probability there
    ul_grad = (grad - grad0)[0, 3]
    z3 = z.detach()[0, 3]
    before = z3.softmax(-1)[[1, 2]].sum()
    after = (z3 - 1e-3 * ul_grad).softmax(-1)[[1, 2]].sum()
    assert float(after) < float(before)


def test_repeated_ngram_mask_marks_repeats_only() -> None:
    toks = torch.tensor([[1, 2, 3, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]])
    got = repeated_ngram_mask(toks, 2)
    want = torch.tensor([[0, 0, 0, 1, 1, 1, 0], [0] * 7], dtype=torch.bool)
    assert torch.equal(got, want)
    assert not repeated_ngram_mask(toks, 4).any()


def test_sequence_ul_matches_an_explicit_sum() -> None:
    g = torch.Generator().manual_seed(0)
    toks = torch.tensor([[1, 2, 1, 2, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    z = torch.randn(1, 6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    loss, report = sequence_unlikelihood_loss(z, toks, n=2, mask=mask)
    p = z.detach().softmax(-1)
    want = -(math.log(1 - float(p[0, 2, 1])) + math.log(1 - float(p[0, 3, 2]))) / 5
    assert float(loss.detach()) == pytest.approx(want, rel=1e-10)
    assert float(report["ul/repeated_fraction"]) == pytest.approx(2 / 5)
    assert torch.autograd.gradcheck(
        lambda x: sequence_unlikelihood_loss(x, toks, n=2, mask=mask)[0], (z,)
    )


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="targets"):
        token_unlikelihood_loss(torch.randn(1, 3, 4), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        token_unlikelihood_loss(torch.randn(1, 2, 4), torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="alpha"):
        token_unlikelihood_loss(torch.randn(1, 2, 4), torch.tensor([[0, 1]]), alpha=-1)
    with pytest.raises(ValueError, match="tokens"):
        sequence_unlikelihood_loss(torch.randn(1, 2, 4), torch.tensor([[0, 9]]))
    with pytest.raises(ValueError, match="n must"):
        repeated_ngram_mask(torch.tensor([[0, 1]]), 0)
