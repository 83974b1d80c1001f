import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_spiking.surrogates import (
    ATan,
    FastSigmoid,
    MultiBit,
    Rectangular,
    Sigmoid,
    Surrogate,
    Triangle,
    spike,
)

# Each surrogate's derivative is the derivative of a known smooth primitive: compare with autograd.
PRIMITIVES = [
    (ATan(slope=2.0), lambda x: torch.atan(math.pi / 2 * 2.0 * x) / math.pi + 0.5),
    (FastSigmoid(slope=25.0), lambda x: x / (1 + 25.0 * x.abs())),
    (Sigmoid(slope=4.0), lambda x: torch.sigmoid(4.0 * x)),
    (
        Triangle(width=0.5),
        lambda x: torch.where(
            x < 0, 0.5 * (1 + x / 0.5).clamp_min(0) ** 2, 1 - 0.5 * (1 - x / 0.5).clamp_min(0) ** 2
        ),
    ),
    (Rectangular(width=0.5), lambda x: ((x + 0.25) / 0.5).clamp(0, 1)),
]


@pytest.mark.parametrize(("surrogate", "primitive"), PRIMITIVES, ids=lambda v: type(v).__name__)
def test_derivative_is_derivative_of_primitive(surrogate: Surrogate, primitive) -> None:
    # points away from the kinks of the piecewise primitives
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)
    x = x[((x.abs() - 0.25).abs() > 1e-3) & ((x.abs() - 0.5).abs() > 1e-3) & (x != 0)]
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(primitive(xr).sum(), xr)
    torch.testing.assert_close(surrogate.derivative(x), g)


def test_fast_sigmoid_formula() -> None:
    x = torch.tensor([0.0, 0.04, -0.1])
    torch.testing.assert_close(FastSigmoid(slope=25).derivative(x), 1 / (1 + 25 * x.abs()) ** 2)


@pytest.mark.parametrize("surrogate", [ATan(), FastSigmoid(), Sigmoid(), Triangle(), Rectangular()])
def test_spike_forward_is_heaviside_and_backward_is_surrogate(surrogate: Surrogate) -> None:
    x = torch.tensor([-1.0, -0.1, 0.0, 0.3, 2.0], requires_grad=True)
    s = spike(x, surrogate)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    up = torch.tensor([1.0, -2.0, 3.0, 0.5, 1.5])
    (g,) = torch.autograd.grad((s * up).sum(), x)
    torch.testing.assert_close(g, up * surrogate.derivative(x.detach()))


def test_multibit_forward_and_aura_surrogate() -> None:
    mb = MultiBit(levels=3)
    u = torch.tensor([-0.5, 0.2, 1.0, 2.7, 3.5, 9.0])
    assert mb.forward(u).tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 3.0]
    # 1 − 2|u − round(u)| inside [0, L+1]: peaks at integers, zero at half-integers and outside
    d = mb.derivative(torch.tensor([0.0, 0.5, 1.0, 1.25, 4.0, 4.5, -0.25]))
    torch.testing.assert_close(d, torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0]))


def test_bad_parameters_name_the_argument() -> None:
    with pytest.raises(ValueError, match="slope"):
        ATan(slope=0)
    with pytest.raises(ValueError, match="width"):
        Triangle(width=-1)
    with pytest.raises(ValueError, match="levels"):
        MultiBit(levels=0)
    with pytest.raises(ValueError, match="surrogate"):
        spike(torch.zeros(2), "atan")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "surrogate",
    [
        ATan(),
        ATan(slope=3.0),
        FastSigmoid(),
        Sigmoid(),
        Triangle(width=0.5),
        Rectangular(),
        MultiBit(),
    ],
    ids=repr,
)
@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-8, 8, width=32), min_size=1, max_size=64))
def test_in_place_derivative_equals_derivative_bit_for_bit(
    surrogate: Surrogate, values: list[float]
) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    want = surrogate.derivative(x)
    got = surrogate.derivative_(x.clone())
    assert torch.equal(got, want)
