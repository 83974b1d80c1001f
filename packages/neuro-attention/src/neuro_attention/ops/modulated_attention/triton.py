"""Flash-style modulated attention in Triton: online softmax forward and a two-kernel backward.

Never materializes ``[B, H, T, T]``: the forward keeps per row the running max m, the running sum
l, the output accumulator and (for the entropy) the running Σ exp(s − m)·s, and saves only the
row log-sum-exp lse and entropy H. The backward recomputes p = exp(s − lse) block by block:

    dS_ij = p_ij · (dP_ij − C_i − dH_i · log p_ij),   C_i = dO_i·o_i + dH_i·H_i

one kernel per key block accumulates dK, dV, the key-bias gradient (summed over the query heads
of its group) and the pair-gate ``b`` gradient; one kernel per query block accumulates dQ, dβ and
the pair-gate ``a`` gradient, so no atomics are needed and results are deterministic.
Under ``create_graph=True`` the backward differentiates the materialized spec instead, so double
backward is exact (at the spec's memory).
Decoding: query row m sits at absolute position ``m + T_k − T_q``; an optional key padding mask
removes padded keys except a query's own position.
The head gain multiplies the output outside the kernel (one elementwise op, autograd handles it).
Triton is imported when this module is imported, which the dispatcher does lazily.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from neuro_attention.ops.modulated_attention.reference import reference_vjp
from neuro_core.dispatch import interpreting


@triton.jit
def _program_ids(INT64: tl.constexpr):
    """``(program_id(0), program_id(1))``, as int64 when element offsets can reach 2³¹.

    Every pointer offset in the kernels is built from these ids (and from row/column ranges
    derived from them), so with ``INT64`` all offset products are 64-bit: ``b·stride_b`` and
    ``(b·T + t)·H·D`` overflow int32 once B·T·H·D ≥ 2³¹.
    """
    p0 = tl.program_id(0)
    p1 = tl.program_id(1)
    if INT64:
        p0 = p0.to(tl.int64)
        p1 = p1.to(tl.int64)
    return p0, p1


@triton.jit
def _key_range(
    start_m,
    TK,
    OFF,
    WINDOW,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
):
    """Key range [lo, hi) visible to the query rows at absolute positions start_m + OFF + …"""
    a = start_m + OFF
    lo = 0
    hi = TK
    if CAUSAL:
        hi = tl.minimum(TK, a + BLOCK_M)
    if HAS_WINDOW:
        lo = tl.maximum(0, a - WINDOW + 1)
        lo = (lo // BLOCK_N) * BLOCK_N
        if not CAUSAL:
            hi = tl.minimum(TK, a + BLOCK_M + WINDOW - 1)
    return lo, hi


@triton.jit
def _query_range(
    start_n,
    T,
    OFF,
    WINDOW,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
):
    """Query rows [lo, hi) that can see the keys start_n … start_n + BLOCK_N − 1."""
    lo = 0
    hi = T
    if CAUSAL:
        # query row m sees key j when m + OFF ≥ j
        lo = (tl.maximum(0, start_n - OFF) // BLOCK_M) * BLOCK_M
    if HAS_WINDOW:
        hi = tl.maximum(0, tl.minimum(T, start_n + BLOCK_N + WINDOW - 1 - OFF))
        if not CAUSAL:
            lo = (tl.maximum(0, start_n - WINDOW + 1 - OFF) // BLOCK_M) * BLOCK_M
    return lo, hi


@triton.jit
def _query_block(
    q_ptr,
    QS,
    GA,
    row,
    offs_m,
    offs_d,
    m_ok,
    d_ok,
    sqt,
    sm_scale,
    HAS_QS: tl.constexpr,
    HAS_GATE: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """The query tile ``[BLOCK_M, BLOCK_D]`` at rows ``offs_m`` of one (batch, head), its logit
    scale ``sm_scale·β`` and the pair gate's ``a`` (0 without a gate); ``row`` indexes
    ``[B, T, H]``."""
    q = tl.load(
        q_ptr + offs_m[:, None] * sqt + offs_d[None, :],
        mask=m_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    qs = tl.full([BLOCK_M], sm_scale, tl.float32)
    if HAS_QS:
        qs = qs * tl.load(QS + row, mask=m_ok, other=1.0).to(tl.float32)
    ga = tl.zeros([BLOCK_M], tl.float32)
    if HAS_GATE:
        ga = tl.load(GA + row, mask=m_ok, other=0.0).to(tl.float32)
    return q, qs, ga


@triton.jit
def _key_block(
    k_ptr,
    v_ptr,
    kb_ptr,
    pad_ptr,
    offs_n,
    offs_d,
    n_ok,
    d_ok,
    skt,
    svt,
    HKV,
    HAS_KB: tl.constexpr,
    HAS_PAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Key and value tiles at keys ``offs_n`` of one (batch, kv head), the key bias (0 without
    one) and ``kp``, True for real (unpadded) keys."""
    nd_ok = n_ok[:, None] & d_ok[None, :]
    k = tl.load(k_ptr + offs_n[:, None] * skt + offs_d[None, :], mask=nd_ok, other=0.0)
    v = tl.load(v_ptr + offs_n[:, None] * svt + offs_d[None, :], mask=nd_ok, other=0.0)
    kb = tl.zeros([BLOCK_N], tl.float32)
    if HAS_KB:
        kb = tl.load(kb_ptr + offs_n * HKV, mask=n_ok, other=0.0).to(tl.float32)
    kp = n_ok
    if HAS_PAD:
        kp = tl.load(pad_ptr + offs_n, mask=n_ok, other=0) != 0
    return k, v, kb, kp


@triton.jit
def _gate_b(gb_ptr, offs_n, n_ok, H, HAS_GATE: tl.constexpr, BLOCK_N: tl.constexpr):
    """The pair gate's ``b`` at keys ``offs_n`` of one (batch, head), 0 without a gate."""
    gb = tl.zeros([BLOCK_N], tl.float32)
    if HAS_GATE:
        gb = tl.load(gb_ptr + offs_n * H, mask=n_ok, other=0.0).to(tl.float32)
    return gb


@triton.jit
def _logits(
    q,
    k,
    qs,
    kb,
    ga,
    gb,
    offs_m,
    offs_n,
    m_ok,
    n_ok,
    kp,
    OFF,
    WINDOW,
    GATE_W,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_KB: tl.constexpr,
    HAS_GATE: tl.constexpr,
    HAS_PAD: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Logits of a [BLOCK_M, BLOCK_N] tile, the visibility mask, and the gate's σ(−x) (or 0).

    Query row m sits at absolute position ``m + OFF``; ``kp`` is True for real (unpadded) keys.
    """
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qs[:, None]
    if HAS_KB:
        s += kb[None, :]
    rel = offs_m[:, None] + OFF - offs_n[None, :]
    sig_neg = tl.zeros_like(s)
    if HAS_GATE:
        x = ga[:, None] + gb[None, :]
        band = (rel < GATE_W) & (rel > -GATE_W)
        # log σ(x) = min(x, 0) − log(1 + e^{−|x|}), stable for both signs
        s += tl.where(band, tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x))), 0.0)
        sig_neg = tl.where(band, 1.0 / (1.0 + tl.exp(x)), 0.0)
    valid = m_ok[:, None] & n_ok[None, :]
    if CAUSAL:
        valid = valid & (rel >= 0)
    if HAS_WINDOW:
        valid = valid & (rel < WINDOW) & (rel > -WINDOW)
    if HAS_PAD:
        # a query always sees its own position
        valid = valid & (kp[None, :] | (rel == 0))
    return s, valid, sig_neg


@triton.jit
def _row_stats(LSE, CORR, DENT, row, m_ok, HAS_ENT: tl.constexpr, BLOCK_M: tl.constexpr):
    """Saved log-sum-exp, ``C = dO·o + dH·H`` and the entropy gradient dH (0 without one)."""
    lse = tl.load(LSE + row, mask=m_ok, other=0.0)
    corr = tl.load(CORR + row, mask=m_ok, other=0.0)
    dent = tl.zeros([BLOCK_M], tl.float32)
    if HAS_ENT:
        dent = tl.load(DENT + row, mask=m_ok, other=0.0)
    return lse, corr, dent


@triton.jit
def _score_grad(s, valid, lse, corr, dent, do, v, HAS_ENT: tl.constexpr, PRECISION: tl.constexpr):
    """``p = exp(s − lse)`` on visible pairs and the logit gradient
    ``dS = p · (dO·vᵀ − C − dH · log p)`` of the module docstring."""
    logp = tl.where(valid, s - lse[:, None], 0.0)
    p = tl.where(valid, tl.exp(logp), 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION).to(tl.float32)
    ds = p * (dp - corr[:, None])
    if HAS_ENT:
        ds -= dent[:, None] * p * logp
    return p, ds


@triton.jit
def _query_program(
    Q,
    K,
    V,
    QS,
    KB,
    GA,
    GB,
    PAD,
    sqb,
    sqt,
    sqh,
    skb,
    skh,
    svb,
    svh,
    T,
    TK,
    H,
    HKV,
    D,
    sm_scale,
    HAS_QS: tl.constexpr,
    HAS_GATE: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """A program over (query block, batch·head): its rows and their ``[B, T, H]`` index, the
    query block (:func:`_query_block`) and the (batch, kv head) base pointers of k, v, the key
    bias, the gate's b and the padding mask."""
    pid_m, pid_bh = _program_ids(INT64)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // (H // HKV)
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < T
    d_ok = offs_d < D
    row = (b * T + offs_m) * H + h
    q, qs, ga = _query_block(
        Q + b * sqb + h * sqh, QS, GA, row, offs_m, offs_d, m_ok, d_ok, sqt, sm_scale,
        HAS_QS, HAS_GATE, BLOCK_M,
    )  # fmt: skip
    k_ptr, v_ptr = K + b * skb + hk * skh, V + b * svb + hk * svh
    kb_ptr, gb_ptr, pad_ptr = KB + b * TK * HKV + hk, GB + b * TK * H + h, PAD + b * TK
    return (
        start_m,
        offs_m,
        offs_d,
        m_ok,
        d_ok,
        row,
        q,
        qs,
        ga,
        k_ptr,
        v_ptr,
        kb_ptr,
        gb_ptr,
        pad_ptr,
    )


@triton.jit
def _fwd_kernel(
    Q,
    K,
    V,
    QS,
    KB,
    GA,
    GB,
    PAD,
    OUT,
    LSE,
    ENT,
    sqb,
    sqt,
    sqh,
    skb,
    skt,
    skh,
    svb,
    svt,
    svh,
    T,
    TK,
    OFF,
    H,
    HKV,
    D,
    sm_scale,
    WINDOW,
    GATE_W,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_QS: tl.constexpr,
    HAS_KB: tl.constexpr,
    HAS_GATE: tl.constexpr,
    HAS_PAD: tl.constexpr,
    RETURN_ENT: tl.constexpr,
    PRECISION: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    (start_m, offs_m, offs_d, m_ok, d_ok, row, q, qs, ga,
     k_ptr, v_ptr, kb_ptr, gb_ptr, pad_ptr) = _query_program(
        Q, K, V, QS, KB, GA, GB, PAD, sqb, sqt, sqh, skb, skh, svb, svh, T, TK, H, HKV, D,
        sm_scale, HAS_QS, HAS_GATE, INT64, BLOCK_M, BLOCK_D,
    )  # fmt: skip
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    ps_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    lo, hi = _key_range(start_m, TK, OFF, WINDOW, BLOCK_M, BLOCK_N, CAUSAL, HAS_WINDOW)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < TK
        k, v, kb, kp = _key_block(
            k_ptr, v_ptr, kb_ptr, pad_ptr, offs_n, offs_d, n_ok, d_ok, skt, svt, HKV,
            HAS_KB, HAS_PAD, BLOCK_N,
        )  # fmt: skip
        gb = _gate_b(gb_ptr, offs_n, n_ok, H, HAS_GATE, BLOCK_N)
        s, valid, _ = _logits(
            q, k, qs, kb, ga, gb, offs_m, offs_n, m_ok, n_ok, kp, OFF, WINDOW, GATE_W,
            CAUSAL, HAS_WINDOW, HAS_KB, HAS_GATE, HAS_PAD, PRECISION,
        )  # fmt: skip
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if RETURN_ENT:
            ps_i = ps_i * alpha + tl.sum(p * tl.where(valid, s, 0.0), 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    lse = m_i + tl.log(l_safe)
    out = acc / l_safe[:, None]
    # OUT is a fresh contiguous [B, T, H, D] buffer
    tl.store(
        OUT + (row[:, None] * D + offs_d[None, :]),
        out.to(OUT.dtype.element_ty),
        mask=m_ok[:, None] & d_ok[None, :],
    )
    tl.store(LSE + row, lse, mask=m_ok)
    if RETURN_ENT:
        tl.store(ENT + row, lse - ps_i / l_safe, mask=m_ok)


@triton.jit
def _bwd_dkdv_kernel(
    Q,
    K,
    V,
    QS,
    KB,
    GA,
    GB,
    PAD,
    DO,
    LSE,
    CORR,
    DENT,
    DK,
    DV,
    DKB,
    DGB,
    sqb,
    sqt,
    sqh,
    skb,
    skt,
    skh,
    svb,
    svt,
    svh,
    T,
    TK,
    OFF,
    H,
    HKV,
    D,
    sm_scale,
    WINDOW,
    GATE_W,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_QS: tl.constexpr,
    HAS_KB: tl.constexpr,
    HAS_GATE: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_ENT: tl.constexpr,
    PRECISION: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid_n, pid_bk = _program_ids(INT64)
    b = pid_bk // HKV
    hk = pid_bk % HKV
    group = H // HKV
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    n_ok = offs_n < TK
    d_ok = offs_d < D
    nd_ok = n_ok[:, None] & d_ok[None, :]
    k, v, kb, kp = _key_block(
        K + b * skb + hk * skh, V + b * svb + hk * svh, KB + b * TK * HKV + hk, PAD + b * TK,
        offs_n, offs_d, n_ok, d_ok, skt, svt, HKV, HAS_KB, HAS_PAD, BLOCK_N,
    )  # fmt: skip
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dkb = tl.zeros([BLOCK_N], tl.float32)
    lo, hi = _query_range(start_n, T, OFF, WINDOW, BLOCK_M, BLOCK_N, CAUSAL, HAS_WINDOW)
    for g in range(0, group):
        h = hk * group + g
        gb = _gate_b(GB + b * TK * H + h, offs_n, n_ok, H, HAS_GATE, BLOCK_N)
        dgb = tl.zeros([BLOCK_N], tl.float32)
        for start_m in range(lo, hi, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            m_ok = offs_m < T
            row = (b * T + offs_m) * H + h
            q, qs, ga = _query_block(
                Q + b * sqb + h * sqh, QS, GA, row, offs_m, offs_d, m_ok, d_ok, sqt, sm_scale,
                HAS_QS, HAS_GATE, BLOCK_M,
            )  # fmt: skip
            do = tl.load(
                DO + row[:, None] * D + offs_d[None, :],
                mask=m_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            lse, corr, dent = _row_stats(LSE, CORR, DENT, row, m_ok, HAS_ENT, BLOCK_M)
            s, valid, sig_neg = _logits(
                q, k, qs, kb, ga, gb, offs_m, offs_n, m_ok, n_ok, kp, OFF, WINDOW, GATE_W,
                CAUSAL, HAS_WINDOW, HAS_KB, HAS_GATE, HAS_PAD, PRECISION,
            )  # fmt: skip
            p, ds = _score_grad(s, valid, lse, corr, dent, do, v, HAS_ENT, PRECISION)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
            dk += tl.dot(tl.trans((ds * qs[:, None]).to(q.dtype)), q, input_precision=PRECISION)
            if HAS_KB:
                dkb += tl.sum(ds, 0)
            if HAS_GATE:
                dgb += tl.sum(ds * sig_neg, 0)
        if HAS_GATE:
            tl.store(DGB + (b * TK + offs_n) * H + h, dgb, mask=n_ok)
    base = (b * TK + offs_n) * HKV + hk
    tl.store(DK + base[:, None] * D + offs_d[None, :], dk, mask=nd_ok)
    tl.store(DV + base[:, None] * D + offs_d[None, :], dv, mask=nd_ok)
    if HAS_KB:
        tl.store(DKB + base, dkb, mask=n_ok)


@triton.jit
def _bwd_dq_kernel(
    Q,
    K,
    V,
    QS,
    KB,
    GA,
    GB,
    PAD,
    DO,
    LSE,
    CORR,
    DENT,
    DQ,
    DQS,
    DGA,
    sqb,
    sqt,
    sqh,
    skb,
    skt,
    skh,
    svb,
    svt,
    svh,
    T,
    TK,
    OFF,
    H,
    HKV,
    D,
    sm_scale,
    WINDOW,
    GATE_W,
    CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_QS: tl.constexpr,
    HAS_KB: tl.constexpr,
    HAS_GATE: tl.constexpr,
    HAS_PAD: tl.constexpr,
    HAS_ENT: tl.constexpr,
    PRECISION: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    (start_m, offs_m, offs_d, m_ok, d_ok, row, q, qs, ga,
     k_ptr, v_ptr, kb_ptr, gb_ptr, pad_ptr) = _query_program(
        Q, K, V, QS, KB, GA, GB, PAD, sqb, sqt, sqh, skb, skh, svb, svh, T, TK, H, HKV, D,
        sm_scale, HAS_QS, HAS_GATE, INT64, BLOCK_M, BLOCK_D,
    )  # fmt: skip
    md_ok = m_ok[:, None] & d_ok[None, :]
    do = tl.load(DO + row[:, None] * D + offs_d[None, :], mask=md_ok, other=0.0)
    lse, corr, dent = _row_stats(LSE, CORR, DENT, row, m_ok, HAS_ENT, BLOCK_M)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    dga = tl.zeros([BLOCK_M], tl.float32)
    lo, hi = _key_range(start_m, TK, OFF, WINDOW, BLOCK_M, BLOCK_N, CAUSAL, HAS_WINDOW)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < TK
        k, v, kb, kp = _key_block(
            k_ptr, v_ptr, kb_ptr, pad_ptr, offs_n, offs_d, n_ok, d_ok, skt, svt, HKV,
            HAS_KB, HAS_PAD, BLOCK_N,
        )  # fmt: skip
        gb = _gate_b(gb_ptr, offs_n, n_ok, H, HAS_GATE, BLOCK_N)
        s, valid, sig_neg = _logits(
            q, k, qs, kb, ga, gb, offs_m, offs_n, m_ok, n_ok, kp, OFF, WINDOW, GATE_W,
            CAUSAL, HAS_WINDOW, HAS_KB, HAS_GATE, HAS_PAD, PRECISION,
        )  # fmt: skip
        _, ds = _score_grad(s, valid, lse, corr, dent, do, v, HAS_ENT, PRECISION)
        acc += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
        if HAS_GATE:
            dga += tl.sum(ds * sig_neg, 1)
    tl.store(DQ + row[:, None] * D + offs_d[None, :], acc * qs[:, None], mask=md_ok)
    if HAS_QS:
        tl.store(DQS + row, sm_scale * tl.sum(q.to(tl.float32) * acc, 1), mask=m_ok)
    if HAS_GATE:
        tl.store(DGA + row, dga, mask=m_ok)


def _config(d: int, dtype: torch.dtype) -> dict[str, object]:
    block_d = max(16, triton.next_power_of_2(d))
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": block_d}
    if block_d > 256:
        raise ValueError(
            f"modulated_attention: the Triton kernel supports head dims up to 256, got {d}"
        )
    block = 64 if block_d <= 128 else 32
    return {
        "BLOCK_M": block,
        "BLOCK_N": block,
        "BLOCK_D": block_d,
        "num_warps": 4 if block_d <= 64 else 8,
        "num_stages": 2,
    }


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs are computed in full fp32 (no TF32) so that they match the reference closely
    return "ieee" if dtype == torch.float32 else "tf32"


#: Element offsets at or above this need 64-bit index arithmetic.
_INT32_LIMIT = 2**31 - 1


def needs_int64(*tensors: torch.Tensor) -> bool:
    """True when an element offset the kernels compute into a ``[B, T, H, D]`` tensor can
    exceed int32.

    The largest offset is ``(B−1)·s_B + (T−1)·s_T + (H−1)·s_H + (D−1)·s_D``; masked lanes of the
    last block reach up to 128 rows past T and 256 columns past D, which the bound includes.
    """
    bound = 0
    for x in tensors:
        (nb, nt, nh, nd), (sb, st, sh, sd) = x.shape, x.stride()
        bound = max(bound, (nb - 1) * sb + (nt + 127) * st + (nh - 1) * sh + (nd + 255) * sd)
    return bound > _INT32_LIMIT


def _flags(qs, kb, ga, causal, window, gate_w, precision, int64, pad):  # type: ignore[no-untyped-def]
    return {
        "HAS_PAD": pad is not None,
        "CAUSAL": causal,
        "HAS_WINDOW": window is not None,
        "HAS_QS": qs is not None,
        "HAS_KB": kb is not None,
        "HAS_GATE": ga is not None,
        "PRECISION": precision,
        "INT64": int64,
    }


def _operands(q, k, v, qs, kb, ga, gb, pad8, dummy):  # type: ignore[no-untyped-def]
    """The kernels' leading pointer operands ``(Q, K, V, QS, KB, GA, GB, PAD)``, ``dummy`` for
    absent ones (never read: their ``HAS_*`` flag is off), and the q/k/v batch, time and head
    strides."""
    optional = (x if x is not None else dummy for x in (qs, kb, ga, gb, pad8))
    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3])
    return (q, k, v, *optional), strides


def _scalars(q, k, sm_scale, window, gate_w):  # type: ignore[no-untyped-def]
    """``(T, TK, OFF, H, HKV, D, sm_scale, WINDOW, GATE_W)`` of the kernels."""
    _, t, h, d = q.shape
    tk, hkv = k.shape[1], k.shape[2]
    return (t, tk, tk - t, h, hkv, d, sm_scale, window or 1, gate_w or 1)


class TritonModulatedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, qs, kb, ga, gb, pad, causal, window, gate_w, entropy):  # type: ignore[override]
        b, t, h, d = q.shape
        q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
        qs, kb, ga, gb = (None if x is None else x.contiguous() for x in (qs, kb, ga, gb))
        pad8 = None if pad is None else pad.to(torch.int8).contiguous()
        o = torch.empty(b, t, h, d, dtype=q.dtype, device=q.device)
        lse = torch.empty(b, t, h, dtype=torch.float32, device=q.device)
        ent = torch.empty(b, t, h, dtype=torch.float32, device=q.device) if entropy else lse
        sm_scale = 1.0 / math.sqrt(d)
        cfg = _config(d, q.dtype)
        prec = _precision(q.dtype)
        # the outputs and gradients are contiguous [B, T, H, D] / [B, T, H_kv, D] buffers
        int64 = needs_int64(q, k, v, torch.empty(b, t, h, d, device="meta"))
        flags = _flags(qs, kb, ga, causal, window, gate_w, prec, int64, pad8)
        dummy = lse
        if t > 0 and b * h > 0:
            grid = (triton.cdiv(t, cfg["BLOCK_M"]), b * h)  # type: ignore[operator]
            inputs, strides = _operands(q, k, v, qs, kb, ga, gb, pad8, dummy)
            _fwd_kernel[grid](
                *inputs,
                o,
                lse,
                ent,
                *strides,
                *_scalars(q, k, sm_scale, window, gate_w),
                RETURN_ENT=entropy,
                **flags,
                **cfg,
            )
        ctx.save_for_backward(q, k, v, qs, kb, ga, gb, pad, o, lse, ent if entropy else None)
        ctx.meta = (causal, window, gate_w, entropy, sm_scale, int64)
        return o, (ent.to(q.dtype) if entropy else q.new_zeros(b, t, h))

    @staticmethod
    def backward(ctx, do, dent):  # type: ignore[override]
        q, k, v, qs, kb, ga, gb, pad, o, lse, ent = ctx.saved_tensors
        causal, window, gate_w, entropy, sm_scale, int64 = ctx.meta
        if torch.is_grad_enabled():
            # create_graph=True: the kernels' gradients are not differentiable again
            grads = reference_vjp(
                (q, k, v, qs, kb, ga, gb),
                tuple(ctx.needs_input_grad[:7]),
                do,
                dent if entropy else None,
                causal=causal,
                window=window,
                gate_w=gate_w,
                key_padding_mask=pad,
            )
            return (*grads, None, None, None, None, None)
        b, t, h, d = q.shape
        tk, hkv = k.shape[1], k.shape[2]
        pad8 = None if pad is None else pad.to(torch.int8).contiguous()
        do = do.contiguous()
        corr = (do.float() * o.float()).sum(-1)
        has_ent = entropy and dent is not None
        if has_ent:
            dent = dent.float().contiguous()
            corr = corr + dent * ent
        corr = corr.contiguous()
        dq = torch.empty(b, t, h, d, dtype=torch.float32, device=q.device)
        dk = torch.empty(b, tk, hkv, d, dtype=torch.float32, device=q.device)
        dv = torch.empty_like(dk)
        dkb = (
            torch.empty(b, tk, hkv, dtype=torch.float32, device=q.device)
            if kb is not None
            else None
        )
        dqs = torch.empty(b, t, h, dtype=torch.float32, device=q.device) if qs is not None else None
        dga = torch.empty(b, t, h, dtype=torch.float32, device=q.device) if ga is not None else None
        dgb = (
            torch.empty(b, tk, h, dtype=torch.float32, device=q.device) if ga is not None else None
        )
        cfg = _config(d, q.dtype)
        flags = _flags(qs, kb, ga, causal, window, gate_w, _precision(q.dtype), int64, pad8)
        dummy = lse
        inputs, strides = _operands(q, k, v, qs, kb, ga, gb, pad8, dummy)
        common = (*inputs, do, lse, corr, dent if has_ent else dummy)
        scalars = _scalars(q, k, sm_scale, window, gate_w)
        if t > 0 and b * h > 0:
            _bwd_dkdv_kernel[(triton.cdiv(tk, cfg["BLOCK_N"]), b * hkv)](  # type: ignore[operator]
                *common,
                dk,
                dv,
                dkb if dkb is not None else dummy,
                dgb if dgb is not None else dummy,
                *strides,
                *scalars,
                HAS_ENT=has_ent,
                **flags,
                **cfg,
            )
            _bwd_dq_kernel[(triton.cdiv(t, cfg["BLOCK_M"]), b * h)](  # type: ignore[operator]
                *common,
                dq,
                dqs if dqs is not None else dummy,
                dga if dga is not None else dummy,
                *strides,
                *scalars,
                HAS_ENT=has_ent,
                **flags,
                **cfg,
            )

        def cast(x, like):  # type: ignore[no-untyped-def]
            return None if x is None or like is None else x.to(like.dtype)

        return (
            dq.to(q.dtype),
            dk.to(k.dtype),
            dv.to(v.dtype),
            cast(dqs, qs),
            cast(dkb, kb),
            cast(dga, ga),
            cast(dgb, gb),
            None,
            None,
            None,
            None,
            None,
        )
