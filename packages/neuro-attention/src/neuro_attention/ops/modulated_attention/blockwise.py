"""Blockwise modulated attention for CPU: exact, O(T·block) memory, recomputing in the backward.

Queries are processed in blocks of ``block`` rows. Each block sees the whole (causal, windowed) key
range at once, so its softmax is exact in one pass; only ``out``, the row log-sum-exp and the
entropy are kept for the backward, which recomputes the block's probabilities. Peak extra memory is
a few ``[B, H, block, T]`` buffers instead of the reference's several ``[B, H, T, T]``. Keys that
every query of a block masks are skipped (half the work for causal attention).

Gradients (s = logits, p = softmax(s), H = entropy, lse = log Σ exp s, dP = dO·vᵀ):

    dS_ij = p_ij · (dP_ij − dO_i·o_i − dH_i · (s_ij − lse_i + H_i))

The precision β is folded into the query before the matmul (q' = β q / √D), so the logit gradient
w.r.t. β is a D-length dot product per row, never a ``[T, T]`` reduction.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

#: Logit written at masked positions: finite, so that 0·(masked logit) is 0 in the entropy terms,
#: and far enough below any real logit that exp underflows to exactly 0.
_MASKED = -1e30


def _key_range(i0: int, i1: int, t: int, causal: bool, window: int | None) -> tuple[int, int]:
    hi = i1 if causal else t
    lo = 0
    if window is not None:
        lo = max(0, i0 - window + 1)
        if not causal:
            hi = min(t, i1 + window - 1)
    return lo, hi


def _masked_spans(
    i0: int, i1: int, lo: int, hi: int, causal: bool, window: int | None
) -> list[tuple[int, int]]:
    """Absolute key column spans holding masked pairs for queries ``i0:i1`` (each ≤ block wide)."""
    spans = []
    if causal:
        spans.append((max(lo, i0 + 1), hi))
    if window is not None:
        spans.append((lo, min(hi, i1 - window)))
        if not causal:
            spans.append((max(lo, i0 + window), hi))
    return [(a, b) for a, b in spans if b > a]


@functools.lru_cache(maxsize=256)
def _pair_mask(
    n: int, width: int, offset: int, causal: bool, window: int | None, device: torch.device
) -> torch.Tensor:
    """``[n, width]`` bool, True where pair (i0 + r, c0 + c) is masked; ``offset = i0 − c0``.

    Masks depend on i − j only, so one tensor serves every block with the same geometry.
    """
    rel = (
        torch.arange(n, device=device)[:, None]
        - torch.arange(width, device=device)[None, :]
        + offset
    )
    bad = torch.zeros(n, width, dtype=torch.bool, device=device)
    if causal:
        bad |= rel < 0
    if window is not None:
        bad |= rel.abs() >= window
    return bad


def _band_cols(i0: int, i1: int, lo: int, hi: int, w: int) -> tuple[int, int]:
    """Key columns (absolute) that hold at least one pair with ``|i − j| < w``."""
    return max(lo, i0 - w + 1), min(hi, i1 + w - 1)


class _Ctx:
    """Per-call tensors in the blocked layout ``[B, H_kv, G, T, ·]`` (G = H / H_kv)."""

    def __init__(self, q, k, v, beta, kb, ga, gb, scale):  # type: ignore[no-untyped-def]
        b, t, h, d = q.shape
        hkv = k.shape[2]
        g = h // hkv
        self.shape = (b, t, h, hkv, g, d)
        self.q = q.float().permute(0, 2, 1, 3).reshape(b, hkv, g, t, d)
        self.k = k.float().permute(0, 2, 1, 3).contiguous()  # [B, H_kv, T, D]
        self.v = v.float().permute(0, 2, 1, 3).contiguous()
        qs = torch.full((b, hkv, g, t), scale, dtype=torch.float32, device=q.device)
        if beta is not None:
            qs = qs * beta.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        self.qscale = qs
        self.qp = self.q * qs[..., None]
        self.kb = None if kb is None else kb.float().permute(0, 2, 1).contiguous()  # [B, H_kv, T]
        self.ga = None if ga is None else ga.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        self.gb = None if gb is None else gb.float().permute(0, 2, 1).reshape(b, hkv, g, t)

    def logits(
        self,
        i0: int,
        i1: int,
        lo: int,
        hi: int,
        causal: bool,
        window: int | None,
        gate_w: int | None,
    ) -> torch.Tensor:
        """Masked logits ``[B, H_kv, G, n, L]`` for queries ``i0:i1`` and keys ``lo:hi``."""
        b, _, _, hkv, g, d = self.shape
        n, length = i1 - i0, hi - lo
        qb = self.qp[:, :, :, i0:i1].reshape(b, hkv, g * n, d)
        s = torch.matmul(qb, self.k[:, :, lo:hi].transpose(-1, -2)).view(b, hkv, g, n, length)
        if self.kb is not None:
            s.add_(self.kb[:, :, None, None, lo:hi])
        if self.ga is not None and self.gb is not None and gate_w is not None:
            c0, c1 = _band_cols(i0, i1, lo, hi, gate_w)
            if c1 > c0:
                s[..., c0 - lo : c1 - lo].add_(self._gate(i0, i1, c0, c1, gate_w, F.logsigmoid))
        for c0, c1 in _masked_spans(i0, i1, lo, hi, causal, window):
            bad = _pair_mask(i1 - i0, c1 - c0, i0 - c0, causal, window, s.device)
            s[..., c0 - lo : c1 - lo].masked_fill_(bad, _MASKED)
        return s

    def _gate(self, i0: int, i1: int, c0: int, c1: int, w: int, fn) -> torch.Tensor:  # type: ignore[no-untyped-def]
        assert self.ga is not None
        assert self.gb is not None
        x = fn(self.ga[..., i0:i1, None] + self.gb[..., None, c0:c1])
        if c0 <= i1 - w or c1 > i0 + w:  # some pair in the span is outside the band
            x.masked_fill_(_pair_mask(i1 - i0, c1 - c0, i0 - c0, False, w, x.device), 0.0)
        return x


def _forward(
    c: _Ctx, causal: bool, window: int | None, gate_w: int | None, entropy: bool, block: int
):
    b, t, _, hkv, g, d = c.shape
    out = torch.empty(b, hkv, g, t, d, dtype=torch.float32, device=c.q.device)
    lse = torch.empty(b, hkv, g, t, dtype=torch.float32, device=c.q.device)
    ent = torch.empty_like(lse) if entropy else None
    for i0 in range(0, t, block):
        i1 = min(t, i0 + block)
        lo, hi = _key_range(i0, i1, t, causal, window)
        s = c.logits(i0, i1, lo, hi, causal, window, gate_w)
        m = s.amax(-1, keepdim=True)
        s.sub_(m)
        p = s.exp()
        den = p.sum(-1, keepdim=True)
        n = i1 - i0
        o = torch.matmul(p.view(b, hkv, g * n, hi - lo), c.v[:, :, lo:hi]).view(b, hkv, g, n, d)
        out[:, :, :, i0:i1] = o / den
        log_den = den.log()
        lse[..., i0:i1] = (m + log_den).squeeze(-1)
        if ent is not None:
            ent[..., i0:i1] = (log_den - torch.linalg.vecdot(p, s)[..., None] / den).squeeze(-1)
    return out, lse, ent


def _backward(c: _Ctx, out, lse, ent, dout, dent, causal, window, gate_w, block):  # type: ignore[no-untyped-def]
    b, t, _, hkv, g, d = c.shape
    do = dout.float().permute(0, 2, 1, 3).reshape(b, hkv, g, t, d)
    corr = (do * out).sum(-1)  # dO_i·o_i
    de = None
    if dent is not None and ent is not None:
        de = dent.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        corr = corr + de * ent  # dS = p·(dP − dO·o − dH·(log p + H))
    dqp = torch.zeros_like(c.qp)
    dk = torch.zeros_like(c.k)
    dv = torch.zeros_like(c.v)
    dkb = torch.zeros(b, hkv, t, device=c.q.device) if c.kb is not None else None
    gated = c.ga is not None and gate_w is not None
    dga = torch.zeros_like(c.ga) if c.ga is not None and gated else None
    dgb = torch.zeros_like(c.gb) if c.gb is not None and gated else None
    for i0 in range(0, t, block):
        i1 = min(t, i0 + block)
        n = i1 - i0
        lo, hi = _key_range(i0, i1, t, causal, window)
        length = hi - lo
        logp = c.logits(i0, i1, lo, hi, causal, window, gate_w)
        logp.sub_(lse[..., i0:i1, None])
        p = logp.exp()
        do_b = do[:, :, :, i0:i1].reshape(b, hkv, g * n, d)
        ds = torch.matmul(do_b, c.v[:, :, lo:hi].transpose(-1, -2)).view(b, hkv, g, n, length)
        dv[:, :, lo:hi] += torch.matmul(p.view(b, hkv, g * n, length).transpose(-1, -2), do_b)
        ds.sub_(corr[..., i0:i1, None]).mul_(p)
        if de is not None:
            ds.addcmul_(logp.mul_(p), de[..., i0:i1, None], value=-1.0)
        ds2 = ds.view(b, hkv, g * n, length)
        dqp[:, :, :, i0:i1] = torch.matmul(ds2, c.k[:, :, lo:hi]).view(b, hkv, g, n, d)
        qb = c.qp[:, :, :, i0:i1].reshape(b, hkv, g * n, d)
        dk[:, :, lo:hi] += torch.matmul(ds2.transpose(-1, -2), qb)
        if dkb is not None:
            dkb[:, :, lo:hi] += ds.sum(dim=(2, 3))
        if dga is not None and dgb is not None and gate_w is not None:
            c0, c1 = _band_cols(i0, i1, lo, hi, gate_w)
            if c1 > c0:
                gs = c._gate(i0, i1, c0, c1, gate_w, lambda x: torch.sigmoid(-x))
                gs.mul_(ds[..., c0 - lo : c1 - lo])
                dga[..., i0:i1] += gs.sum(-1)
                dgb[..., c0:c1] += gs.sum(-2)
    dq = dqp * c.qscale[..., None]
    dqs = (dqp * c.q).sum(-1)  # ∂L/∂(β/√D) per row
    return dq, dk, dv, dqs, dkb, dga, dgb


def _to_bthd(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, hkv, g, t, d = x.shape
    return x.reshape(b, hkv * g, t, d).permute(0, 2, 1, 3).to(like.dtype)


def _to_bth(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    b, hkv, g, t = x.shape
    return x.reshape(b, hkv * g, t).permute(0, 2, 1).to(dtype)


class BlockwiseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, kb, ga, gb, causal, window, gate_w, entropy, block):  # type: ignore[override]
        scale = 1.0 / math.sqrt(q.shape[-1])
        c = _Ctx(q, k, v, beta, kb, ga, gb, scale)
        out, lse, ent = _forward(c, causal, window, gate_w, entropy, block)
        ctx.c, ctx.scale = c, scale
        ctx.meta = (causal, window, gate_w, block)
        ctx.dtypes = (
            q.dtype,
            None if beta is None else beta.dtype,
            None if kb is None else kb.dtype,
        )
        ctx.save_for_backward(out, lse, ent)
        o = _to_bthd(out, q)
        e = _to_bth(ent, q.dtype) if ent is not None else q.new_zeros(q.shape[:3])
        return o, e

    @staticmethod
    def backward(ctx, dout, dent):  # type: ignore[override]
        out, lse, ent = ctx.saved_tensors
        causal, window, gate_w, block = ctx.meta
        c: _Ctx = ctx.c
        dq, dk, dv, dqs, dkb, dga, dgb = _backward(
            c, out, lse, ent, dout, dent if ent is not None else None, causal, window, gate_w, block
        )
        qdt = ctx.dtypes[0]
        d_beta = _to_bth(dqs * ctx.scale, ctx.dtypes[1]) if ctx.needs_input_grad[3] else None
        d_kb = (
            dkb.permute(0, 2, 1).to(ctx.dtypes[2])
            if dkb is not None and ctx.needs_input_grad[4]
            else None
        )
        d_ga = _to_bth(dga, qdt) if dga is not None and ctx.needs_input_grad[5] else None
        d_gb = _to_bth(dgb, qdt) if dgb is not None and ctx.needs_input_grad[6] else None
        return (
            _to_bthd(dq, dout),
            dk.permute(0, 2, 1, 3).to(qdt),
            dv.permute(0, 2, 1, 3).to(qdt),
            d_beta,
            d_kb,
            d_ga,
            d_gb,
            None,
            None,
            None,
            None,
            None,
        )


def modulated_attention_blockwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    window: int | None = None,
    query_scale: torch.Tensor | None = None,
    key_bias: torch.Tensor | None = None,
    pair_gate: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    head_gain: torch.Tensor | None = None,
    return_entropy: bool = True,
    block: int = 128,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Blockwise CPU path; same contract as the reference (inputs are assumed validated).

    Computes in fp32 whatever the input dtype and casts back. ``block`` is the number of query
    rows per step (memory ∝ B·H·block·T).

    Returns:
        ``(out [B, T, H, D], entropy [B, T, H] or None)``.
    """
    ga = gb = None
    gate_w = None
    if pair_gate is not None:
        ga, gb, gate_w = pair_gate
    out, ent = BlockwiseAttention.apply(
        q, k, v, query_scale, key_bias, ga, gb, causal, window, gate_w, return_entropy, block
    )
    if head_gain is not None:
        out = out * head_gain[..., None]
    return out, (ent if return_entropy else None)
