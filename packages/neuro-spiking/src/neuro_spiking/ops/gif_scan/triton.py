"""Fused multi-step multi-bit GIF forward and backward in Triton (one launch each for all T).

The forward keeps ``v`` and ``θ`` in registers and stores the spikes, the pre-clamp membrane
``p_t = β·v_{t−1} + x_t`` and the threshold ``θ_{t−1}`` seen by each step. The backward, with
``v' = clamp(p, ±cLθ)``, ``u = v'/θ`` and σ' Aura's multi-bit surrogate:

    ds_t = ∂L/∂s_t + α·dθ_t − θ_{t−1}·dv_t
    du_t = ds_t·σ'(u_t)
    dv'_t = dv_t + du_t/θ_{t−1}
    dθ_{t−1} = (1 − α)·dθ_t − s_t·dv_t − du_t·v'_t/θ²_{t−1} ± c·L·dv'_t·[clamped at ±]
    ∂L/∂x_t = dv'_t·[not clamped],   dv_{t−1} = β·∂L/∂x_t
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from neuro_spiking.ops.gif_scan.reference import GIFConstants
from neuro_spiking.ops.lif_scan.triton import _block, _block_offsets, _load, _surrogate


@triton.jit
def _clamp_fire(p, th, cl, levels):
    """``v' = clamp(p, ±c·L·θ)``, ``u = v'/θ`` and ``s = clamp(floor(u), 0, L)``."""
    bound = cl * th
    vc = tl.minimum(tl.maximum(p, -bound), bound)
    u = vc / th
    return bound, vc, u, tl.minimum(tl.maximum(tl.floor(u), 0.0), levels)


@triton.jit
def _gif_fwd(
    X,
    V0,
    TH0,
    S,
    P,
    THP,
    VT,
    THT,
    T,
    BN,
    beta,
    theta_rest,
    levels,
    alpha,
    cl,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    v = _load(V0, offs, mask)
    th = tl.load(TH0 + offs, mask=mask, other=1.0).to(tl.float32)
    for t in range(T):
        p = beta * v + _load(X + t * BN, offs, mask)
        _, vc, _, s = _clamp_fire(p, th, cl, levels)
        tl.store(P + t * BN + offs, p.to(P.dtype.element_ty), mask=mask)
        tl.store(THP + t * BN + offs, th.to(THP.dtype.element_ty), mask=mask)
        tl.store(S + t * BN + offs, s.to(S.dtype.element_ty), mask=mask)
        v = vc - s * th
        th = th + alpha * s - alpha * (th - theta_rest)
    tl.store(VT + offs, v.to(VT.dtype.element_ty), mask=mask)
    tl.store(THT + offs, th.to(THT.dtype.element_ty), mask=mask)


@triton.jit
def _gif_bwd(
    P,
    THP,
    GS,
    GV,
    GTH,
    DX,
    DV0,
    DTH0,
    T,
    BN,
    beta,
    levels,
    alpha,
    cl,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    dv = _load(GV, offs, mask)
    dth = _load(GTH, offs, mask)
    for i in range(T):
        t = T - 1 - i
        p = _load(P + t * BN, offs, mask)
        th = tl.load(THP + t * BN + offs, mask=mask, other=1.0).to(tl.float32)
        bound, vc, u, s = _clamp_fire(p, th, cl, levels)
        ds = _load(GS + t * BN, offs, mask) + alpha * dth - th * dv
        du = ds * _surrogate(u, levels, 5)
        dvc = dv + du / th
        dth_new = (1.0 - alpha) * dth - s * dv - du * vc / (th * th)
        dth_new += tl.where(p > bound, cl * dvc, 0.0) - tl.where(p < -bound, cl * dvc, 0.0)
        dp = tl.where((p > bound) | (p < -bound), 0.0, dvc)
        tl.store(DX + t * BN + offs, dp.to(DX.dtype.element_ty), mask=mask)
        dv = beta * dp
        dth = dth_new
    tl.store(DV0 + offs, dv.to(DV0.dtype.element_ty), mask=mask)
    tl.store(DTH0 + offs, dth.to(DTH0.dtype.element_ty), mask=mask)


class GIFScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, v0: torch.Tensor, theta0: torch.Tensor, c: GIFConstants
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        xc = x.contiguous()
        v0c = v0.to(x.dtype).contiguous()
        th0c = theta0.to(x.dtype).contiguous()
        bn = v0c.numel()
        spikes, p, th_prev = (torch.empty_like(xc) for _ in range(3))
        v_t, th_t = torch.empty_like(v0c), torch.empty_like(th0c)
        block = _block()
        cl = float(c.clamp_factor) * c.levels
        if bn > 0:
            _gif_fwd[(triton.cdiv(bn, block),)](
                xc,
                v0c,
                th0c,
                spikes,
                p,
                th_prev,
                v_t,
                th_t,
                T,
                bn,
                float(c.beta),
                float(c.theta_rest),
                float(c.levels),
                float(c.adapt_rate),
                cl,
                BLOCK=block,
            )
        ctx.save_for_backward(p, th_prev)
        ctx.args = (c, cl)
        return spikes, v_t, th_t

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, gs: torch.Tensor | None, gv: torch.Tensor | None, gth: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        p, th_prev = ctx.saved_tensors
        c, cl = ctx.args
        T = p.shape[0]
        shape = p.shape[1:]
        bn = p[0].numel() if T else 0
        gs_c = torch.zeros_like(p) if gs is None else gs.contiguous()
        zeros = p.new_zeros(shape)
        gv_c = zeros if gv is None else gv.to(p.dtype).contiguous()
        gth_c = zeros if gth is None else gth.to(p.dtype).contiguous()
        dx = torch.empty_like(p)
        dv0 = torch.empty(shape, dtype=p.dtype, device=p.device)
        dth0 = torch.empty(shape, dtype=p.dtype, device=p.device)
        block = _block()
        if bn > 0:
            _gif_bwd[(triton.cdiv(bn, block),)](
                p,
                th_prev,
                gs_c,
                gv_c,
                gth_c,
                dx,
                dv0,
                dth0,
                T,
                bn,
                float(c.beta),
                float(c.levels),
                float(c.adapt_rate),
                cl,
                BLOCK=block,
            )
        else:
            dv0, dth0 = gv_c.clone(), gth_c.clone()
        return (dx, dv0, dth0, None)


def gif_scan_triton(
    x: torch.Tensor, v0: torch.Tensor, theta0: torch.Tensor, c: GIFConstants
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton GIF scan; same contract as :func:`.reference.gif_scan_reference`."""
    return GIFScanTriton.apply(x, v0, theta0, c)
