"""Fused multi-step LIF forward and backward in Triton: one launch each for all T steps.

Each program owns a block of neurons (of the flattened ``B·N``) and keeps their membrane in
registers (fp32) across the time loop. The forward writes the spikes, optionally the post-reset
membrane trace, and the charged membrane ``h_t`` (in the input dtype) that the backward needs:
per step the forward reads x and writes s, h; the backward reads ∂L/∂s and h and writes ∂L/∂x —
the 6·T·N·bytes traffic floor. The backward recursion is the one in :mod:`.fused`; ``v_{t−1}`` is
rebuilt from ``h_{t−1}`` (its spike is ``h_{t−1} ≥ θ``). The ∂L/∂β partial sums are written per
neuron and reduced in torch. Triton is imported when this module is imported, which the
dispatcher does lazily.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from neuro_core.dispatch import interpreting
from neuro_spiking._common import reduce_like
from neuro_spiking.ops.lif_scan.reference import LIFConstants

_SURROGATE_CODE = {
    "atan": 0,
    "fast_sigmoid": 1,
    "sigmoid": 2,
    "triangle": 3,
    "rectangular": 4,
    "multibit": 5,
}


@triton.jit
def _surrogate(u, alpha, KIND: tl.constexpr):
    if KIND == 0:
        z = 1.5707963267948966 * alpha * u
        g = (alpha * 0.5) / (1.0 + z * z)
    elif KIND == 1:
        d = 1.0 + alpha * tl.abs(u)
        g = 1.0 / (d * d)
    elif KIND == 2:
        sg = 1.0 / (1.0 + tl.exp(-alpha * u))
        g = alpha * sg * (1.0 - sg)
    elif KIND == 3:
        g = tl.maximum(1.0 - tl.abs(u) / alpha, 0.0) / alpha
    elif KIND == 4:
        g = tl.where(tl.abs(u) < alpha * 0.5, 1.0 / alpha, 0.0)
    else:
        # multi-bit (alpha = L levels): a unit triangle around every integer in [0, L + 1]
        tri = tl.maximum(1.0 - 2.0 * tl.abs(u - tl.floor(u + 0.5)), 0.0)
        g = tl.where((u >= 0.0) & (u <= alpha + 1.0), tri, 0.0)
    return g


@triton.jit
def _block_offsets(BN, BLOCK: tl.constexpr):
    """This program's neurons of the flattened ``B·N`` and their in-bounds mask."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < BN


@triton.jit
def _load(ptr, offs, mask):
    return tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _charge(v, x, beta, v_rest):
    """``h = v_rest + β·(v − v_rest) + x`` (the charge of the reference's ``lif_update``)."""
    return v_rest + beta * (v - v_rest) + x


@triton.jit
def _fire_reset(h, thr, v_reset, SUBTRACT: tl.constexpr):
    """``s = H(h − thr)`` and the post-reset membrane; ``thr`` is θ, or θ₀ + a for the adaptive
    neuron (whose subtractive reset removes θ₀ + a − v_reset)."""
    fired = h >= thr
    s = tl.where(fired, 1.0, 0.0)
    if SUBTRACT:
        v = h - (thr - v_reset) * s
    else:
        v = tl.where(fired, v_reset, h)
    return s, v


@triton.jit
def _reset_adjoint(ds, h, level, v_reset, dv, SUBTRACT: tl.constexpr, DETACH: tl.constexpr):
    """``ds + (∂v_t/∂s_t)·dv``: ∂v/∂s = −level (subtract, level = thr − v_reset) or
    ``v_reset − h`` (hard); nothing with ``detach_reset``."""
    if not DETACH:
        if SUBTRACT:
            ds = ds - level * dv
        else:
            ds = ds + (v_reset - h) * dv
    return ds


@triton.jit
def _charge_adjoint(dv, du, fired, SUBTRACT: tl.constexpr):
    """``dh = dv·∂v_t/∂h_t + du``: the membrane survives a hard reset only without a spike."""
    if SUBTRACT:
        dh = dv + du
    else:
        dh = tl.where(fired, 0.0, dv) + du
    return dh


@triton.jit
def _lif_fwd(
    X,
    V0,
    BETA,
    S,
    M,
    H,
    VT,
    T,
    BN,
    NF,
    v_rest,
    thr,
    v_reset,
    SUBTRACT: tl.constexpr,
    STORE_M: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    beta = _load(BETA, offs % NF, mask)
    v = _load(V0, offs, mask)
    for t in range(T):
        h = _charge(v, _load(X + t * BN, offs, mask), beta, v_rest)
        s, v = _fire_reset(h, thr, v_reset, SUBTRACT)
        tl.store(S + t * BN + offs, s.to(S.dtype.element_ty), mask=mask)
        tl.store(H + t * BN + offs, h.to(H.dtype.element_ty), mask=mask)
        if STORE_M:
            tl.store(M + t * BN + offs, v.to(M.dtype.element_ty), mask=mask)
    tl.store(VT + offs, v.to(VT.dtype.element_ty), mask=mask)


@triton.jit
def _lif_bwd(
    H,
    V0,
    BETA,
    GS,
    GM,
    GV,
    DX,
    DV0,
    DBETA,
    T,
    BN,
    NF,
    v_rest,
    thr,
    v_reset,
    alpha,
    SUBTRACT: tl.constexpr,
    DETACH: tl.constexpr,
    HAS_GM: tl.constexpr,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _block_offsets(BN, BLOCK)
    beta = _load(BETA, offs % NF, mask)
    v0 = _load(V0, offs, mask)
    dv = _load(GV, offs, mask)
    if HAS_GM:
        dv += _load(GM + (T - 1) * BN, offs, mask)
    dbeta = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(T):
        t = T - 1 - i
        h = _load(H + t * BN, offs, mask)
        ds = _reset_adjoint(
            _load(GS + t * BN, offs, mask), h, thr - v_reset, v_reset, dv, SUBTRACT, DETACH
        )
        dh = _charge_adjoint(dv, ds * _surrogate(h - thr, alpha, KIND), h >= thr, SUBTRACT)
        tl.store(DX + t * BN + offs, dh.to(DX.dtype.element_ty), mask=mask)
        # v_{t−1} is the reset of h_{t−1} (v0 at t = 0)
        tp = tl.maximum(t - 1, 0)
        _, vp = _fire_reset(_load(H + tp * BN, offs, mask), thr, v_reset, SUBTRACT)
        vp = tl.where(t > 0, vp, v0)
        dbeta += dh * (vp - v_rest)
        dv = dh * beta
        if HAS_GM:
            dv += tl.where(t > 0, _load(GM + tp * BN, offs, mask), 0.0)
    tl.store(DV0 + offs, dv.to(DV0.dtype.element_ty), mask=mask)
    tl.store(DBETA + offs, dbeta, mask=mask)


def _block() -> int:
    return 64 if interpreting() else 1024


class LIFScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        v0: torch.Tensor,
        beta: torch.Tensor,
        c: LIFConstants,
        store_membrane: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        nf = math.prod(x.shape[2:])
        bn = x[0].numel() if T else v0.numel()
        xc = x.contiguous()
        v0c = v0.to(x.dtype).contiguous()
        beta_full = beta_per_neuron(beta, x)
        spikes = torch.empty_like(xc)
        h = torch.empty_like(xc)
        trace = torch.empty_like(xc) if store_membrane else xc.new_zeros(())
        v_t = torch.empty_like(v0c)
        block = _block()
        if bn > 0:
            _lif_fwd[(triton.cdiv(bn, block),)](
                xc,
                v0c,
                beta_full,
                spikes,
                trace if store_membrane else spikes,
                h,
                v_t,
                T,
                bn,
                max(nf, 1),
                float(c.v_rest),
                float(c.threshold),
                float(c.v_reset),
                SUBTRACT=c.reset == "subtract",
                STORE_M=store_membrane,
                BLOCK=block,
            )
        ctx.save_for_backward(h, v0c, beta, beta_full)
        ctx.args = (c, store_membrane)
        if not store_membrane:
            ctx.mark_non_differentiable(trace)
        return spikes, trace, v_t

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any,
        grad_s: torch.Tensor | None,
        grad_m: torch.Tensor | None,
        grad_v: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        h, v0c, beta, beta_full = ctx.saved_tensors
        c, store_membrane = ctx.args
        T = h.shape[0]
        bn = v0c.numel()
        nf = beta_full.numel()
        gs = torch.zeros_like(h) if grad_s is None else grad_s.contiguous()
        has_gm = store_membrane and grad_m is not None
        gm = grad_m.contiguous() if has_gm and grad_m is not None else gs
        gv = torch.zeros_like(v0c) if grad_v is None else grad_v.to(v0c.dtype).contiguous()
        dx = torch.empty_like(h)
        dv0 = torch.empty_like(v0c)
        dbeta = torch.empty(v0c.shape, dtype=torch.float32, device=h.device)
        block = _block()
        if bn > 0:
            _lif_bwd[(triton.cdiv(bn, block),)](
                h,
                v0c,
                beta_full,
                gs,
                gm,
                gv,
                dx,
                dv0,
                dbeta,
                T,
                bn,
                max(nf, 1),
                float(c.v_rest),
                float(c.threshold),
                float(c.v_reset),
                float(c.surrogate.alpha),
                SUBTRACT=c.reset == "subtract",
                DETACH=c.detach_reset,
                HAS_GM=has_gm,
                KIND=_SURROGATE_CODE[c.surrogate.kind],
                BLOCK=block,
            )
        dbeta_out = reduce_like(dbeta, beta) if ctx.needs_input_grad[2] else None
        return (dx, dv0, dbeta_out, None, None)


def beta_per_neuron(beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """β as a contiguous fp32 ``[N...]`` (``x.shape[2:]``) buffer the kernels index ``% NF``."""
    return beta.detach().to(torch.float32).expand(x.shape[2:]).contiguous()


def lif_scan_triton(
    x: torch.Tensor, v0: torch.Tensor, beta: torch.Tensor, c: LIFConstants, store_membrane: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Triton LIF scan; same contract as :func:`.reference.lif_scan_reference`."""
    s, m, v = LIFScanTriton.apply(x, v0, beta, c, store_membrane)
    return s, (m if store_membrane else None), v
