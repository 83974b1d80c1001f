"""Fused multi-step adaptive LIF forward and backward in Triton (one launch each for all T).

The forward keeps ``v`` and ``a`` in registers and stores the spikes, the charged membrane
``h_t`` and the adaptation ``a_{t−1}`` seen by each step (input dtype). The backward runs the
adjoint recursion from the last step, with u_t = h_t − θ₀ − a_{t−1} and σ' the surrogate:

    ds_t = ∂L/∂s_t + Δθ·da_t + [not detach]·(∂v_t/∂s_t)·dv_t
        ∂v_t/∂s_t = −(θ₀ + a_{t−1} − v_reset) (subtract)  or  v_reset − h_t (hard)
    du_t = ds_t·σ'(u_t)
    dh_t = du_t + dv_t·(1 (subtract) or 1 − s_t (hard))
    da_{t−1} = ρ·da_t − du_t − [subtract]·s_t·dv_t
    ∂L/∂x_t = dh_t,  dv_{t−1} = β·dh_t,  ∂L/∂β += dh_t·(v_{t−1} − v_rest)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from neuro_spiking._common import reduce_like
from neuro_spiking.ops.lif_scan.reference import LIFConstants
from neuro_spiking.ops.lif_scan.triton import (
    _SURROGATE_CODE,
    _block,
    _block_offsets,
    _charge,
    _charge_adjoint,
    _fire_reset,
    _load,
    _reset_adjoint,
    _surrogate,
    beta_per_neuron,
)


@triton.jit
def _alif_fwd(
    X,
    V0,
    A0,
    BETA,
    S,
    H,
    AP,
    VT,
    AT,
    T,
    BN,
    NF,
    rho,
    dtheta,
    v_rest,
    thr,
    v_reset,
    SUBTRACT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    beta = _load(BETA, offs % NF, mask)
    v = _load(V0, offs, mask)
    a = _load(A0, offs, mask)
    for t in range(T):
        h = _charge(v, _load(X + t * BN, offs, mask), beta, v_rest)
        tl.store(H + t * BN + offs, h.to(H.dtype.element_ty), mask=mask)
        tl.store(AP + t * BN + offs, a.to(AP.dtype.element_ty), mask=mask)
        s, v = _fire_reset(h, thr + a, v_reset, SUBTRACT)
        tl.store(S + t * BN + offs, s.to(S.dtype.element_ty), mask=mask)
        a = rho * a + dtheta * s
    tl.store(VT + offs, v.to(VT.dtype.element_ty), mask=mask)
    tl.store(AT + offs, a.to(AT.dtype.element_ty), mask=mask)


@triton.jit
def _alif_bwd(
    H,
    AP,
    V0,
    BETA,
    GS,
    GV,
    GA,
    DX,
    DV0,
    DA0,
    DBETA,
    T,
    BN,
    NF,
    rho,
    dtheta,
    v_rest,
    thr,
    v_reset,
    alpha,
    SUBTRACT: tl.constexpr,
    DETACH: tl.constexpr,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    beta = _load(BETA, offs % NF, mask)
    v0 = _load(V0, offs, mask)
    dv = _load(GV, offs, mask)
    da = _load(GA, offs, mask)
    dbeta = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(T):
        t = T - 1 - i
        h = _load(H + t * BN, offs, mask)
        a = _load(AP + t * BN, offs, mask)
        u = h - thr - a
        s = tl.where(u >= 0, 1.0, 0.0)
        ds = _load(GS + t * BN, offs, mask) + dtheta * da
        ds = _reset_adjoint(ds, h, thr + a - v_reset, v_reset, dv, SUBTRACT, DETACH)
        du = ds * _surrogate(u, alpha, KIND)
        dh = _charge_adjoint(dv, du, u >= 0, SUBTRACT)
        if SUBTRACT:
            da = rho * da - du - s * dv
        else:
            da = rho * da - du
        tl.store(DX + t * BN + offs, dh.to(DX.dtype.element_ty), mask=mask)
        # v_{t−1} is the reset of h_{t−1} at threshold θ₀ + a_{t−2} (v0 at t = 0)
        tp = tl.maximum(t - 1, 0)
        thr_p = thr + _load(AP + tp * BN, offs, mask)
        _, vp = _fire_reset(_load(H + tp * BN, offs, mask), thr_p, v_reset, SUBTRACT)
        vp = tl.where(t > 0, vp, v0)
        dbeta += dh * (vp - v_rest)
        dv = dh * beta
    tl.store(DV0 + offs, dv.to(DV0.dtype.element_ty), mask=mask)
    tl.store(DA0 + offs, da.to(DA0.dtype.element_ty), mask=mask)
    tl.store(DBETA + offs, dbeta, mask=mask)


class ALIFScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        v0: torch.Tensor,
        a0: torch.Tensor,
        beta: torch.Tensor,
        rho: float,
        dtheta: float,
        c: LIFConstants,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        nf = max(math.prod(x.shape[2:]), 1)
        xc = x.contiguous()
        v0c = v0.to(x.dtype).contiguous()
        a0c = a0.to(x.dtype).contiguous()
        bn = v0c.numel()
        beta_full = beta_per_neuron(beta, x)
        spikes, h, a_prev = (torch.empty_like(xc) for _ in range(3))
        v_t, a_t = torch.empty_like(v0c), torch.empty_like(a0c)
        block = _block()
        if bn > 0:
            _alif_fwd[(triton.cdiv(bn, block),)](
                xc,
                v0c,
                a0c,
                beta_full,
                spikes,
                h,
                a_prev,
                v_t,
                a_t,
                T,
                bn,
                nf,
                float(rho),
                float(dtheta),
                float(c.v_rest),
                float(c.threshold),
                float(c.v_reset),
                SUBTRACT=c.reset == "subtract",
                BLOCK=block,
            )
        ctx.save_for_backward(h, a_prev, v0c, beta, beta_full)
        ctx.args = (rho, dtheta, c)
        return spikes, v_t, a_t

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, gs: torch.Tensor | None, gv: torch.Tensor | None, ga: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        h, a_prev, v0c, beta, beta_full = ctx.saved_tensors
        rho, dtheta, c = ctx.args
        T, bn, nf = h.shape[0], v0c.numel(), max(beta_full.numel(), 1)
        gs_c = torch.zeros_like(h) if gs is None else gs.contiguous()
        gv_c = torch.zeros_like(v0c) if gv is None else gv.to(v0c.dtype).contiguous()
        ga_c = torch.zeros_like(v0c) if ga is None else ga.to(v0c.dtype).contiguous()
        dx, dv0, da0 = torch.empty_like(h), torch.empty_like(v0c), torch.empty_like(v0c)
        dbeta = torch.empty(v0c.shape, dtype=torch.float32, device=h.device)
        block = _block()
        if bn > 0:
            _alif_bwd[(triton.cdiv(bn, block),)](
                h,
                a_prev,
                v0c,
                beta_full,
                gs_c,
                gv_c,
                ga_c,
                dx,
                dv0,
                da0,
                dbeta,
                T,
                bn,
                nf,
                float(rho),
                float(dtheta),
                float(c.v_rest),
                float(c.threshold),
                float(c.v_reset),
                float(c.surrogate.alpha),
                SUBTRACT=c.reset == "subtract",
                DETACH=c.detach_reset,
                KIND=_SURROGATE_CODE[c.surrogate.kind],
                BLOCK=block,
            )
        dbeta_out = reduce_like(dbeta, beta) if ctx.needs_input_grad[3] else None
        return (dx, dv0, da0, dbeta_out, None, None, None)


def alif_scan_triton(
    x: torch.Tensor,
    v0: torch.Tensor,
    a0: torch.Tensor,
    beta: torch.Tensor,
    rho: float,
    adapt_increment: float,
    c: LIFConstants,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton adaptive-LIF scan; same contract as :func:`.reference.alif_scan_reference`."""
    return ALIFScanTriton.apply(x, v0, a0, beta, rho, adapt_increment, c)
