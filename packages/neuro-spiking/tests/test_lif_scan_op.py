"""The fused LIF op (CPU fused/compile backends and Triton kernels) against its reference."""

import math

import pytest
import torch

from neuro_core.dispatch import triton_available
from neuro_core.testing import Tolerance, assert_backends_match
from neuro_spiking import AdaptiveLIFParams, GIFParams, adaptive_lif_scan, gif_scan
from neuro_spiking.ops.alif_scan import fused_alif_scan
from neuro_spiking.ops.gif_scan import fused_gif_scan
from neuro_spiking.ops.lif_scan import fused_lif_scan
from neuro_spiking.surrogates import ATan, FastSigmoid, MultiBit, Rectangular, Sigmoid, Triangle

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not installed")


def away_from_threshold(
    shape: tuple[int, ...],
    seed: int,
    beta: float | torch.Tensor = 0.8,
    v0: torch.Tensor | None = None,
    v_rest: float = 0.0,
    reset: str = "subtract",
    v_reset: float = 0.0,
) -> torch.Tensor:
    """Inputs whose charged membrane stays ≥ 0.02 from the threshold (θ = 1), so that dtype
    rounding cannot flip a spike: built by running the same recursion in float64 and nudging
    near-threshold steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 0.9
    if isinstance(beta, torch.Tensor):
        beta = beta.double()
    v = torch.zeros(shape[1:], dtype=torch.float64) if v0 is None else v0.double()
    for t in range(shape[0]):
        h = v_rest + beta * (v - v_rest) + x[t]
        near = (h - 1.0).abs() < 0.02
        x[t] = torch.where(near, x[t] + 0.05, x[t])
        h = v_rest + beta * (v - v_rest) + x[t]
        s = (h >= 1.0).to(h.dtype)
        v = h - (1.0 - v_reset) * s if reset == "subtract" else torch.where(s > 0, v_reset, h)
    return x.float()


def membrane_args(case: dict) -> dict:
    return {k: case[k] for k in ("v_rest", "reset", "v_reset") if k in case}


def op(backend: str, **fixed):
    def run(x, v0, beta):
        o = fused_lif_scan(x, v0, beta=beta, backend=backend, **fixed)
        return o.spikes, o.membrane, o.v

    return run


CASES = [
    dict(reset="subtract"),
    dict(reset="hard", v_reset=-0.3),
    dict(reset="subtract", detach_reset=True, surrogate=Sigmoid()),
    dict(reset="hard", detach_reset=True, surrogate=Triangle(width=0.5)),
    dict(reset="subtract", v_rest=0.1, surrogate=FastSigmoid(), store_membrane=True),
    dict(reset="subtract", surrogate=Rectangular(), store_membrane=True),
    dict(reset="hard"),
    dict(reset="hard", surrogate=ATan(slope=3.0), store_membrane=True),
]


@pytest.mark.parametrize("backend", ["fused"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("per_neuron_beta", [False, True])
def test_fused_matches_reference(backend: str, case: dict, per_neuron_beta: bool) -> None:
    v0 = torch.rand(3, 7) * 0.5
    beta = torch.linspace(0.7, 0.9, 7) if per_neuron_beta else torch.tensor(0.8)
    x = away_from_threshold((13, 3, 7), seed=1, beta=beta, v0=v0, **membrane_args(case))
    assert_backends_match(
        op("reference", chunk=4, **case),
        op(backend, chunk=4, **case),
        {"x": x, "v0": v0, "beta": beta},
        dtype=torch.float32,
        grad=("x", "v0", "beta"),
    )


def test_fused_spikes_and_membrane_bit_identical_to_reference() -> None:
    x = torch.randn(40, 4, 33) * 0.6 + 0.3
    a = fused_lif_scan(x, beta=0.9, store_membrane=True, backend="reference")
    b = fused_lif_scan(x, beta=0.9, store_membrane=True, backend="fused", chunk=7)
    assert torch.equal(a.spikes, b.spikes)
    assert a.membrane is not None
    assert b.membrane is not None
    assert torch.equal(a.membrane, b.membrane)
    assert a.spikes.sum() > 100


@pytest.mark.compile
@pytest.mark.slow
def test_compile_backend_matches_reference() -> None:
    x = away_from_threshold((4, 2, 5), seed=2)
    case = dict(reset="subtract", store_membrane=True)
    assert_backends_match(
        op("reference", **case),
        op("compile", chunk=4, **case),
        {"x": x, "v0": torch.zeros(2, 5), "beta": torch.tensor(0.8)},
        dtype=torch.float32,
        grad=("x", "v0", "beta"),
    )


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("T", "N"), [(7, 33), (12, 5)])
@pytest.mark.parametrize(
    "case", [CASES[0], CASES[1], CASES[2], CASES[4]], ids=["sub", "hard", "detach", "trace"]
)
def test_triton_matches_reference(dtype: torch.dtype, T: int, N: int, case: dict) -> None:
    v0 = torch.rand(2, N) * 0.3
    beta = torch.linspace(0.7, 0.9, N)
    x = away_from_threshold((T, 2, N), seed=T + N, beta=beta, v0=v0, **membrane_args(case))
    tol = Tolerance(2e-2, 2e-2) if dtype == torch.float16 else None
    assert_backends_match(
        op("reference", **case),
        op("triton", **case),
        {"x": x, "v0": v0, "beta": beta},
        dtype=dtype,
        grad=("x", "v0", "beta"),
        tolerance=tol,
    )


def test_validation_names_the_argument() -> None:
    x = torch.rand(4, 2, 3)
    with pytest.raises(ValueError, match="beta"):
        fused_lif_scan(x, beta=1.5)
    with pytest.raises(ValueError, match="beta"):
        fused_lif_scan(x, beta=torch.ones(4))
    with pytest.raises(ValueError, match="threshold"):
        fused_lif_scan(x, beta=0.9, threshold=0.0, v_reset=0.0)
    with pytest.raises(ValueError, match="v0"):
        fused_lif_scan(x, torch.zeros(2, 4), beta=0.9)
    with pytest.raises(ValueError, match="x must be shaped"):
        fused_lif_scan(torch.rand(4), beta=0.9)
    with pytest.raises(ValueError, match="surrogate"):
        fused_lif_scan(x, beta=0.9, surrogate=MultiBit())
    with pytest.raises(ValueError, match="backend"):
        fused_lif_scan(x, beta=0.9, backend="cuda")
    with pytest.raises(ValueError, match="chunk"):
        fused_lif_scan(x, beta=0.9, chunk=0)


def test_default_surrogate_is_atan() -> None:
    x = away_from_threshold((5, 1, 4), seed=5).requires_grad_()
    a = fused_lif_scan(x, beta=0.8, backend="fused")
    b = fused_lif_scan(x, beta=0.8, backend="reference", surrogate=ATan(slope=2.0))
    (ga,) = torch.autograd.grad(a.spikes.sum(), x)
    (gb,) = torch.autograd.grad(b.spikes.sum(), x)
    torch.testing.assert_close(ga, gb)


def alif(backend: str, **fixed):
    def run(x, v0, a0, beta):
        return fused_alif_scan(
            x, v0, a0, beta=beta, rho=0.9, adapt_increment=0.2, backend=backend, **fixed
        )

    return run


ALIF_CASES = [
    dict(reset="subtract"),
    dict(reset="hard", v_reset=-0.2, surrogate=FastSigmoid()),
    dict(reset="subtract", detach_reset=True, surrogate=Sigmoid()),
]


def alif_inputs(T: int, B: int, N: int, seed: int) -> dict[str, torch.Tensor]:
    """Inputs whose membrane stays ≥ 0.02 from the adaptive threshold (fp16-safe)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, N, generator=g, dtype=torch.float64) * 0.9
    v0 = torch.rand(B, N, generator=g, dtype=torch.float64) * 0.3
    a0 = torch.rand(B, N, generator=g, dtype=torch.float64) * 0.1
    beta = torch.linspace(0.7, 0.9, N, dtype=torch.float64)
    v, a = v0.clone(), a0.clone()
    for t in range(T):
        h = beta * v + x[t]
        x[t] = torch.where((h - 1.0 - a).abs() < 0.02, x[t] + 0.05, x[t])
        h = beta * v + x[t]
        s = (h >= 1.0 + a).double()
        v, a = h - (1.0 + a) * s, 0.9 * a + 0.2 * s
    return {"x": x.float(), "v0": v0.float(), "a0": a0.float(), "beta": beta.float()}


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("T", "N"), [(9, 33), (12, 5)])
@pytest.mark.parametrize("case", ALIF_CASES, ids=["sub", "hard", "detach"])
def test_alif_triton_matches_reference(dtype: torch.dtype, T: int, N: int, case: dict) -> None:
    tol = Tolerance(2e-2, 2e-2) if dtype == torch.float16 else None
    assert_backends_match(
        alif("reference", **case),
        alif("triton", **case),
        alif_inputs(T, 2, N, T * N),
        dtype=dtype,
        grad=("x", "v0", "a0", "beta"),
        tolerance=tol,
    )


@pytest.mark.parametrize(("T", "N"), [(9, 33), (12, 5), (17, 8)])
@pytest.mark.parametrize(
    "case",
    [
        *ALIF_CASES,
        dict(reset="hard"),
        dict(reset="hard", detach_reset=True, surrogate=Triangle(width=0.5)),
        dict(reset="subtract", v_reset=-0.2, v_rest=0.1, surrogate=ATan(slope=3.0)),
    ],
    ids=["sub", "hard", "detach", "hard0", "hard-detach", "sub-rest"],
)
def test_alif_fused_matches_reference(T: int, N: int, case: dict) -> None:
    """The eager CPU backend (default on CPU): outputs and every gradient against the spec."""
    assert_backends_match(
        alif("reference", **case),
        alif("fused", **case),
        alif_inputs(T, 2, N, T * N + 1),
        dtype=torch.float32,
        grad=("x", "v0", "a0", "beta"),
    )


def test_alif_fused_spikes_and_state_bit_identical_to_reference() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 4, 33, generator=g) * 0.6 + 0.3
    for reset in ("subtract", "hard"):
        kw = dict(beta=0.9, rho=0.95, adapt_increment=0.3, reset=reset, v_reset=-0.1)
        ref = fused_alif_scan(x, backend="reference", **kw)
        got = fused_alif_scan(x, backend="fused", **kw)
        assert ref[0].sum() > 100
        for r, o in zip(ref, got):
            assert torch.equal(r, o)
    assert fused_alif_scan(x[:0], beta=0.9, rho=0.5, adapt_increment=0.1)[0].shape == x[:0].shape


def test_alif_op_reference_equals_neuron_scan() -> None:
    p = AdaptiveLIFParams(
        refractory_ms=0.0,
        reset="subtract",
        v_rest=0.0,
        v_reset=0.0,
        v_threshold=1.0,
        tau_adapt_ms=20.0,
    )
    x = torch.rand(30, 3, 4) * 0.6
    s_neuron, st = adaptive_lif_scan(x, None, p)
    rho = 1 - p.dt_ms / p.tau_adapt_ms
    s, v, a = fused_alif_scan(
        x,
        beta=1 - p.dt_ms / p.tau_mem_ms,
        rho=rho,
        adapt_increment=p.adapt_increment,
        backend="reference",
    )
    assert s.sum() > 5
    torch.testing.assert_close(s, s_neuron)
    torch.testing.assert_close(v, st.v)
    torch.testing.assert_close(a, st.a)
    with pytest.raises(ValueError, match="rho"):
        fused_alif_scan(x, beta=0.9, rho=0.0, adapt_increment=0.1)
    with pytest.raises(ValueError, match="a0"):
        fused_alif_scan(x, a0=torch.zeros(2), beta=0.9, rho=0.5, adapt_increment=0.1)


def gif_inputs(
    T: int, B: int, N: int, seed: int, levels: int = 4, clamp: float = 2.0, scale: float = 3.0
) -> dict[str, torch.Tensor]:
    """Inputs keeping v/θ ≥ 0.05 from every integer (no ambiguous floor) and p off the clamp
    bounds, built by running the recursion in float64 and nudging."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N, generator=g, dtype=torch.float64) - 0.2) * scale
    v0 = torch.rand(B, N, generator=g, dtype=torch.float64)
    th0 = 1 + torch.rand(B, N, generator=g, dtype=torch.float64) * 0.2
    v, th = v0.clone(), th0.clone()
    for t in range(T):
        p = 0.9 * v + x[t]
        bound = clamp * levels * th
        u = p / th
        near = ((u - torch.round(u)).abs() < 0.05) | ((p.abs() - bound).abs() < 0.05)
        x[t] = torch.where(near, x[t] + 0.15 * th, x[t])
        p = 0.9 * v + x[t]
        vc = torch.minimum(torch.maximum(p, -bound), bound)
        s = torch.floor(vc / th).clamp(0, levels)
        v = vc - s * th
        th = th + 0.05 * s - 0.05 * (th - 1.0)
    return {"x": x.float(), "v0": v0.float(), "theta0": th0.float()}


def gif(backend: str, clamp: float = 2.0):
    def run(x, v0, theta0):
        return fused_gif_scan(
            x, v0, theta0, beta=0.9, levels=4, adapt_rate=0.05, clamp_factor=clamp, backend=backend
        )

    return run


@pytest.mark.parametrize(("T", "N"), [(9, 33), (12, 5), (17, 8)])
@pytest.mark.parametrize(("clamp", "scale"), [(2.0, 3.0), (0.3, 8.0)], ids=["free", "clamped"])
def test_gif_fused_matches_reference(T: int, N: int, clamp: float, scale: float) -> None:
    """The eager CPU backend (default on CPU): outputs and every gradient against the spec,
    with and without the membrane hitting the ±c·L·θ clamp."""
    inputs = gif_inputs(T, 2, N, T * N + 2, clamp=clamp, scale=scale)
    if clamp < 1:
        p = inputs["x"] + 0.9 * inputs["v0"]  # the first step alone must already clamp
        assert bool((p.abs() > clamp * 4 * inputs["theta0"]).any())
    assert_backends_match(
        gif("reference", clamp),
        gif("fused", clamp),
        inputs,
        dtype=torch.float32,
        grad=("x", "v0", "theta0"),
    )


def test_gif_fused_spikes_and_state_bit_identical_to_reference() -> None:
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(40, 4, 33, generator=g) - 0.3) * 6
    kw = dict(beta=0.9, levels=4, adapt_rate=0.05, clamp_factor=0.5)
    ref = fused_gif_scan(x, backend="reference", **kw)
    got = fused_gif_scan(x, backend="fused", **kw)
    assert ref[0].sum() > 100
    for r, o in zip(ref, got):
        assert torch.equal(r, o)


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("T", "N"), [(9, 33), (12, 5)])
def test_gif_triton_matches_reference(dtype: torch.dtype, T: int, N: int) -> None:
    inputs = gif_inputs(T, 2, N, T + N)
    if dtype == torch.float16:
        # fp16 rounding of x moves v/θ by ~1e-3·L; keep the test to inputs that survive it
        inputs = {k: v.half().float() for k, v in inputs.items()}
    tol = Tolerance(3e-2, 3e-2) if dtype == torch.float16 else None
    assert_backends_match(
        gif("reference"),
        gif("triton"),
        inputs,
        dtype=dtype,
        grad=("x", "v0", "theta0"),
        tolerance=tol,
    )


def test_gif_op_reference_equals_neuron_scan() -> None:
    p = GIFParams(levels=4)
    x = torch.rand(20, 3, 5) * 3
    s_n, st = gif_scan(x, None, p)
    s, v, th = fused_gif_scan(x, beta=math.exp(-1 / 10), levels=4, backend="reference")
    torch.testing.assert_close(s, s_n)
    torch.testing.assert_close(v, st.v)
    torch.testing.assert_close(th, st.theta)
    with pytest.raises(ValueError, match="levels"):
        fused_gif_scan(x, beta=0.9, levels=0)
    with pytest.raises(ValueError, match="theta0"):
        fused_gif_scan(x, theta0=torch.ones(2), beta=0.9)
