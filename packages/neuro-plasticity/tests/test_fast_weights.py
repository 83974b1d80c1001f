import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_core.dispatch import triton_available
from neuro_core.testing import assert_backends_match
from neuro_plasticity.ops.fast_weights import fast_weights, fast_weights_step

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not installed")

SETTINGS = {"hebbian": (0.6, 0.9), "delta": (0.8, 1.0), "oja": (0.05, 0.97)}


def _inputs(seed: int, b: int, t: int, h: int, dk: int, dv: int, rule: str, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, dk, generator=g, dtype=dtype)
    k = torch.randn(b, t, h, dk, generator=g, dtype=dtype)
    v = torch.randn(b, t, h, dv, generator=g, dtype=dtype)
    if rule == "delta":
        k = F.normalize(k, dim=-1)
    strength = torch.rand(b, t, h, generator=g, dtype=dtype)
    s0 = torch.randn(b, h, dk, dv, generator=g, dtype=dtype) * 0.3
    return q, k, v, strength, s0


def _explicit_loop(q, k, v, rule, lr, decay):
    """An independent per-head, per-token implementation in the issue's [Dv, Dk] convention."""
    b, t, h, dk = q.shape
    out = torch.zeros(b, t, h, v.shape[-1], dtype=q.dtype)
    for bi in range(b):
        for hi in range(h):
            s = torch.zeros(v.shape[-1], dk, dtype=q.dtype)  # S: [Dv, Dk]
            for ti in range(t):
                kt, vt, qt = k[bi, ti, hi], v[bi, ti, hi], q[bi, ti, hi]
                if rule == "hebbian":
                    s = decay * s + lr * torch.outer(vt, kt)
                elif rule == "delta":
                    s = s + lr * torch.outer(vt - s @ kt, kt)
                else:
                    s = (decay - lr * vt[:, None] ** 2) * s + lr * torch.outer(vt, kt)
                out[bi, ti, hi] = s @ qt
    return out


@pytest.mark.parametrize("rule", ["hebbian", "delta", "oja"])
def test_reference_matches_explicit_per_head_loop(rule: str) -> None:
    lr, decay = SETTINGS[rule]
    q, k, v, _, _ = _inputs(0, 2, 9, 2, 4, 3, rule)
    o, _ = fast_weights(q, k, v, rule=rule, lr=lr, decay=decay, backend="reference")
    torch.testing.assert_close(o, _explicit_loop(q, k, v, rule, lr, decay))


def test_hebbian_closed_form_is_decayed_linear_attention() -> None:
    """o_t = η Σ_{j≤t} λ^{t−j} (q_t·k_j) v_j: causal linear attention with a decay mask."""
    q, k, v, _, _ = _inputs(1, 1, 11, 1, 5, 4, "hebbian")
    lr, decay = 0.5, 0.8
    o, _ = fast_weights(q, k, v, lr=lr, decay=decay, backend="reference")
    t = torch.arange(11)
    mask = (t[:, None] >= t[None, :]) * decay ** (t[:, None] - t[None, :]).clamp_min(0).double()
    expected = lr * ((q[0, :, 0] @ k[0, :, 0].T) * mask) @ v[0, :, 0]
    torch.testing.assert_close(o[0, :, 0], expected)


def test_delta_rule_stores_and_retrieves() -> None:
    """With β = 1 and orthonormal keys, writing (k, v) then reading with q = k returns v exactly."""
    keys = torch.eye(4, dtype=torch.float64)[None, :, None, :]
    vals = torch.randn(1, 4, 1, 3, dtype=torch.float64)
    o, s = fast_weights(keys, keys, vals, rule="delta", lr=1.0, backend="reference")
    torch.testing.assert_close(o, vals)
    # overwriting key 0 with a new value replaces, not adds (the point of the delta rule)
    new = torch.randn(1, 1, 1, 3, dtype=torch.float64)
    o2, _ = fast_weights(keys[:, :1], keys[:, :1], new, rule="delta", lr=1.0, initial_state=s)
    torch.testing.assert_close(o2, new)


@settings(max_examples=12, deadline=None)
@given(
    rule=st.sampled_from(["hebbian", "delta", "oja"]),
    t=st.integers(1, 23),
    chunk=st.sampled_from([1, 2, 3, 5, 8, 16, 64]),
    dk=st.integers(1, 6),
    dv=st.integers(1, 5),
    with_state=st.booleans(),
    with_strength=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_recurrent_forward_and_gradients(
    rule: str,
    t: int,
    chunk: int,
    dk: int,
    dv: int,
    with_state: bool,
    with_strength: bool,
    seed: int,
) -> None:
    lr, decay = SETTINGS[rule]
    q, k, v, strength, s0 = _inputs(seed, 2, t, 2, dk, dv, rule)
    inputs = {
        "q": q,
        "k": k,
        "v": v,
        "strength": strength if with_strength else None,
        "initial_state": s0 if with_state else None,
    }
    grad = (
        ("q", "k", "v")
        + (("strength",) if with_strength else ())
        + (("initial_state",) if with_state else ())
    )

    def run(backend: str):
        def f(q, k, v, strength, initial_state):
            return fast_weights(
                q,
                k,
                v,
                rule=rule,
                lr=lr,
                decay=decay,
                strength=strength,
                initial_state=initial_state,
                chunk_size=chunk,
                backend=backend,
            )

        return f

    # fp64 throughout: the comparison is about the algorithm, not rounding
    ref_in = {
        n: (x.clone().requires_grad_(n in grad) if x is not None else None)
        for n, x in inputs.items()
    }
    chk_in = {
        n: (x.clone().requires_grad_(n in grad) if x is not None else None)
        for n, x in inputs.items()
    }
    ro, rs = run("reference")(**ref_in)
    co, cs = run("chunked")(**chk_in)
    torch.testing.assert_close(co, ro)
    torch.testing.assert_close(cs, rs)
    g = torch.Generator().manual_seed(seed + 1)
    up_o, up_s = (
        torch.randn(ro.shape, generator=g, dtype=ro.dtype),
        torch.randn(rs.shape, generator=g, dtype=rs.dtype),
    )
    rg = torch.autograd.grad((ro * up_o).sum() + (rs * up_s).sum(), [ref_in[n] for n in grad])
    cg = torch.autograd.grad((co * up_o).sum() + (cs * up_s).sum(), [chk_in[n] for n in grad])
    for name, a, b in zip(grad, rg, cg):
        torch.testing.assert_close(b, a, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("rule", ["hebbian", "delta", "oja"])
@pytest.mark.parametrize("normalize", ["none", "l2"])
def test_step_by_step_equals_sequence(rule: str, normalize: str) -> None:
    lr, decay = SETTINGS[rule]
    q, k, v, strength, _ = _inputs(5, 2, 10, 3, 4, 5, rule)
    o, s = fast_weights(
        q, k, v, rule=rule, lr=lr, decay=decay, strength=strength, normalize=normalize
    )
    state = None
    outs = []
    for t in range(10):
        ot, state = fast_weights_step(
            q[:, t],
            k[:, t],
            v[:, t],
            state,
            rule=rule,
            lr=lr,
            decay=decay,
            strength=strength[:, t],
            normalize=normalize,
        )
        outs.append(ot)
    torch.testing.assert_close(torch.stack(outs, 1), o)
    torch.testing.assert_close(state.S, s)


@pytest.mark.parametrize("rule", ["hebbian", "delta", "oja"])
def test_state_carry_over_equals_full_sequence(rule: str) -> None:
    lr, decay = SETTINGS[rule]
    q, k, v, _, _ = _inputs(6, 2, 14, 2, 4, 3, rule)
    full, sf = fast_weights(q, k, v, rule=rule, lr=lr, decay=decay, chunk_size=4)
    a, sa = fast_weights(q[:, :6], k[:, :6], v[:, :6], rule=rule, lr=lr, decay=decay, chunk_size=4)
    b, sb = fast_weights(
        q[:, 6:], k[:, 6:], v[:, 6:], rule=rule, lr=lr, decay=decay, initial_state=sa, chunk_size=4
    )
    torch.testing.assert_close(torch.cat([a, b], 1), full)
    torch.testing.assert_close(sb, sf)


def test_causality_and_batch_independence() -> None:
    q, k, v, _, _ = _inputs(7, 3, 12, 2, 4, 4, "hebbian")
    o, _ = fast_weights(q, k, v, decay=0.9, chunk_size=5)
    v2 = v.clone()
    v2[:, 7:] = 100.0
    v2[1] = -3.0
    o2, _ = fast_weights(q, k, v2, decay=0.9, chunk_size=5)
    torch.testing.assert_close(o2[[0, 2], :7], o[[0, 2], :7])


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    ("b", "t", "h", "dk", "dv"), [(2, 37, 2, 20, 24), (1, 16, 1, 16, 16), (1, 5, 2, 8, 70)]
)
@pytest.mark.parametrize("with_state", [False, True])
def test_triton_matches_reference(
    dtype: torch.dtype, b: int, t: int, h: int, dk: int, dv: int, with_state: bool
) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, t, h, d, generator=g) * 0.5 for d in (dk, dk, dv))
    s0 = torch.randn(b, h, dk, dv, generator=g) if with_state else None
    grad = ("q", "k", "v") + (("initial_state",) if with_state else ())

    def make(backend: str):
        def f(q, k, v, initial_state):
            return fast_weights(
                q, k, v, lr=0.7, decay=0.9, initial_state=initial_state, backend=backend
            )

        return f

    assert_backends_match(
        make("reference"),
        make("triton"),
        {"q": q, "k": k, "v": v, "initial_state": s0},
        dtype=dtype,
        grad=grad,
    )


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize(
    ("dtype", "shape"),
    [
        (torch.bfloat16, (1, 19, 2, 16, 16)),  # the kernel upcasts before tl.dot
        (torch.float32, (2, 1, 1, 3, 5)),  # T = 1, tiny head dims
        (torch.float32, (1, 40, 1, 130, 20)),  # Dk above one 128 block
    ],
)
def test_triton_edge_cases(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    b, t, h, dk, dv = shape
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(b, t, h, d, generator=g) * 0.5 for d in (dk, dk, dv))

    def make(backend: str):
        def f(q, k, v):
            return fast_weights(q, k, v, lr=0.7, decay=0.95, backend=backend)

        return f

    assert_backends_match(
        make("reference"),
        make("triton"),
        {"q": q, "k": k, "v": v},
        dtype=dtype,
        grad=("q", "k", "v"),
    )


@pytest.mark.interpreter
@needs_triton
def test_triton_strength_goes_through_autograd() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 9, 2, 16, generator=g) for _ in range(3))
    st_ = torch.rand(1, 9, 2, generator=g)

    def make(backend: str):
        def f(q, k, v, strength):
            return fast_weights(q, k, v, lr=0.3, strength=strength, backend=backend)

        return f

    assert_backends_match(
        make("reference"),
        make("triton"),
        {"q": q, "k": k, "v": v, "strength": st_},
        dtype=torch.float32,
        grad=("q", "k", "v", "strength"),
    )


def test_bad_input_names_the_argument() -> None:
    q = torch.randn(1, 4, 2, 3)
    with pytest.raises(ValueError, match="k must have shape"):
        fast_weights(q, torch.randn(1, 4, 2, 2), q)
    with pytest.raises(ValueError, match="v must have shape"):
        fast_weights(q, q, torch.randn(1, 5, 2, 3))
    with pytest.raises(ValueError, match="decay"):
        fast_weights(q, q, q, decay=1.5)
    with pytest.raises(ValueError, match="decay"):
        fast_weights(q, q, q, decay=0.0)
    with pytest.raises(ValueError, match="decay"):
        fast_weights(q, q, q, rule="delta", decay=0.9)
    with pytest.raises(ValueError, match="lr"):
        fast_weights(q, q, q, lr=-1.0)
    with pytest.raises(ValueError, match="rule"):
        fast_weights(q, q, q, rule="hopfield")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="initial_state"):
        fast_weights(q, q, q, initial_state=torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="strength"):
        fast_weights(q, q, q, strength=torch.ones(1, 4))
    with pytest.raises(ValueError, match="chunk_size"):
        fast_weights(q, q, q, chunk_size=0)
    with pytest.raises(ValueError, match="v: rule='oja'"):
        fast_weights(q, q, q * 10, rule="oja", lr=0.5, decay=0.9)
    with pytest.raises(ValueError, match="backend"):
        fast_weights(q, q, q, backend="cuda")  # type: ignore[arg-type]
