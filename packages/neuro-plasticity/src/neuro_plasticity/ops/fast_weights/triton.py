"""Hebbian fast weights (S_t = λ S_{t−1} + η k_t v_tᵀ, o_t = S_tᵀ q_t) as fused chunked Triton kernels.

One program per (batch·head, block of value channels) walks the chunks in order, holding the
``[Dk, BV]`` state in fp32 registers; inside a chunk the work is three ``tl.dot``s (the chunked
form of :mod:`.chunked`, with in-chunk log retention g_i = (i+1)·log λ).

Backward (η folded in, D_ij = e^{g_i − g_j}[i ≥ j], H = gradient of the state at chunk end):

    dq = e^{g} ⊙ dO S_0ᵀ + η (dO Vᵀ ∘ D) K                         (forward walk, recomputes S_0)
    dk = η e^{g_n − g} ⊙ V Hᵀ + η (dO Vᵀ ∘ D)ᵀ Q                   (reverse walk)
    dv = η e^{g_n − g} ⊙ K H + η (Q Kᵀ ∘ D)ᵀ dO
    H ← e^{g_n} H + (e^{g} ⊙ Q)ᵀ dO                                  (H before the chunk; dS_0 at the end)

dq and dk sum over value channels, so each value block writes a partial that the wrapper adds.
Triton is imported when this module is imported, which the dispatcher does lazily.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from neuro_core.dispatch import interpreting


@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _load_tile(X, base, t, stride_t, offs, mask):
    """Rows ``t`` of one (batch, head), channels ``offs``, as fp32 (0 where masked)."""
    return tl.load(X + base + t[:, None] * stride_t + offs[None, :], mask=mask, other=0.0).to(
        tl.float32
    )


@triton.jit
def _retention(offs_c, log_decay, lr):
    """In-chunk log retention ``g_i = (i+1)·log λ`` and ``η·D``, ``D_ij = e^{g_i − g_j}[i ≥ j]``."""
    g = (offs_c.to(tl.float32) + 1.0) * log_decay
    causal = offs_c[:, None] >= offs_c[None, :]
    dmat = tl.where(causal, tl.exp(g[:, None] - g[None, :]), 0.0) * lr
    return g, dmat


@triton.jit
def _chunk_end(g, n, mt, log_decay, lr):
    """Log retention ``g_n`` over the chunk's ``n`` valid rows and the write weights
    ``η·e^{g_n − g_i}`` (0 on rows past T)."""
    glast = n.to(tl.float32) * log_decay
    w = tl.where(mt, tl.exp(glast - g), 0.0) * lr
    return glast, w


@triton.jit
def _initial(S0, s_ptr, s_mask, HAS: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """A ``[BK, BV]`` fp32 state tile loaded from ``S0``, or zeros."""
    if HAS:
        S = tl.load(S0 + s_ptr, mask=s_mask, other=0.0).to(tl.float32)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)
    return S


@triton.jit
def _program(
    H,
    DK,
    DV,
    s_qb,
    s_qh,
    s_vb,
    s_vh,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
):
    """This program's (batch·head, value block): the chunk, key and value-channel ranges with
    their masks, the state tile's offsets and mask in ``[B, H, Dk, Dv]``, and the (batch, head)
    offsets of q/k and v/o. Also returns ``pid_v``."""
    pid_bh = tl.program_id(0)
    pid_v = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_c = tl.arange(0, C)
    offs_k = tl.arange(0, BK)
    offs_v = pid_v * BV + tl.arange(0, BV)
    mk = offs_k < DK
    mv = offs_v < DV
    s_ptr = (b * H + h) * DK * DV + offs_k[:, None] * DV + offs_v[None, :]
    s_mask = mk[:, None] & mv[None, :]
    qk_base = b * s_qb + h * s_qh
    v_base = b * s_vb + h * s_vh
    return pid_v, offs_c, offs_k, offs_v, mk, mv, s_ptr, s_mask, qk_base, v_base


@triton.jit
def _fw_fwd(
    Q,
    K,
    V,
    S0,
    OUT,
    SF,
    T,
    H,
    DK,
    DV,
    log_decay,
    lr,
    s_qb,
    s_qt,
    s_qh,
    s_vb,
    s_vt,
    s_vh,
    HAS_S0: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    IEEE: tl.constexpr,
):
    _, offs_c, offs_k, offs_v, mk, mv, s_ptr, s_mask, qk_base, v_base = _program(
        H, DK, DV, s_qb, s_qh, s_vb, s_vh, C, BK, BV
    )
    S = _initial(S0, s_ptr, s_mask, HAS_S0, BK, BV)
    g, dmat = _retention(offs_c, log_decay, lr)
    for start in range(0, T, C):
        t = start + offs_c
        mt = t < T
        qk_mask = mt[:, None] & mk[None, :]
        q = _load_tile(Q, qk_base, t, s_qt, offs_k, qk_mask)
        k = _load_tile(K, qk_base, t, s_qt, offs_k, qk_mask)
        v = _load_tile(V, v_base, t, s_vt, offs_v, mt[:, None] & mv[None, :])
        attn = _dot(q, tl.trans(k), IEEE) * dmat
        o = _dot(attn, v, IEEE) + _dot(q, S, IEEE) * tl.exp(g)[:, None]
        tl.store(
            OUT + v_base + t[:, None] * s_vt + offs_v[None, :],
            o.to(OUT.dtype.element_ty),
            mask=mt[:, None] & mv[None, :],
        )
        glast, w = _chunk_end(g, tl.minimum(T - start, C), mt, log_decay, lr)
        S = S * tl.exp(glast) + _dot(tl.trans(k * w[:, None]), v, IEEE)
    tl.store(SF + s_ptr, S, mask=s_mask)


@triton.jit
def _fw_bwd(
    Q,
    K,
    V,
    S0,
    DO,
    DSF,
    DQ,
    DK,
    DV_,
    DS0,
    T,
    H,
    DK_DIM,
    DV_DIM,
    log_decay,
    lr,
    s_qb,
    s_qt,
    s_qh,
    s_vb,
    s_vt,
    s_vh,
    s_part,
    HAS_S0: tl.constexpr,
    HAS_DSF: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    IEEE: tl.constexpr,
):
    pid_v, offs_c, offs_k, offs_v, mk, mv, s_ptr, s_mask, qk_base, v_base = _program(
        H, DK_DIM, DV_DIM, s_qb, s_qh, s_vb, s_vh, C, BK, BV
    )
    g, dmat = _retention(offs_c, log_decay, lr)
    part = pid_v * s_part

    # forward walk: dq
    S = _initial(S0, s_ptr, s_mask, HAS_S0, BK, BV)
    for start in range(0, T, C):
        t = start + offs_c
        mt = t < T
        qk_mask = mt[:, None] & mk[None, :]
        v_mask = mt[:, None] & mv[None, :]
        k = _load_tile(K, qk_base, t, s_qt, offs_k, qk_mask)
        v = _load_tile(V, v_base, t, s_vt, offs_v, v_mask)
        do = _load_tile(DO, v_base, t, s_vt, offs_v, v_mask)
        dav = _dot(do, tl.trans(v), IEEE) * dmat
        dq = _dot(do, tl.trans(S), IEEE) * tl.exp(g)[:, None] + _dot(dav, k, IEEE)
        tl.store(DQ + part + qk_base + t[:, None] * s_qt + offs_k[None, :], dq, mask=qk_mask)
        glast, w = _chunk_end(g, tl.minimum(T - start, C), mt, log_decay, lr)
        S = S * tl.exp(glast) + _dot(tl.trans(k * w[:, None]), v, IEEE)

    # reverse walk: dk, dv, dS0
    dH = _initial(DSF, s_ptr, s_mask, HAS_DSF, BK, BV)
    n_chunks = tl.cdiv(T, C)
    for i in range(0, n_chunks):
        start = (n_chunks - 1 - i) * C
        t = start + offs_c
        mt = t < T
        qk_mask = mt[:, None] & mk[None, :]
        v_mask = mt[:, None] & mv[None, :]
        q = _load_tile(Q, qk_base, t, s_qt, offs_k, qk_mask)
        k = _load_tile(K, qk_base, t, s_qt, offs_k, qk_mask)
        v = _load_tile(V, v_base, t, s_vt, offs_v, v_mask)
        do = _load_tile(DO, v_base, t, s_vt, offs_v, v_mask)
        glast, w = _chunk_end(g, tl.minimum(T - start, C), mt, log_decay, lr)
        dav = _dot(do, tl.trans(v), IEEE) * dmat
        aqk = _dot(q, tl.trans(k), IEEE) * dmat
        dk = _dot(v, tl.trans(dH), IEEE) * w[:, None] + _dot(tl.trans(dav), q, IEEE)
        dv = _dot(k, dH, IEEE) * w[:, None] + _dot(tl.trans(aqk), do, IEEE)
        tl.store(DK + part + qk_base + t[:, None] * s_qt + offs_k[None, :], dk, mask=qk_mask)
        tl.store(
            DV_ + v_base + t[:, None] * s_vt + offs_v[None, :],
            dv.to(DV_.dtype.element_ty),
            mask=v_mask,
        )
        qg = q * tl.where(mt, tl.exp(g), 0.0)[:, None]
        dH = dH * tl.exp(glast) + _dot(tl.trans(qg), do, IEEE)
    tl.store(DS0 + s_ptr, dH, mask=s_mask)


def _blocks(dk: int, dv: int, chunk: int) -> tuple[int, int, int]:
    bk = max(16, triton.next_power_of_2(dk))
    bv = max(16, min(64, triton.next_power_of_2(dv)))
    c = max(16, triton.next_power_of_2(chunk))
    if bk > 256:
        raise ValueError(f"fast_weights: the Triton kernel supports Dk ≤ 256, got {dk}")
    return bk, bv, c


def _scalars(q: torch.Tensor, v: torch.Tensor, lr: float, decay: float) -> tuple[float, ...]:
    """``(T, H, Dk, Dv, log λ, η)`` and the q/k and v/o batch, time and head strides, in the
    kernels' order."""
    _, t, h, dk = q.shape
    return (t, h, dk, v.shape[-1], math.log(decay), lr, *q.stride()[:3], *v.stride()[:3])


class HebbianFastWeightsFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        s0: torch.Tensor | None,
        lr: float,
        decay: float,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        b, _, h, dk = q.shape
        dv = v.shape[-1]
        bk, bv, c = _blocks(dk, dv, chunk)
        o = torch.empty_like(v)
        sf = torch.empty(b, h, dk, dv, dtype=torch.float32, device=q.device)
        s0c = s0.float().contiguous() if s0 is not None else None
        grid = (b * h, triton.cdiv(dv, bv))
        ieee = q.dtype == torch.float32
        _fw_fwd[grid](
            q,
            k,
            v,
            s0c if s0c is not None else sf,
            o,
            sf,
            *_scalars(q, v, lr, decay),
            HAS_S0=s0c is not None,
            C=c,
            BK=bk,
            BV=bv,
            IEEE=ieee,
        )
        ctx.save_for_backward(q, k, v, s0c)  # type: ignore[arg-type]
        s0_dtype = s0.dtype if s0 is not None else None
        ctx.params = (lr, decay, c, bk, bv, s0 is not None, s0_dtype)  # type: ignore[attr-defined]
        return o, sf

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, do: torch.Tensor, dsf: torch.Tensor | None
    ):  # type: ignore[override]
        q, k, v, s0c = ctx.saved_tensors  # type: ignore[attr-defined]
        lr, decay, c, bk, bv, has_s0, s0_dtype = ctx.params  # type: ignore[attr-defined]
        b, t, h, dk = q.shape
        dv = v.shape[-1]
        nv = triton.cdiv(dv, bv)
        do = do.contiguous()
        dq_part = torch.empty(nv, b, t, h, dk, dtype=torch.float32, device=q.device)
        dk_part = torch.empty(nv, b, t, h, dk, dtype=torch.float32, device=q.device)
        dv_out = torch.empty_like(v)
        ds0 = torch.empty(b, h, dk, dv, dtype=torch.float32, device=q.device)
        dsf_c = dsf.float().contiguous() if dsf is not None else None
        _fw_bwd[(b * h, nv)](
            q,
            k,
            v,
            s0c if s0c is not None else ds0,
            do,
            dsf_c if dsf_c is not None else ds0,
            dq_part,
            dk_part,
            dv_out,
            ds0,
            *_scalars(q, v, lr, decay),
            dq_part.stride(0),
            HAS_S0=s0c is not None,
            HAS_DSF=dsf_c is not None,
            C=c,
            BK=bk,
            BV=bv,
            IEEE=q.dtype == torch.float32,
        )
        dq = dq_part.sum(0).to(q.dtype)
        dkk = dk_part.sum(0).to(k.dtype)
        ds0_out = ds0.to(s0_dtype) if has_s0 else None
        return dq, dkk, dv_out, ds0_out, None, None, None


def hebbian_fast_weights_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None,
    *,
    lr: float,
    decay: float,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton Hebbian fast weights; same contract as the reference with ``rule="hebbian"``.

    ``chunk_size`` is rounded up to a power of two ≥ 16 (``tl.dot`` needs it); under the CPU
    interpreter it is capped at 16 to keep tests fast.
    """
    chunk = 16 if interpreting() else chunk_size
    o, sf = HebbianFastWeightsFunction.apply(
        q, k, v, initial_state, float(lr), float(decay), int(chunk)
    )
    return o, sf
