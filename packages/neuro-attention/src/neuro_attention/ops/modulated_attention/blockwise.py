"""Blockwise modulated attention for CPU: exact, O(T·block) memory, recomputing in the backward.

Queries are processed in blocks of ``block`` rows. Each block sees the whole (causal, windowed) key
range at once, so its softmax is exact in one pass; only ``out``, the row log-sum-exp and the
entropy are kept for the backward, which recomputes the block's probabilities. Peak extra memory is
a few ``[B, H, block, T]`` buffers instead of the reference's several ``[B, H, T, T]``. Keys that
every query of a block masks are skipped (half the work for causal attention).

Under ``create_graph=True`` (double backward) the backward differentiates the materialized spec
instead (:func:`~neuro_attention.ops.modulated_attention.reference.reference_vjp`): exact second
derivatives at the spec's memory.

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

from neuro_attention.ops.modulated_attention.reference import apply_fused, reference_vjp

#: Logit written at masked positions: finite, so that 0·(masked logit) is 0 in the entropy terms
#: (also after multiplication by an upstream entropy gradient), and far enough below any real
#: logit that exp underflows to exactly 0.
_MASKED = -1e20


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


#: fp32 elements of one ``[B, H, rows, keys]`` tile in the automatic schedule (16 MiB).
_TILE_ELEMENTS = 2**22


def auto_block(b: int, h: int, t: int) -> int:
    """Query rows per step: the largest power of two ≤ 512 whose ``[B, H, block, T]`` fp32 tile
    fits in 16 MiB (few, large tensor ops amortize per-op overhead; the tile bounds memory)."""
    block = 512
    while block > 16 and b * h * block * t > _TILE_ELEMENTS:
        block //= 2
    return block


def row_blocks(t: int, block: int) -> tuple[tuple[int, int], ...]:
    """Query blocks ``(i0, i1)`` of ``block`` rows (the last one shorter).

    Equal blocks measured faster than blocks grown to fill a fixed tile budget (larger early
    causal tiles leave the cache), so the schedule stays uniform.
    """
    return tuple((i0, min(t, i0 + block)) for i0 in range(0, t, block))


class _Ctx:
    """Per-call tensors in the blocked layout ``[B, H_kv, G, T, ·]`` (G = H / H_kv).

    Queries and keys carry two extra columns so that the key bias and the row log-sum-exp come out
    of the matmul instead of costing elementwise passes over the ``[block, T]`` tile:
    ``[q', 1, −lse_i] · [k, c_j, 1] = q'·k + c_j − lse_i`` (q' = β q / √D).
    """

    def __init__(self, q, k, v, beta, kb, ga, gb, scale, pad):  # type: ignore[no-untyped-def]
        b, t, h, d = q.shape
        tk, hkv = k.shape[1], k.shape[2]
        g = h // hkv
        self.shape = (b, t, h, hkv, g, d)
        self.tk = tk
        # query i sits at absolute position off + i (decoding: the last T_q positions)
        self.off = tk - t
        # [B, 1, 1, 1, T_k] True where key j is padding, or None
        self.pad = None if pad is None else (~pad)[:, None, None, None, :]
        self.q = q.float().permute(0, 2, 1, 3).reshape(b, hkv, g, t, d)
        qs = torch.full((b, hkv, g, t), scale, dtype=torch.float32, device=q.device)
        if beta is not None:
            qs = qs * beta.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        self.qscale = qs
        self.qa = torch.empty(b, hkv, g, t, d + 2, dtype=torch.float32, device=q.device)
        torch.mul(self.q, qs[..., None], out=self.qa[..., :d])
        self.qa[..., d] = 1.0
        self.qa[..., d + 1] = 0.0
        self.ka = torch.empty(b, hkv, tk, d + 2, dtype=torch.float32, device=q.device)
        self.ka[..., :d] = k.permute(0, 2, 1, 3)
        self.ka[..., d] = 0.0 if kb is None else kb.permute(0, 2, 1)
        self.ka[..., d + 1] = 1.0
        self.has_kb = kb is not None
        self.va = torch.empty(b, hkv, tk, d + 1, dtype=torch.float32, device=q.device)
        self.va[..., :d] = v.permute(0, 2, 1, 3)
        self.va[..., d] = 1.0
        self.ga = None if ga is None else ga.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        self.gb = None if gb is None else gb.float().permute(0, 2, 1).reshape(b, hkv, g, tk)
        self.last_gate: tuple[int, int, torch.Tensor] | None = None

    def logits(
        self,
        i0: int,
        i1: int,
        lo: int,
        hi: int,
        causal: bool,
        window: int | None,
        gate_w: int | None,
        minus_lse: bool,
    ) -> torch.Tensor:
        """Masked logits ``[B, H_kv, G, n, L]`` (minus the row lse when ``minus_lse``).

        ``i0:i1`` index the queries; ``lo:hi`` and the masks use absolute positions.
        """
        b, _, _, hkv, g, d = self.shape
        n, length = i1 - i0, hi - lo
        a0, a1 = i0 + self.off, i1 + self.off
        cols = d + 2 if minus_lse else d + 1
        qb = self.qa[:, :, :, i0:i1, :cols].reshape(b, hkv, g * n, cols)
        s = torch.matmul(qb, self.ka[:, :, lo:hi, :cols].transpose(-1, -2)).view(
            b, hkv, g, n, length
        )
        self.last_gate = None
        if self.ga is not None and self.gb is not None and gate_w is not None:
            c0, c1 = _band_cols(a0, a1, lo, hi, gate_w)
            if c1 > c0:
                lg = self._log_gate(i0, i1, c0, c1, gate_w)
                s[..., c0 - lo : c1 - lo].add_(lg)
                self.last_gate = (c0, c1, lg)
        for c0, c1 in _masked_spans(a0, a1, lo, hi, causal, window):
            bad = _pair_mask(n, c1 - c0, a0 - c0, causal, window, s.device)
            s[..., c0 - lo : c1 - lo].masked_fill_(bad, _MASKED)
        if self.pad is not None:
            # padded keys are masked except for the query's own position
            not_own = _pair_mask(n, length, a0 - lo, False, 1, s.device)
            s.masked_fill_(self.pad[..., lo:hi] & not_own, _MASKED)
        return s

    def _log_gate(self, i0: int, i1: int, c0: int, c1: int, w: int) -> torch.Tensor:
        """log σ(a_i + b_j) on keys ``c0:c1``, 0 for pairs with ``|i − j| ≥ w``."""
        assert self.ga is not None
        assert self.gb is not None
        # log σ(x) = −softplus(−x), in place: no extra buffer (F.logsigmoid keeps one)
        lg = F.softplus((self.ga[..., i0:i1, None] + self.gb[..., None, c0:c1]).neg_()).neg_()
        n = i1 - i0
        a0, a1 = i0 + self.off, i1 + self.off
        # pairs outside the band sit in the first and last ≤ n columns of the span
        for e0, e1 in ((c0, min(c1, a1 - w)), (max(c0, a0 + w), c1)):
            if e1 > e0:
                bad = _pair_mask(n, e1 - e0, a0 - e0, False, w, lg.device)
                lg[..., e0 - c0 : e1 - c0].masked_fill_(bad, 0.0)
        return lg


def _forward(
    c: _Ctx,
    causal: bool,
    window: int | None,
    gate_w: int | None,
    entropy: bool,
    rows: tuple[tuple[int, int], ...],
):  # type: ignore[no-untyped-def]
    b, t, _, hkv, g, d = c.shape
    out = torch.empty(b, hkv, g, t, d, dtype=torch.float32, device=c.q.device)
    ent = torch.empty(b, hkv, g, t, dtype=torch.float32, device=c.q.device) if entropy else None
    for i0, i1 in rows:
        n = i1 - i0
        lo, hi = _key_range(i0 + c.off, i1 + c.off, c.tk, causal, window)
        s = c.logits(i0, i1, lo, hi, causal, window, gate_w, minus_lse=False)
        c.last_gate = None  # only the backward reuses the gate tile
        p = torch.softmax(s, dim=-1)
        # lse = m − log p(argmax): one max over s and one over p instead of a separate logsumexp
        lse = s.amax(dim=-1) - p.amax(dim=-1).log()
        pv = p.view(b, hkv, g * n, hi - lo)
        out[:, :, :, i0:i1] = torch.matmul(pv, c.va[:, :, lo:hi, :d]).view(b, hkv, g, n, d)
        c.qa[:, :, :, i0:i1, d + 1] = -lse
        if ent is not None:
            ent[..., i0:i1] = lse - torch.linalg.vecdot(p, s)
    return out, ent


def _backward(c: _Ctx, out, ent, dout, dent, causal, window, gate_w, rows):  # type: ignore[no-untyped-def]
    b, t, _, hkv, g, d = c.shape
    doa = torch.empty(b, hkv, g, t, d + 1, dtype=torch.float32, device=c.q.device)
    doa[..., :d] = dout.float().permute(0, 2, 1, 3).reshape(b, hkv, g, t, d)
    corr = (doa[..., :d] * out).sum(-1)  # dO_i·o_i
    de = None
    if dent is not None and ent is not None:
        de = dent.float().permute(0, 2, 1).reshape(b, hkv, g, t)
        corr = corr + de * ent  # dS = p·(dP − dO·o − dH·(log p + H))
    doa[..., d] = -corr
    dqp = torch.empty(b, hkv, g, t, d, dtype=torch.float32, device=c.q.device)
    dka = torch.zeros(b, hkv, c.tk, d + 1, dtype=torch.float32, device=c.q.device)  # [dk, dc]
    dv = torch.zeros(b, hkv, c.tk, d, dtype=torch.float32, device=c.q.device)
    gated = c.ga is not None and gate_w is not None
    dga = torch.zeros_like(c.ga) if c.ga is not None and gated else None
    dgb = torch.zeros_like(c.gb) if c.gb is not None and gated else None
    for i0, i1 in rows:
        n = i1 - i0
        lo, hi = _key_range(i0 + c.off, i1 + c.off, c.tk, causal, window)
        length = hi - lo
        logp = c.logits(i0, i1, lo, hi, causal, window, gate_w, minus_lse=True)
        p = logp.exp()
        do_b = doa[:, :, :, i0:i1].reshape(b, hkv, g * n, d + 1)
        # [dO, −corr]·[v, 1] = dP − corr
        ds = torch.matmul(do_b, c.va[:, :, lo:hi].transpose(-1, -2)).view(b, hkv, g, n, length)
        p2 = p.view(b, hkv, g * n, length)
        dv[:, :, lo:hi] += torch.matmul(p2.transpose(-1, -2), do_b[..., :d])
        if de is not None:
            ds.addcmul_(logp, de[..., i0:i1, None], value=-1.0)
        ds.mul_(p)
        del p, p2, logp  # free the tiles before the gate gradient allocates its own
        ds2 = ds.view(b, hkv, g * n, length)
        dqp[:, :, :, i0:i1] = torch.matmul(ds2, c.ka[:, :, lo:hi, :d]).view(b, hkv, g, n, d)
        qb = c.qa[:, :, :, i0:i1, : d + 1].reshape(b, hkv, g * n, d + 1)
        dka[:, :, lo:hi] += torch.matmul(ds2.transpose(-1, -2), qb)
        if dga is not None and dgb is not None and c.last_gate is not None:
            c0, c1, lg = c.last_gate
            # ∂ log σ(x)/∂x = σ(−x) = −expm1(log σ(x)); 0 outside the band since lg = 0 there
            gs = torch.expm1(lg).mul_(ds[..., c0 - lo : c1 - lo])
            dga[..., i0:i1] -= gs.sum(-1)
            dgb[..., c0:c1] -= gs.sum(-2)
        c.last_gate = None
    dq = dqp * c.qscale[..., None]
    dqs = (dqp * c.q).sum(-1)  # ∂L/∂(β/√D) per row
    dkb = dka[..., d] if c.has_kb else None
    return dq, dka[..., :d], dv, dqs, dkb, dga, dgb


def _to_bthd(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, hkv, g, t, d = x.shape
    return x.reshape(b, hkv * g, t, d).permute(0, 2, 1, 3).to(like.dtype)


def _to_bth(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    b, hkv, g, t = x.shape
    return x.reshape(b, hkv * g, t).permute(0, 2, 1).to(dtype)


class BlockwiseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, kb, ga, gb, pad, causal, window, gate_w, entropy, rows):  # type: ignore[override]
        scale = 1.0 / math.sqrt(q.shape[-1])
        c = _Ctx(q, k, v, beta, kb, ga, gb, scale, pad)
        out, ent = _forward(c, causal, window, gate_w, entropy, rows)
        # the backward rebuilds the fp32 blocked copies from the inputs (saved anyway for double
        # backward) instead of keeping both alive; only the row −lse column is kept
        neg_lse = c.qa[..., -1].clone()
        del c
        ctx.scale = scale
        ctx.meta = (causal, window, gate_w, rows)
        ctx.dtypes = (
            q.dtype,
            None if beta is None else beta.dtype,
            None if kb is None else kb.dtype,
        )
        ctx.save_for_backward(out, ent, neg_lse, q, k, v, beta, kb, ga, gb, pad)
        o = _to_bthd(out, q)
        e = _to_bth(ent, q.dtype) if ent is not None else q.new_zeros(q.shape[:3])
        return o, e

    @staticmethod
    def backward(ctx, dout, dent):  # type: ignore[override]
        out, ent, neg_lse, *inputs, pad = ctx.saved_tensors
        causal, window, gate_w, rows = ctx.meta
        if torch.is_grad_enabled():
            # create_graph=True: the formulas below are not differentiable again; differentiate
            # the spec instead so that second derivatives are exact
            grads = reference_vjp(
                tuple(inputs),
                tuple(ctx.needs_input_grad[:7]),
                dout,
                dent if ent is not None else None,
                causal=causal,
                window=window,
                gate_w=gate_w,
                key_padding_mask=pad,
            )
            return (*grads, None, None, None, None, None, None)
        q, k, v, beta, kb, ga, gb = inputs
        c = _Ctx(q, k, v, beta, kb, ga, gb, ctx.scale, pad)
        c.qa[..., -1] = neg_lse
        del neg_lse
        dq, dk, dv, dqs, dkb, dga, dgb = _backward(
            c, out, ent, dout, dent if ent is not None else None, causal, window, gate_w, rows
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
    key_padding_mask: torch.Tensor | None = None,
    return_entropy: bool = True,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Blockwise CPU path; same contract as the reference (inputs are assumed validated).

    Decoding (``T_q < T_k``: queries are the last ``T_q`` positions) and ``key_padding_mask``
    (``[B, T_k]`` bool, True for real keys; a query always sees itself) as in the reference.

    Computes in fp32 whatever the input dtype and casts back. ``block`` is the number of query
    rows per step (memory ∝ B·H·block·T); None picks :func:`auto_block`.

    Returns:
        ``(out [B, T, H, D], entropy [B, T, H] or None)``.
    """
    b, t, h, _ = q.shape
    rows = row_blocks(t, block if block is not None else auto_block(b, h, k.shape[1]))
    return apply_fused(
        BlockwiseAttention,
        q,
        k,
        v,
        rows,
        causal=causal,
        window=window,
        query_scale=query_scale,
        key_bias=key_bias,
        pair_gate=pair_gate,
        head_gain=head_gain,
        key_padding_mask=key_padding_mask,
        return_entropy=return_entropy,
    )
