import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_core.dispatch import triton_available
from neuro_core.ops import RMSNorm, rms_norm
from neuro_core.ops.rmsnorm.reference import rms_norm_reference
from neuro_core.testing import assert_backends_match

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not installed")


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 9),
    n=st.integers(1, 70),
    eps=st.sampled_from([1e-6, 1e-5, 1e-2]),
    seed=st.integers(0, 2**16),
)
def test_reference_matches_torch_rmsnorm(rows: int, n: int, eps: float, seed: int) -> None:
    """The spec agrees with an independent implementation, torch.nn.RMSNorm."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=g, dtype=torch.float64) * 3
    w = torch.randn(n, generator=g, dtype=torch.float64)
    peer = torch.nn.RMSNorm(n, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        peer.weight.copy_(w)
    torch.testing.assert_close(rms_norm_reference(x, w, eps), peer(x))


def test_output_has_unit_rms_without_weight() -> None:
    x = torch.randn(4, 33, dtype=torch.float64) * 10 + 3
    y = rms_norm(x, None, eps=1e-12, backend="reference")
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4, dtype=torch.float64))


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", [(3, 7, 60), (1, 1), (5, 129), (2, 63, 33)])
@pytest.mark.parametrize("with_weight", [True, False])
def test_triton_matches_reference(
    dtype: torch.dtype, shape: tuple[int, ...], with_weight: bool
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 2
    w = torch.randn(shape[-1], generator=g) if with_weight else None
    grad = ("x", "weight") if with_weight else ("x",)
    assert_backends_match(
        rms_norm_reference,
        lambda x, weight, eps: rms_norm(x, weight, eps, backend="triton"),
        {"x": x, "weight": w, "eps": 1e-6},
        dtype=dtype,
        grad=grad,
    )


def test_bad_input_names_the_argument() -> None:
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="weight"):
        rms_norm(x, torch.ones(7))
    with pytest.raises(ValueError, match="eps"):
        rms_norm(x, None, eps=0.0)
    with pytest.raises(ValueError, match="x must be floating"):
        rms_norm(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="backend"):
        rms_norm(x, backend="cuda")  # type: ignore[arg-type]


def test_module_uses_weight_and_backend() -> None:
    m = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        m.weight.mul_(2.0)
    x = torch.randn(3, 16)
    torch.testing.assert_close(m(x), 2.0 * rms_norm_reference(x, None, 1e-5))


@pytest.mark.compile
def test_compile_backend_matches_reference() -> None:
    x = torch.randn(4, 24)
    w = torch.randn(24)
    torch.testing.assert_close(rms_norm(x, w, backend="compile"), rms_norm_reference(x, w, 1e-6))
