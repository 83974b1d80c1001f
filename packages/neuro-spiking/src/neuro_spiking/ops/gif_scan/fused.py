"""Multi-step multi-bit GIF with a hand-written backward (the CPU default of ``fused_gif_scan``).

The design of :mod:`neuro_spiking.ops.lif_scan.fused`: the forward runs the recursion of
:mod:`.reference` without autograd (same operations in the same order, so spikes and state are
bit-identical), writes the spikes and keeps ``(v, θ)`` at the start of every chunk; the backward
recomputes one chunk at a time and runs the adjoint step by step.

Adjoint of one step (p_t = β·v_{t−1} + x_t, B = c·L·θ_{t−1}, v'_t = clamp(p_t, −B, B),
u_t = v'_t/θ_{t−1}, σ' the multi-bit surrogate; incoming ``dv = ∂L/∂v_t``, ``dθ = ∂L/∂θ_t``,
``g = ∂L/∂s_t``)::

    ds      = g − θ_{t−1}·dv + α·dθ
    du      = ds·σ'(u_t)
    dv'     = dv + du/θ_{t−1}
    dθ_prev = (1 − α)·dθ − s_t·dv − du·u_t/θ_{t−1} + c·L·dv'·(1[p_t > B] − 1[p_t < −B])
    dx_t    = dv'·1[−B ≤ p_t ≤ B],   dv_prev = β·dx_t

At an exact tie ``p_t = ±B`` autograd splits the gradient of ``minimum``/``maximum`` in halves;
here it goes to ``p`` (a set of measure zero; the tests keep inputs away from it).
"""

from __future__ import annotations

from typing import Any

import torch

from neuro_spiking.ops.gif_scan.reference import GIFConstants
from neuro_spiking.ops.lif_scan.fused import _chunked_forward
from neuro_spiking.surrogates import MultiBit

#: Steps between state checkpoints.
DEFAULT_CHUNK = 8


class _Step:
    def __init__(self, c: GIFConstants) -> None:
        self.beta, self.theta_rest, self.levels = c.beta, c.theta_rest, c.levels
        self.adapt, self.cl = c.adapt_rate, c.clamp_factor * c.levels

    def __call__(
        self,
        v: torch.Tensor,
        theta: torch.Tensor,
        x_t: torch.Tensor,
        s_out: torch.Tensor,
        p_out: torch.Tensor | None = None,
        vc_out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step (the reference's operations in its order); writes ``s`` (and ``p``, the
        clamped ``v'``) into the given buffers; returns ``(v_t, θ_t)``."""
        p = torch.mul(v, self.beta, out=p_out) if p_out is not None else torch.mul(v, self.beta)
        p += x_t
        bound = torch.mul(theta, self.cl)
        vc = (
            torch.clamp(p, -bound, bound, out=vc_out)
            if vc_out is not None
            else p.clamp(-bound, bound)
        )
        s = torch.div(vc, theta, out=s_out).floor_().clamp_(0, self.levels)
        v_new = vc - s * theta
        theta_new = (theta + self.adapt * s).sub_((theta - self.theta_rest).mul_(self.adapt))
        return v_new, theta_new


class GIFScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        v0: torch.Tensor,
        theta0: torch.Tensor,
        c: GIFConstants,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        step = _Step(c)
        spikes = torch.empty_like(x)
        checkpoints, (v, theta) = _chunked_forward(
            step, x, (v0.to(x.dtype), theta0.to(x.dtype)), chunk, spikes
        )
        ctx.save_for_backward(x, *checkpoints)
        ctx.args = (c, chunk)
        if T == 0:
            v, theta = v.clone(), theta.clone()
        return spikes, v, theta

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any,
        grad_s: torch.Tensor | None,
        grad_v: torch.Tensor | None,
        grad_theta: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        x, *checkpoints = ctx.saved_tensors
        c, chunk = ctx.args
        beta, adapt = c.beta, c.adapt_rate
        T = x.shape[0]
        step = _Step(c)
        surrogate = MultiBit(levels=c.levels)
        grad_s = torch.zeros_like(x) if grad_s is None else grad_s
        dv = torch.zeros_like(x[0]) if grad_v is None else grad_v.to(x.dtype)
        dth = torch.zeros_like(x[0]) if grad_theta is None else grad_theta.to(x.dtype)
        dx = torch.empty_like(x)
        K = min(chunk, T)
        ps, vcs, ss = (x.new_empty((K, *x.shape[1:])) for _ in range(3))
        starts = list(range(0, T, chunk))
        for idx in range(len(starts) - 1, -1, -1):
            start, end = starts[idx], min(starts[idx] + chunk, T)
            v, theta = checkpoints[2 * idx], checkpoints[2 * idx + 1]
            thetas = []
            for k, t in enumerate(range(start, end)):
                thetas.append(theta)
                v, theta = step(v, theta, x[t], ss[k], ps[k], vcs[k])
            for k in range(end - start - 1, -1, -1):
                t, th = start + k, thetas[k]
                u = vcs[k] / th
                ds = torch.addcmul(grad_s[t], th, dv, value=-1.0)
                if adapt != 0.0:
                    ds.add_(dth, alpha=adapt)
                du = ds.mul_(surrogate.derivative(u))
                dvc = torch.addcdiv(dv, du, th)
                bound = th * step.cl
                above = torch.gt(ps[k], bound).to(x.dtype)
                below = torch.lt(ps[k], bound.neg_()).to(x.dtype)
                dth_new = (
                    torch.mul(dth, 1.0 - adapt)
                    .addcmul_(ss[k], dv, value=-1.0)
                    .addcmul_(du, u.div_(th), value=-1.0)
                    .addcmul_(dvc, above.sub(below), value=step.cl)
                )
                inside = torch.rsub(above.add_(below), 1.0)
                dp = torch.mul(dvc, inside, out=dx[t])
                dv, dth = dp * beta, dth_new
        return (dx, dv, dth, None, None)


__all__ = ["DEFAULT_CHUNK", "GIFScanFunction"]
