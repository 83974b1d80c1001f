"""Multi-step LIF with a hand-written backward: spikes out, membranes recomputed in backward.

The forward runs the recursion of :mod:`.reference` without autograd and saves only the
membrane at the start of every chunk of ``chunk`` steps (``T/chunk`` checkpoints). The backward
walks the chunks from last to first, recomputes the chunk's charged membranes ``h_t`` from its
checkpoint, then runs the adjoint recursion (u_t = h_t − θ, σ' the surrogate derivative):

    dv_T = ∂L/∂v_T + ∂L/∂m_T
    ds_t = ∂L/∂s_t − ρ·dv_t·[not detach]               (subtract, ρ = θ − v_reset)
    dh_t = dv_t + ds_t·σ'(u_t)
    ds_t = ∂L/∂s_t + (v_reset − h_t)·dv_t·[not detach]  (hard)
    dh_t = dv_t·(1 − s_t) + ds_t·σ'(u_t)
    ∂L/∂x_t = dh_t,   ∂L/∂β += Σ dh_t·(v_{t−1} − v_rest),   dv_{t−1} = β·dh_t + ∂L/∂m_{t−1}

Saved memory is ``O(T/chunk + chunk)`` membranes instead of the ``O(T)`` intermediates autograd
keeps for the reference. The chunk step functions are plain torch code: eager by default, or
``torch.compile``d (``compiled=True``), which fuses each chunk into one loop over neurons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from neuro_spiking._common import reduce_like
from neuro_spiking.ops.lif_scan.reference import LIFConstants


def _forward_chunk(
    x: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    leak_bias: torch.Tensor,
    threshold: float,
    v_reset: float,
    subtract: bool,
    store_membrane: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Forward over ``x [K, ...]`` from ``v``; returns ``(spikes, trace or None, v_K)``.

    Written for ``torch.compile`` (the loop unrolls into one fused kernel)."""
    spikes, trace = [], []
    for t in range(x.shape[0]):
        _, s, v = _step(v, x[t], beta, leak_bias, threshold, threshold - v_reset, v_reset, subtract)
        spikes.append(s)
        if store_membrane:
            trace.append(v)
    return torch.stack(spikes), (torch.stack(trace) if store_membrane else None), v


def _charge(
    v: torch.Tensor,
    beta: torch.Tensor,
    x_t: torch.Tensor,
    leak_bias: torch.Tensor | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``h = β·v + x_t (+ leak bias)``: multiply, then add (no FMA), so the membrane is
    bit-identical to the reference and peers."""
    h = torch.mul(v, beta, out=out) if out is not None else torch.mul(v, beta)
    h += x_t
    if leak_bias is not None:
        h += leak_bias
    return h


def _reset(
    h: torch.Tensor, s: torch.Tensor, rho: float, v_reset: float, subtract: bool
) -> torch.Tensor:
    """Post-spike membrane with ``s ∈ {0, 1}`` as floats: ``h − ρ·s`` or ``h − h·s + v_reset·s``.

    The hard reset is exact: ``h − h·1 = 0`` (a fused multiply-add rounds once) and
    ``h − h·0 = h``. Only float arithmetic: on CPU, comparisons producing bool tensors and
    ``masked_fill``/``where`` cost several times an elementwise float op
    (``python benchmarks/scripts/cpu_op_costs.py``)."""
    if subtract:
        return torch.sub(h, s, alpha=rho)
    v = torch.addcmul(h, h, s, value=-1.0)
    if v_reset != 0.0:
        v.add_(s, alpha=v_reset)
    return v


def _bias_or_none(leak_bias: torch.Tensor) -> torch.Tensor | None:
    """The leak bias ``(1 − β)·v_rest``, or None when it is a zero scalar (skip the add)."""
    return leak_bias if bool(leak_bias.ndim) or bool(leak_bias != 0) else None


def _forward_inplace(
    x: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    leak_bias: torch.Tensor,
    threshold: float,
    v_reset: float,
    subtract: bool,
    spikes: torch.Tensor,
    trace: torch.Tensor | None,
) -> torch.Tensor:
    """Eager forward of one chunk writing spikes (and the trace) in place; returns ``v_K``."""
    rho = threshold - v_reset
    bias = _bias_or_none(leak_bias)
    for t in range(x.shape[0]):
        v = _step(v, x[t], beta, bias, threshold, rho, v_reset, subtract, spikes[t])[2]
        if trace is not None:
            trace[t].copy_(v)
    return v


def _step(
    v: torch.Tensor,
    x_t: torch.Tensor,
    beta: torch.Tensor,
    bias: torch.Tensor | None,
    threshold: float,
    rho: float,
    v_reset: float,
    subtract: bool,
    s_out: torch.Tensor | None = None,
    h_out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step ``(h, s, v_t)`` of every fused path: four float ops (charge ×2, threshold into a
    float spike, reset). Eager callers pass ``s_out`` (and ``h_out``) to write in place; the
    compiled chunk functions allocate, which ``torch.compile`` fuses."""
    h = _charge(v, beta, x_t, bias, out=h_out)
    s = torch.ge(h, threshold, out=s_out) if s_out is not None else (h >= threshold).to(h.dtype)
    return h, s, _reset(h, s, rho, v_reset, subtract)


def _backward_chunk(
    x: torch.Tensor,
    v_start: torch.Tensor,
    grad_s: torch.Tensor,
    grad_m: torch.Tensor | None,
    dv: torch.Tensor,
    beta: torch.Tensor,
    leak_bias: torch.Tensor,
    c: LIFConstants,
    want_beta: bool,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recompute the chunk's membranes from ``v_start``, then run the adjoint backwards.

    With ``out`` (eager use) each ``dx_t`` is written into ``out[t]`` instead of stacked.

    ``dv`` is the gradient of the membrane after the chunk's last step. Returns
    ``(dx [K, ...], dv before the chunk, dbeta partial [B, ...] summed over the chunk)``."""
    v_rest, threshold, v_reset, reset, detach_reset, surrogate = c
    subtract = reset == "subtract"
    hs, v_prev = [], []
    v = v_start
    for t in range(x.shape[0]):
        if want_beta:
            v_prev.append(v)
        h, _, v = _step(v, x[t], beta, leak_bias, threshold, threshold - v_reset, v_reset, subtract)
        hs.append(h)
    dxs = []
    dbeta = torch.zeros_like(dv) if want_beta else dv.new_zeros(())
    for k in range(x.shape[0] - 1, -1, -1):
        hk = hs[k]
        sg = surrogate.derivative(hk - threshold)
        if subtract:
            ds = grad_s[k] if detach_reset else grad_s[k] - (threshold - v_reset) * dv
            dh = dv + ds * sg
        else:
            fired = hk >= threshold
            ds = grad_s[k] if detach_reset else grad_s[k] + (v_reset - hk) * dv
            dh = torch.where(fired, 0.0, dv) + ds * sg
        if out is not None:
            out[k].copy_(dh)
        else:
            dxs.append(dh)
        if want_beta:
            dbeta = dbeta + dh * (v_prev[k] - v_rest)
        dv = dh * beta
        if grad_m is not None and k > 0:
            dv = dv + grad_m[k - 1]
    if out is not None:
        return out, dv, dbeta
    dxs.reverse()
    return torch.stack(dxs), dv, dbeta


def _backward_inplace(
    x: torch.Tensor,
    v_start: torch.Tensor,
    grad_s: torch.Tensor,
    grad_m: torch.Tensor | None,
    dv: torch.Tensor,
    beta: torch.Tensor,
    leak_bias: torch.Tensor,
    c: LIFConstants,
    want_beta: bool,
    out: torch.Tensor,
    work: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eager twin of :func:`_backward_chunk` with few kernel launches per step.

    The recompute mirrors :func:`_forward_inplace` bit for bit and keeps the chunk's charged
    membranes and spikes in ``[K, ...]`` buffers; the adjoint then works on one step's slice at a
    time (a working set that stays in cache), evaluates the surrogate in place on a scratch
    buffer (:meth:`~neuro_spiking.surrogates.Surrogate.derivative_`) and writes ``dx_t`` into
    ``out[t]`` with the op that computes it. ``work``: scratch buffers reused across chunks
    (fresh memory costs page faults on first touch): ``[≥K, ...]`` for the membranes and for the
    spikes, and one step's ``[...]`` for the surrogate. Float arithmetic only (no bool masks, see
    :func:`_reset`)."""
    v_rest, threshold, v_reset, reset, detach_reset, surrogate = c
    subtract = reset == "subtract"
    K = x.shape[0]
    rho = threshold - v_reset
    bias = _bias_or_none(leak_bias)
    if work is None:
        work = (torch.empty_like(x), torch.empty_like(x), torch.empty_like(x[0]))
    hs, ss, scratch = work[0][:K], work[1][:K], work[2]
    v_prev = []
    v = v_start
    for t in range(K):
        if want_beta:
            v_prev.append(v)
        v = _step(v, x[t], beta, bias, threshold, rho, v_reset, subtract, ss[t], hs[t])[2]
    dbeta = torch.zeros_like(dv) if want_beta else dv.new_zeros(())
    for k in range(K - 1, -1, -1):
        sg = surrogate.derivative_(torch.sub(hs[k], threshold, out=scratch))
        if detach_reset:
            ds = grad_s[k]
        elif subtract:
            ds = torch.add(grad_s[k], dv, alpha=-rho)
        else:  # ∂v/∂s = v_reset − h
            ds = torch.addcmul(grad_s[k], torch.rsub(hs[k], v_reset), dv)
        if not subtract:  # the membrane survives the step only without a spike
            dv = torch.addcmul(dv, dv, ss[k], value=-1.0)
        dh = torch.addcmul(dv, ds, sg, out=out[k])
        if want_beta:
            dbeta = torch.addcmul(dbeta, dh, v_prev[k] - v_rest)
        dv = dh * beta
        if grad_m is not None and k > 0:
            dv += grad_m[k - 1]
    return out, dv, dbeta


_compiled_cache: dict[str, Callable[..., Any]] = {}


def _get(name: str, compiled: bool) -> Callable[..., Any]:
    fns: dict[str, Callable[..., Any]] = {"forward": _forward_chunk, "backward": _backward_chunk}
    fn = fns[name]
    if not compiled:
        return fn
    if name not in _compiled_cache:
        _compiled_cache[name] = torch.compile(fn, dynamic=False)
    return _compiled_cache[name]


def _chunked_forward(
    step: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    chunk: int,
    spikes: torch.Tensor,
) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Run ``state = step(*state, x[t], spikes[t])`` over all steps (the step writes the spike);
    return the state at the start of every chunk (flattened) and the final state. Shared by the
    two-state neurons (adaptive LIF, GIF)."""
    checkpoints: list[torch.Tensor] = []
    for start in range(0, x.shape[0], chunk):
        checkpoints += state
        for t in range(start, min(start + chunk, x.shape[0])):
            state = step(*state, x[t], spikes[t])
    return checkpoints, state


class LIFScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        v0: torch.Tensor,
        beta: torch.Tensor,
        c: LIFConstants,
        store_membrane: bool,
        chunk: int,
        compiled: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = x.shape[0]
        subtract = c.reset == "subtract"
        beta_c = beta.to(x.dtype)
        leak_bias = _leak_bias(beta_c, c.v_rest)
        spikes = torch.empty_like(x)
        trace = torch.empty_like(x) if store_membrane else None
        checkpoints = []
        v = v0.to(x.dtype)
        fwd = _get("forward", True) if compiled else None
        for start in range(0, T, chunk):
            checkpoints.append(v)
            end = min(start + chunk, T)
            if fwd is not None:
                s_c, m_c, v = fwd(
                    x[start:end],
                    v,
                    beta_c,
                    leak_bias,
                    c.threshold,
                    c.v_reset,
                    subtract,
                    store_membrane,
                )
                spikes[start:end] = s_c
                if trace is not None:
                    trace[start:end] = m_c
            else:
                v = _forward_inplace(
                    x[start:end],
                    v,
                    beta_c,
                    leak_bias,
                    c.threshold,
                    c.v_reset,
                    subtract,
                    spikes[start:end],
                    None if trace is None else trace[start:end],
                )
        ctx.save_for_backward(x, beta, *checkpoints)
        ctx.args = (c, chunk, compiled)
        ctx.store_membrane = store_membrane
        if trace is None:
            trace = x.new_zeros(())
            ctx.mark_non_differentiable(trace)
        return spikes, trace, v.clone() if T == 0 else v

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any,
        grad_s: torch.Tensor | None,
        grad_m: torch.Tensor | None,
        grad_v: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, ...]:
        x, beta, *checkpoints = ctx.saved_tensors
        c, chunk, compiled = ctx.args
        T = x.shape[0]
        beta_c = beta.to(x.dtype)
        leak_bias = _leak_bias(beta_c, c.v_rest)
        want_beta = ctx.needs_input_grad[2]
        grad_s = torch.zeros_like(x) if grad_s is None else grad_s
        gm_all: torch.Tensor | None = grad_m if ctx.store_membrane else None
        dv = torch.zeros_like(x[0]) if grad_v is None else grad_v.to(x.dtype)
        if gm_all is not None and T > 0:
            dv = dv + gm_all[T - 1]
        dx = torch.empty_like(x)
        dbeta = torch.zeros_like(x[0]) if want_beta else None
        bwd: Callable[..., Any] = _get("backward", True) if compiled else _backward_inplace
        extra: dict[str, Any] = {}
        if not compiled:  # one chunk's membranes and spikes, one step's scratch: reused
            k = min(chunk, T)
            extra["work"] = (
                x.new_empty((k, *x.shape[1:])),
                x.new_empty((k, *x.shape[1:])),
                x.new_empty(x.shape[1:]),
            )
        starts = list(range(0, T, chunk))
        for idx in range(len(starts) - 1, -1, -1):
            start = starts[idx]
            end = min(start + chunk, T)
            gm = gm_all[start:end] if gm_all is not None else None
            dx_chunk, dv, db = bwd(
                x[start:end],
                checkpoints[idx],
                grad_s[start:end],
                gm,
                dv,
                beta_c,
                leak_bias,
                c,
                want_beta,
                None if compiled else dx[start:end],
                **extra,
            )
            # the membrane before this chunk is also the trace output of step start − 1
            if gm_all is not None and start > 0:
                dv = dv + gm_all[start - 1]
            if compiled:
                dx[start:end] = dx_chunk
            if dbeta is not None:
                dbeta += db
        dbeta_out = reduce_like(dbeta, beta) if dbeta is not None else None
        return (dx, dv, dbeta_out, None, None, None, None)


def _leak_bias(beta: torch.Tensor, v_rest: float) -> torch.Tensor:
    """``(1 − β)·v_rest``, a zero scalar when ``v_rest = 0``."""
    return ((1 - beta) * v_rest) if v_rest != 0 else beta.new_zeros(())
