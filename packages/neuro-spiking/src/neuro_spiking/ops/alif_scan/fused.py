"""Multi-step adaptive LIF with a hand-written backward (the CPU default of ``fused_alif_scan``).

The same design as :mod:`neuro_spiking.ops.lif_scan.fused`: the forward runs the recursion of
:mod:`.reference` without autograd, writes the spikes and keeps the state ``(v, a)`` at the start
of every chunk of ``chunk`` steps; the backward recomputes one chunk at a time into reused
scratch buffers and runs the adjoint step by step. Float arithmetic only (no bool masks).

Adjoint of one step (u_t = h_t − θ₀ − a_{t−1}, σ' the surrogate derivative, incoming
``dv = ∂L/∂v_t``, ``da = ∂L/∂a_t``, ``g = ∂L/∂s_t``)::

    ds      = g + Δθ·da + ∂v_t/∂s_t·dv·[not detach]
              ∂v_t/∂s_t = −(θ₀ + a_{t−1} − v_reset)  (subtract)  or  v_reset − h_t  (hard)
    dh      = dv·∂v_t/∂h_t + ds·σ'(u_t),   ∂v_t/∂h_t = 1 (subtract) or 1 − s_t (hard)
    da_prev = ρ·da − ds·σ'(u_t) − s_t·dv·[subtract]     (the reset term θ₀ + a keeps its a-path)
    dx_t = dh,   dv_prev = β·dh,   ∂L/∂β += dh·(v_{t−1} − v_rest)

The spikes (and the final state) are bit-identical to the reference: every product with a spike
``s ∈ {0, 1}`` is exact, so the order of roundings matches.
"""

from __future__ import annotations

from typing import Any

import torch

from neuro_spiking._common import reduce_like
from neuro_spiking.ops.lif_scan.fused import _charge, _chunked_forward, _reset
from neuro_spiking.ops.lif_scan.reference import LIFConstants

#: Steps between state checkpoints.
DEFAULT_CHUNK = 8


class _Step:
    """Per-call constants of the recursion."""

    def __init__(self, beta: torch.Tensor, rho: float, adapt: float, c: LIFConstants) -> None:
        self.beta = beta
        self.bias = (1 - beta) * c.v_rest if c.v_rest != 0 else None
        self.rho, self.adapt, self.v_rest = rho, adapt, c.v_rest
        self.threshold, self.v_reset, self.subtract = c.threshold, c.v_reset, c.reset == "subtract"

    def __call__(
        self,
        v: torch.Tensor,
        a: torch.Tensor,
        x_t: torch.Tensor,
        s_out: torch.Tensor,
        h_out: torch.Tensor | None = None,
        u_out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: writes the spike into ``s_out`` (and ``h``, ``u`` when asked); returns
        ``(v_t, a_t)``."""
        h = _charge(v, self.beta, x_t, self.bias, out=h_out)
        u = torch.sub(h, self.threshold, out=u_out) if u_out is not None else h - self.threshold
        u -= a
        s = torch.ge(u, 0.0, out=s_out)
        if self.subtract:
            level = a + self.threshold
            if self.v_reset != 0.0:
                level -= self.v_reset
            v_new = torch.addcmul(h, level, s, value=-1.0)
        else:
            v_new = _reset(h, s, 0.0, self.v_reset, False)
        a_new = torch.mul(a, self.rho).add_(s, alpha=self.adapt)
        return v_new, a_new


class ALIFScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        v0: torch.Tensor,
        a0: torch.Tensor,
        beta: torch.Tensor,
        rho: float,
        adapt: float,
        c: LIFConstants,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        step = _Step(beta.to(x.dtype), rho, adapt, c)
        spikes = torch.empty_like(x)
        checkpoints, (v, a) = _chunked_forward(
            step, x, (v0.to(x.dtype), a0.to(x.dtype)), chunk, spikes
        )
        ctx.save_for_backward(x, beta, *checkpoints)
        ctx.args = (rho, adapt, c, chunk)
        if T == 0:
            v, a = v.clone(), a.clone()
        return spikes, v, a

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any,
        grad_s: torch.Tensor | None,
        grad_v: torch.Tensor | None,
        grad_a: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        x, beta, *checkpoints = ctx.saved_tensors
        rho, adapt, c, chunk = ctx.args
        v_rest, threshold, v_reset, _, detach_reset, surrogate = c
        subtract = c.reset == "subtract"
        T = x.shape[0]
        beta_c = beta.to(x.dtype)
        step = _Step(beta_c, rho, adapt, c)
        want_beta = ctx.needs_input_grad[3]
        grad_s = torch.zeros_like(x) if grad_s is None else grad_s
        dv = torch.zeros_like(x[0]) if grad_v is None else grad_v.to(x.dtype)
        da = torch.zeros_like(x[0]) if grad_a is None else grad_a.to(x.dtype)
        dx = torch.empty_like(x)
        dbeta = torch.zeros_like(x[0]) if want_beta else None
        K = min(chunk, T)
        hs, us, ss = (x.new_empty((K, *x.shape[1:])) for _ in range(3))
        scratch = torch.empty_like(x[0]) if T else x.new_empty(0)
        starts = list(range(0, T, chunk))
        for idx in range(len(starts) - 1, -1, -1):
            start, end = starts[idx], min(starts[idx] + chunk, T)
            v, a = checkpoints[2 * idx], checkpoints[2 * idx + 1]
            v_prev, a_prev = [], []
            for k, t in enumerate(range(start, end)):
                v_prev.append(v)
                a_prev.append(a)
                v, a = step(v, a, x[t], ss[k], hs[k], us[k])
            for k in range(end - start - 1, -1, -1):
                t = start + k
                sg = surrogate.derivative_(scratch.copy_(us[k]))
                ds = torch.add(grad_s[t], da, alpha=adapt) if adapt != 0.0 else grad_s[t].clone()
                if not detach_reset:
                    if subtract:  # ∂v/∂s = −(θ₀ + a_prev − v_reset)
                        level = a_prev[k] + (threshold - v_reset)
                        ds.addcmul_(level, dv, value=-1.0)
                    else:  # ∂v/∂s = v_reset − h
                        ds.addcmul_(torch.rsub(hs[k], v_reset), dv)
                dsg = ds.mul_(sg)
                if subtract:
                    da_new = torch.mul(da, rho).sub_(dsg).addcmul_(ss[k], dv, value=-1.0)
                    dh = torch.add(dv, dsg, out=dx[t])
                else:
                    da_new = torch.mul(da, rho).sub_(dsg)
                    dh = torch.addcmul(dv, dv, ss[k], value=-1.0).add_(dsg)
                    dx[t].copy_(dh)
                if dbeta is not None:
                    dbeta.addcmul_(dh, v_prev[k] - v_rest)
                dv, da = dh * beta_c, da_new
        dbeta_out = reduce_like(dbeta, beta) if dbeta is not None else None
        return (dx, dv, da, dbeta_out) + (None,) * 4


__all__ = ["DEFAULT_CHUNK", "ALIFScanFunction"]
