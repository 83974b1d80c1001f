"""The fused op: spec properties, CPU paths vs the spec, bad input."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_attention.ops.modulated_attention import (
    attention_probabilities_reference,
    modulated_attention,
    modulated_attention_blockwise,
    modulated_attention_reference,
)
from neuro_core.dispatch import triton_available
from neuro_core.testing import assert_backends_match

FEATURES = ("query_scale", "key_bias", "pair_gate", "head_gain")


def make_inputs(
    b=2, t=19, h=4, hkv=2, d=12, seed=0, gate_w=5, gain_per_token=True, dtype=torch.float32
):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)

    def r(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=dtype)

    return {
        "q": r(b, t, h, d),
        "k": r(b, t, hkv, d),
        "v": r(b, t, hkv, d),
        "query_scale": torch.rand(b, t, h, generator=g, dtype=dtype) * 1.5 + 0.25,
        "key_bias": r(b, t, hkv),
        "pair_gate": (r(b, t, h) * 2, r(b, t, h) * 2, gate_w),
        "gate_a": r(b, t, h) * 2,
        "gate_b": r(b, t, h) * 2,
        "gate_w": gate_w,
        "head_gain": r(b, t, h) if gain_per_token else r(h),
    }


def select(inputs: dict, features: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    """q, k, v and the chosen features; the pair gate travels as gate_a, gate_b, gate_w."""
    names = {"q", "k", "v", *features} - {"pair_gate"}
    if "pair_gate" in features:
        names |= {"gate_a", "gate_b", "gate_w"}
    return {n: x for n, x in inputs.items() if n in names}


def grads_of(inputs: dict) -> tuple[str, ...]:  # type: ignore[type-arg]
    names = ("q", "k", "v", "query_scale", "key_bias", "head_gain", "gate_a", "gate_b")
    return tuple(n for n in names if n in inputs)


def op(backend: str, causal: bool, window: int | None, entropy: bool, **kw):  # type: ignore[no-untyped-def]
    if "gate_a" in kw:
        kw["pair_gate"] = (kw.pop("gate_a"), kw.pop("gate_b"), kw.pop("gate_w"))
    return modulated_attention(
        **kw, causal=causal, window=window, return_entropy=entropy, backend=backend
    )  # type: ignore[call-overload]


def naive_loop(q, k, v, a=None, b=None, w=None):  # type: ignore[no-untyped-def]
    """Independent loop over queries of the gated spec: p ∝ softmax(s)·σ(a_i + b_j) in the band."""
    bsz, t, h, d = q.shape
    group = h // k.shape[2]
    out = torch.zeros(bsz, t, h, d, dtype=torch.float64)
    for bi in range(bsz):
        for hi in range(h):
            kh, vh = k[bi, :, hi // group].double(), v[bi, :, hi // group].double()
            for i in range(t):
                logits = kh[: i + 1] @ q[bi, i, hi].double() / math.sqrt(d)
                p = torch.softmax(logits, 0)
                if a is not None:
                    for j in range(i + 1):
                        if i - j < w:
                            p[j] = p[j] * torch.sigmoid(
                                a[bi, i, hi].double() + b[bi, j, hi].double()
                            )
                    p = p / p.sum()
                out[bi, i, hi] = p @ vh[: i + 1]
    return out


def test_reference_pair_gate_is_renormalized_probability_gating() -> None:
    """log σ added to the logits == multiply probabilities by σ inside the band, then renormalize;
    pairs with i − j ≥ W are ungated (S = 1), not masked."""
    x = make_inputs(b=1, t=9, h=2, hkv=1, d=5, gate_w=3)
    a, b, w = x["pair_gate"]
    out, _ = modulated_attention_reference(x["q"], x["k"], x["v"], pair_gate=(a, b, w))
    torch.testing.assert_close(
        out.double(), naive_loop(x["q"], x["k"], x["v"], a, b, w), atol=1e-5, rtol=1e-5
    )
    p = attention_probabilities_reference(x["q"], x["k"], pair_gate=(a, b, w))
    assert bool((p[..., 8, :6] > 0).all()), "keys beyond the gate window must stay visible"


def test_features_off_equals_sdpa() -> None:
    x = make_inputs(b=2, t=23, h=6, hkv=3, d=10)
    q, k, v = x["q"], x["k"], x["v"]
    want = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.repeat_interleave(2, 2).transpose(1, 2),
        v.repeat_interleave(2, 2).transpose(1, 2),
        is_causal=True,
    ).transpose(1, 2)
    for backend in ("reference", "blockwise", "sdpa", "auto"):
        torch.testing.assert_close(
            modulated_attention(q, k, v, backend=backend), want, atol=1e-5, rtol=1e-5
        )  # type: ignore[arg-type]


@settings(max_examples=20, deadline=None)
@given(
    t=st.integers(1, 14),
    hkv=st.integers(1, 2),
    group=st.integers(1, 2),
    d=st.integers(1, 9),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(1, 6)),
    seed=st.integers(0, 999),
    scale=st.floats(0.1, 4.0),
)
def test_probabilities_and_entropy_properties(
    t, hkv, group, d, causal, window, seed, scale
) -> None:  # type: ignore[no-untyped-def]
    x = make_inputs(b=2, t=t, h=hkv * group, hkv=hkv, d=d, seed=seed, gate_w=3)
    x["q"] = x["q"] * scale
    kw = dict(
        causal=causal,
        window=window,
        query_scale=x["query_scale"],
        key_bias=x["key_bias"],
        pair_gate=x["pair_gate"],
    )
    p = attention_probabilities_reference(x["q"], x["k"], **kw)  # type: ignore[arg-type]
    torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    visible = torch.ones(t, t, dtype=torch.bool)
    if causal:
        visible &= j <= i
    if window is not None:
        visible &= (i - j).abs() < window
    assert bool((p[..., ~visible] == 0).all())
    _, ent = modulated_attention(
        x["q"], x["k"], x["v"], return_entropy=True, backend="blockwise", **kw
    )  # type: ignore[arg-type]
    bound = visible.sum(-1).double().log().float()  # log(i + 1) for causal attention without window
    assert bool((ent >= -1e-5).all())
    assert bool((ent <= bound[None, :, None] + 1e-5).all())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 999), t=st.integers(1, 12), per_token=st.booleans())
def test_unit_gain_and_unit_precision_are_identities(seed: int, t: int, per_token: bool) -> None:
    x = make_inputs(b=2, t=t, h=4, hkv=2, d=6, seed=seed)
    q, k, v = x["q"], x["k"], x["v"]
    base = modulated_attention(q, k, v, backend="reference")
    ones_gain = torch.ones(2, t, 4) if per_token else torch.ones(4)
    for backend in ("reference", "blockwise", "sdpa"):
        got = modulated_attention(
            q, k, v, query_scale=torch.ones(2, t, 4), head_gain=ones_gain, backend=backend
        )  # type: ignore[arg-type]
        torch.testing.assert_close(got, base, atol=1e-5, rtol=1e-5)


def test_entropy_bound_is_reached_by_uniform_attention() -> None:
    """With q = 0 every visible key is equally likely: entropy = log(i + 1) exactly."""
    x = make_inputs(b=1, t=11, h=2, hkv=2, d=4)
    _, ent = modulated_attention(
        torch.zeros_like(x["q"]), x["k"], x["v"], return_entropy=True, backend="blockwise"
    )
    want = torch.arange(1, 12, dtype=torch.float32).log()[None, :, None].expand(1, 11, 2)
    torch.testing.assert_close(ent, want)


CASES = [
    # (features, causal, window, entropy, gqa)
    ((), True, None, True, True),
    (("query_scale",), True, None, False, False),
    (("key_bias",), True, 4, True, True),
    (("pair_gate",), True, None, True, False),
    (("pair_gate",), False, 6, False, True),
    (("head_gain",), False, None, True, True),
    (("query_scale", "head_gain"), True, 3, False, True),
    (("key_bias", "pair_gate"), False, None, True, False),
    (FEATURES, True, None, True, True),
    (FEATURES, True, 5, True, False),
    (FEATURES, False, 7, True, True),
    (FEATURES, False, None, False, True),
]


@pytest.mark.parametrize(("features", "causal", "window", "entropy", "gqa"), CASES)
@pytest.mark.parametrize("block", [4, 128])
def test_blockwise_matches_reference(features, causal, window, entropy, gqa, block) -> None:  # type: ignore[no-untyped-def]
    x = select(
        make_inputs(t=21, h=4, hkv=2 if gqa else 4, d=11, gain_per_token=block == 4), features
    )

    def blockwise(**kw):  # type: ignore[no-untyped-def]
        if "gate_a" in kw:
            kw["pair_gate"] = (kw.pop("gate_a"), kw.pop("gate_b"), kw.pop("gate_w"))
        out, ent = modulated_attention_blockwise(
            **kw, causal=causal, window=window, return_entropy=entropy, block=block
        )
        return (out, ent) if entropy else out

    assert_backends_match(
        partial(op, "reference", causal, window, entropy),
        blockwise,
        x,
        dtype=torch.float32,
        grad=grads_of(x),
    )


def test_sdpa_backend_matches_reference_with_precision_and_gain() -> None:
    x = select(make_inputs(t=15, h=4, hkv=1), ("query_scale", "head_gain"))
    assert_backends_match(
        partial(op, "reference", True, None, False),
        partial(op, "sdpa", True, None, False),
        x,
        dtype=torch.float32,
        grad=grads_of(x),
    )


def test_sdpa_backend_refuses_features_it_cannot_compute() -> None:
    x = make_inputs()
    with pytest.raises(ValueError, match="sdpa"):
        modulated_attention(x["q"], x["k"], x["v"], key_bias=x["key_bias"], backend="sdpa")


def test_bad_input_names_the_argument() -> None:
    x = make_inputs()
    q, k, v = x["q"], x["k"], x["v"]
    with pytest.raises(ValueError, match=r"^k"):
        modulated_attention(q, k[:, :-1], v)
    with pytest.raises(ValueError, match=r"^v"):
        modulated_attention(q, k, v[..., :-1])
    with pytest.raises(ValueError, match=r"^k"):
        modulated_attention(q, k.double(), v)
    with pytest.raises(ValueError, match="divisible"):
        modulated_attention(q[:, :, :3], k, v)
    with pytest.raises(ValueError, match="window"):
        modulated_attention(q, k, v, window=0)
    with pytest.raises(ValueError, match="pair_gate window W"):
        modulated_attention(q, k, v, pair_gate=(x["pair_gate"][0], x["pair_gate"][1], 0))
    with pytest.raises(ValueError, match="query_scale"):
        modulated_attention(q, k, v, query_scale=x["query_scale"][:, :, :2])
    with pytest.raises(ValueError, match="query_scale"):
        modulated_attention(q, k, v, query_scale=x["query_scale"].double())
    bad = x["key_bias"].clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="key_bias"):
        modulated_attention(q, k, v, key_bias=bad)
    inf = x["pair_gate"][1].clone()
    inf[1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="pair_gate b"):
        modulated_attention(q, k, v, pair_gate=(x["pair_gate"][0], inf, 3))
    with pytest.raises(ValueError, match="head_gain"):
        modulated_attention(q, k, v, head_gain=torch.ones(3))
    with pytest.raises(ValueError, match="backend"):
        modulated_attention(q, k, v, backend="cuda")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="on meta"):
        modulated_attention(q, k, v, key_bias=x["key_bias"].to("meta"))


needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not installed")

# Pairwise covering of the feature flags (each feature on and off with each mask mode, GQA, entropy,
# both dtypes) instead of the full product: the interpreter costs seconds per case.
TRITON_CASES = [
    # (features, causal, window, entropy, gqa, dtype, t, d)
    ((), True, None, False, True, torch.float32, 17, 16),
    ((), False, None, True, False, torch.float16, 23, 24),
    (FEATURES, True, None, True, True, torch.float32, 33, 11),
    (FEATURES, True, None, True, True, torch.float16, 19, 16),
    (FEATURES, False, 7, True, False, torch.float32, 21, 13),
    (FEATURES, True, 5, False, True, torch.float16, 29, 24),
    (("query_scale", "head_gain"), True, None, False, True, torch.float32, 18, 20),
    (("key_bias",), False, None, True, True, torch.float32, 17, 16),
    (("pair_gate",), True, 9, True, False, torch.float32, 40, 17),
    (("key_bias", "pair_gate"), False, 4, False, True, torch.float16, 25, 16),
]


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize(
    ("features", "causal", "window", "entropy", "gqa", "dtype", "t", "d"), TRITON_CASES
)
def test_triton_matches_reference(features, causal, window, entropy, gqa, dtype, t, d) -> None:  # type: ignore[no-untyped-def]
    x = select(make_inputs(b=1, t=t, h=4 if gqa else 2, hkv=2, d=d, gate_w=6), features)
    assert_backends_match(
        partial(op, "reference", causal, window, entropy),
        partial(op, "triton", causal, window, entropy),
        x,
        dtype=dtype,
        grad=grads_of(x),
    )


# --- double backward ------------------------------------------------------------------------------


def _gradient_penalty_grads(backend: str, x: dict, window: int | None) -> tuple[torch.Tensor, ...]:  # type: ignore[type-arg]
    """∂/∂inputs of the gradient penalty Σ‖∂L/∂input‖², L = ⟨out, r⟩ + ⟨entropy, r_e⟩."""
    leaves = {n: x[n].detach().clone().requires_grad_(True) for n in grads_of(x)}
    kw = {n: leaves.get(n, x[n]) for n in x}
    out, ent = op(backend, True, window, True, **kw)
    g = torch.Generator().manual_seed(5)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + (
        ent * torch.randn(ent.shape, generator=g, dtype=ent.dtype)
    ).sum()
    first = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
    penalty = sum(f.pow(2).sum() for f in first)
    return torch.autograd.grad(penalty, list(leaves.values()))  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [None, 6])
def test_blockwise_double_backward_matches_reference(window: int | None) -> None:
    """Second derivatives (gradient penalty) through the blockwise path with key bias, pair gate,
    window and entropy equal those of the materialized spec, in float64 inputs (the blockwise
    first-order pass computes in fp32, hence the fp32-level tolerance; the error it replaces was
    O(10) on values O(100))."""
    x = make_inputs(b=1, t=13, h=4, hkv=2, d=6, dtype=torch.float64, gate_w=4)
    x = select(x, FEATURES)
    want = _gradient_penalty_grads("reference", x, window)
    got = _gradient_penalty_grads("blockwise", x, window)
    for name, a, b in zip(grads_of(x), got, want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


def test_blockwise_hessian_vector_product_matches_reference() -> None:
    x = select(make_inputs(b=2, t=9, h=2, hkv=1, d=5, dtype=torch.float64), ("key_bias",))
    q0 = x["q"]
    u = torch.randn(q0.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def hvp(backend: str) -> torch.Tensor:
        q = q0.clone().requires_grad_(True)
        out = op(backend, True, None, False, **{**x, "q": q})
        (g,) = torch.autograd.grad(out.pow(2).sum(), q, create_graph=True)
        (hv,) = torch.autograd.grad((g * u).sum(), q)
        return hv

    torch.testing.assert_close(hvp("blockwise"), hvp("reference"), atol=1e-5, rtol=1e-4)


@pytest.mark.interpreter
@needs_triton
def test_triton_double_backward_matches_reference() -> None:
    x = select(make_inputs(b=1, t=9, h=2, hkv=1, d=4, gate_w=3), FEATURES)
    want = _gradient_penalty_grads("reference", x, 5)
    got = _gradient_penalty_grads("triton", x, 5)
    for name, a, b in zip(grads_of(x), got, want):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")


# --- decoding (T_q < T_k) and key padding ---------------------------------------------------------

DECODE_CASES = [
    # (backend, features, causal, window, entropy)
    ("reference", FEATURES, True, None, True),
    ("reference", FEATURES, True, 4, True),
    ("blockwise", FEATURES, True, None, True),
    ("blockwise", FEATURES, True, 5, False),
    ("blockwise", ("key_bias", "pair_gate"), True, 6, True),
    ("sdpa", ("query_scale", "head_gain"), True, None, False),
    ("sdpa", (), True, None, False),
    ("auto", ("query_scale", "key_bias", "head_gain"), True, None, False),
]


def _slice(x: dict, q_rows: slice, k_len: int) -> dict:  # type: ignore[type-arg]
    """Inputs of a decode step: per-query tensors at ``q_rows``, per-key tensors up to k_len."""
    out = dict(x)
    out["q"] = x["q"][:, q_rows]
    for n in ("k", "v", "key_bias", "gate_b"):
        if n in x:
            out[n] = x[n][:, :k_len]
    for n in ("query_scale", "gate_a"):
        if n in x:
            out[n] = x[n][:, q_rows]
    if "head_gain" in x and x["head_gain"].ndim == 3:
        out["head_gain"] = x["head_gain"][:, q_rows]
    return out


@pytest.mark.parametrize(("backend", "features", "causal", "window", "entropy"), DECODE_CASES)
def test_decode_equals_full_recomputation(backend, features, causal, window, entropy) -> None:  # type: ignore[no-untyped-def]
    """All T positions at once == a prefix of 7, then one token at a time with the growing K/V
    (and a 3-token chunk), on GQA with every feature of the case."""
    t = 15
    x = select(make_inputs(b=2, t=t, h=4, hkv=2, d=6, gate_w=4), features)
    run = partial(op, backend, causal, window, entropy)
    full = run(**x)
    steps = [run(**_slice(x, slice(0, 7), 7))]
    steps.append(run(**_slice(x, slice(7, 10), 10)))
    steps += [run(**_slice(x, slice(i, i + 1), i + 1)) for i in range(10, t)]
    if entropy:
        got = tuple(torch.cat([s[n] for s in steps], 1) for n in range(2))
        torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("backend", "causal", "window"),
    [
        ("blockwise", True, None),
        ("blockwise", False, 3),
        ("blockwise", False, None),
        ("sdpa", True, None),
    ],
)
def test_decode_step_matches_reference_with_gradients(backend: str, causal: bool, window) -> None:  # type: ignore[no-untyped-def]
    """The last 4 queries against 17 keys with padding (also non-causal: the queries still sit at
    positions 13–16 for the window and the pair gate), values and all gradients."""
    feats = FEATURES if backend == "blockwise" else ("query_scale", "head_gain")
    x = _slice(select(make_inputs(b=2, t=17, h=6, hkv=3, d=5), feats), slice(13, 17), 17)
    # padded keys, among them a query's own position (13), which it still sees
    x["key_padding_mask"] = torch.ones(2, 17, dtype=torch.bool)
    x["key_padding_mask"][1, [0, 1, 2, 5, 13, 15]] = False
    entropy = backend == "blockwise"
    assert_backends_match(
        partial(op, "reference", causal, window, entropy),
        partial(op, backend, causal, window, entropy),
        x,
        dtype=torch.float32,
        grad=grads_of(x),
    )


def _left_pad(x: torch.Tensor, pad: int, fill: float) -> torch.Tensor:
    return torch.cat([torch.full_like(x[:, :pad], fill), x], 1)


@pytest.mark.parametrize("backend", ["reference", "blockwise", "sdpa"])
def test_key_padding_equals_the_unpadded_sequence(backend: str) -> None:
    """Both items are left-padded by 3 positions of garbage: the real positions give exactly the
    outputs of the unpadded sequence, padded queries see only themselves (out = g·v_self); also
    while decoding the last 2 positions."""
    feats = ("query_scale", "head_gain") if backend == "sdpa" else ("query_scale", "key_bias")
    x = select(make_inputs(b=2, t=9, h=4, hkv=2, d=5), feats)
    pad = 3
    padded = {n: _left_pad(x[n], pad, 7.0) for n in x}
    mask = torch.ones(2, 9 + pad, dtype=torch.bool)
    mask[:, :pad] = False
    run = partial(op, backend, True, None, False)
    want = run(**x)
    got = run(**padded, key_padding_mask=mask)
    torch.testing.assert_close(got[:, pad:], want, atol=1e-5, rtol=1e-5)
    gain = padded.get("head_gain", torch.ones(1))
    v_self = padded["v"][:, :pad].repeat_interleave(2, 2) * (
        gain[:, :pad, :, None] if gain.ndim == 3 else 1.0
    )
    torch.testing.assert_close(got[:, :pad], v_self, atol=1e-5, rtol=1e-5)
    step = run(**_slice(padded, slice(9 + pad - 2, 9 + pad), 9 + pad), key_padding_mask=mask)
    torch.testing.assert_close(step, want[:, -2:], atol=1e-5, rtol=1e-5)


def test_decode_and_padding_bad_input() -> None:
    x = make_inputs(b=2, t=6)
    q, k, v = x["q"], x["k"], x["v"]
    with pytest.raises(ValueError, match=r"^k: the number of keys"):
        modulated_attention(q, k[:, :4], v[:, :4])
    with pytest.raises(ValueError, match="key_padding_mask"):
        modulated_attention(q, k, v, key_padding_mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="key_padding_mask"):
        modulated_attention(q, k, v, key_padding_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_bias"):
        modulated_attention(q[:, 2:], k, v, key_bias=x["key_bias"][:, 2:])
    with pytest.raises(ValueError, match="query_scale"):
        modulated_attention(q[:, 2:], k, v, query_scale=x["query_scale"])


TRITON_DECODE_CASES = [
    # (features, causal, window, entropy, t_q, t_k, padded, dtype)
    (FEATURES, True, None, True, 5, 37, True, torch.float32),
    (FEATURES, True, 9, True, 1, 40, False, torch.float32),
    (("key_bias", "pair_gate"), False, 7, True, 18, 35, True, torch.float32),
    (("query_scale", "head_gain"), True, None, False, 20, 20, True, torch.float16),
    ((), False, None, False, 3, 33, False, torch.float32),
]


@pytest.mark.interpreter
@needs_triton
@pytest.mark.parametrize(
    ("features", "causal", "window", "entropy", "t_q", "t_k", "padded", "dtype"),
    TRITON_DECODE_CASES,
)
def test_triton_decode_and_padding_match_reference(  # type: ignore[no-untyped-def]
    features, causal, window, entropy, t_q, t_k, padded, dtype
) -> None:
    """The kernels with T_q < T_k (queries are the last T_q positions, several key blocks) and
    a key padding mask that also pads some queries' own positions: outputs and all gradients."""
    x = _slice(
        select(make_inputs(b=2, t=t_k, h=4, hkv=2, d=16, gate_w=6), features),
        slice(t_k - t_q, t_k),
        t_k,
    )
    if padded:
        mask = torch.ones(2, t_k, dtype=torch.bool)
        mask[0, :7] = False
        mask[1, [3, 17, t_k - 2]] = False
        x["key_padding_mask"] = mask
    assert_backends_match(
        partial(op, "reference", causal, window, entropy),
        partial(op, "triton", causal, window, entropy),
        x,
        dtype=dtype,
        grad=grads_of(x),
    )


# --- 64-bit offsets -------------------------------------------------------------------------------


def test_triton_offsets_switch_to_int64_past_int32() -> None:
    """The size rule: B·T·H·D = 2³¹ needs 64-bit offsets, a small case does not (meta tensors)."""
    pytest.importorskip("triton")
    from neuro_attention.ops.modulated_attention.triton import needs_int64

    small = torch.empty(2, 2048, 8, 64, device="meta")
    assert not needs_int64(small)
    # 2¹⁴ batch items of 2048 × 1 × 64: the last ones start past 2³¹ − 1
    assert needs_int64(torch.empty(2**14, 2048, 1, 64, device="meta"))
    # one batch item with T·H·D = 2³¹ also overflows through the time stride
    assert needs_int64(torch.empty(1, 2**20, 32, 64, device="meta"))
    # a strided view of a large buffer is judged by its strides, not its element count
    strided = torch.empty(4, 8, 2, 64, device="meta").as_strided((4, 8, 2, 64), (2**30, 128, 64, 1))
    assert needs_int64(strided)


def _offset_probe():  # type: ignore[no-untyped-def]
    """A kernel storing ``(p0·3 + p1)·stride`` with the program ids of ``_program_ids``."""
    import triton
    import triton.language as tl

    from neuro_attention.ops.modulated_attention.triton import _program_ids

    def probe(out, stride, INT64: tl.constexpr):  # type: ignore[no-untyped-def]
        p0, p1 = _program_ids(INT64)
        tl.store(out + p0 * 3 + p1, (p0 * 3 + p1) * stride)

    # Triton resolves globals of the function: give it the helper and tl explicitly
    probe.__globals__.update(_program_ids=_program_ids, tl=tl)
    return triton.jit(probe)


@pytest.mark.interpreter
@needs_triton
def test_triton_program_ids_give_64_bit_offsets() -> None:
    """The kernels take their program ids from ``_program_ids`` (checked in their source, or in
    that of ``_query_program`` which the query-block kernels call); with
    INT64 its ids make ``pid · stride`` exact past 2³¹, without it the product wraps in int32.
    Run in the interpreter on a grid of 4 × 3 programs and a stride of 2³⁰ − 1."""
    import inspect

    from neuro_attention.ops.modulated_attention import triton as mod

    # directly, or through _query_program, which takes them from _program_ids
    helper = inspect.getsource(mod._query_program.fn)
    assert "tl.program_id" not in helper
    assert "_program_ids(INT64)" in helper
    for kernel in (mod._fwd_kernel, mod._bwd_dkdv_kernel, mod._bwd_dq_kernel):
        src = inspect.getsource(kernel.fn)
        assert "tl.program_id" not in src
        assert "_program_ids(INT64)" in src or "_query_program(" in src
    probe = _offset_probe()
    stride = 2**30 - 1
    want = torch.arange(12, dtype=torch.int64) * stride
    got = torch.zeros(12, dtype=torch.int64)
    probe[(4, 3)](got, stride, INT64=True)
    torch.testing.assert_close(got, want)
    wrapped = torch.zeros(12, dtype=torch.int64)
    probe[(4, 3)](wrapped, stride, INT64=False)
    assert not torch.equal(wrapped, want)


@pytest.mark.interpreter
@needs_triton
def test_triton_with_64_bit_offsets_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels forced onto the int64 path still match the spec (forward and gradients)."""
    from neuro_attention.ops.modulated_attention import triton as mod

    monkeypatch.setattr(mod, "needs_int64", lambda *tensors: True)
    x = select(make_inputs(b=2, t=19, h=4, hkv=2, d=16, gate_w=5), FEATURES)
    assert_backends_match(
        partial(op, "reference", True, 7, True),
        partial(op, "triton", True, 7, True),
        x,
        dtype=torch.float32,
        grad=grads_of(x),
    )
