"""Fused RMSNorm forward and backward in Triton (one program per row block, fp32 statistics).

The forward saves only the per-row reciprocal RMS; the backward recomputes the normalized input.
Triton is imported when this module is imported, which the dispatcher does lazily.

Backward, with x̂ = x·r, r = 1/sqrt(mean(x²)+eps), g = dy·w:
    dx = r · (g − x̂ · mean(g · x̂)),   dw = Σ_rows dy · x̂
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rmsnorm_fwd(
    X, W, Y, RSTD, stride_x, stride_y, N, eps, HAS_W: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    y = x * rstd
    if HAS_W:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rmsnorm_bwd(
    X,
    W,
    DY,
    DX,
    DW_PARTIAL,
    RSTD,
    stride_x,
    stride_dy,
    stride_dx,
    M,
    N,
    HAS_W: tl.constexpr,
    BLOCK: tl.constexpr,
    ROWS_PER_PROGRAM: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    if HAS_W:
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    else:
        w = tl.where(mask, 1.0, 0.0)
    dw_acc = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(ROWS_PER_PROGRAM):
        row = pid * ROWS_PER_PROGRAM + i
        if row < M:
            x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(DY + row * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + row)
            xhat = x * rstd
            g = dy * w
            dx = rstd * (g - xhat * (tl.sum(g * xhat, axis=0) / N))
            tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
            dw_acc += dy * xhat
    tl.store(DW_PARTIAL + pid * N + cols, dw_acc, mask=mask)


def _block(n: int) -> int:
    block = triton.next_power_of_2(n)
    if block > 65536:
        raise ValueError(
            f"rms_norm: the Triton kernel supports a last dimension up to 65536, got {n}"
        )
    return block


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:  # type: ignore[override]
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).contiguous()
        m, n = x2.shape
        y = torch.empty_like(x2)
        rstd = torch.empty(m, dtype=torch.float32, device=x.device)
        has_w = weight is not None
        w = weight.contiguous() if weight is not None else x2
        if m > 0:
            _rmsnorm_fwd[(m,)](
                x2, w, y, rstd, x2.stride(0), y.stride(0), n, eps, HAS_W=has_w, BLOCK=_block(n)
            )
        ctx.save_for_backward(x2, weight if has_w else None, rstd)
        ctx.shape = shape
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        x2, weight, rstd = ctx.saved_tensors
        m, n = x2.shape
        dy2 = dy.reshape(-1, n).contiguous()
        dx = torch.empty_like(x2)
        rows_per_program = max(1, triton.cdiv(m, 256))
        n_programs = max(1, triton.cdiv(m, rows_per_program))
        dw_partial = torch.zeros(n_programs, n, dtype=torch.float32, device=x2.device)
        has_w = weight is not None
        if m > 0:
            _rmsnorm_bwd[(n_programs,)](
                x2,
                weight if has_w else x2,
                dy2,
                dx,
                dw_partial,
                rstd,
                x2.stride(0),
                dy2.stride(0),
                dx.stride(0),
                m,
                n,
                HAS_W=has_w,
                BLOCK=_block(n),
                ROWS_PER_PROGRAM=rows_per_program,
            )
        dw = dw_partial.sum(0).to(weight.dtype) if has_w and ctx.needs_input_grad[1] else None
        return dx.reshape(ctx.shape), dw, None


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Triton RMSNorm; same contract as :func:`~neuro_core.ops.rmsnorm.reference.rms_norm_reference`."""
    return RMSNormFunction.apply(x, weight, eps)
