"""Modulated causal attention, the readable spec (materializes ``[B, H, T, T]``; use it for tests).

For query ``i``, query head ``h`` (key/value head ``κ(h) = h // (H / H_kv)``, grouped-query
attention) and key ``j``:

    s_ij = β_ih · (q_ih · k_jκ) / √D                      precision (NCN β, Aura temperatures)
         + c_jκ                                           key_bias (habituation, novelty)
         + 1[|i − j| < W] · log σ(a_ih + b_jh)             pair_gate (synaptic modulation matrix)
    s_ij = −∞  where j > i (causal), |i − j| ≥ window     masks
               or key j is padding (j ≠ i)
    p_ij = softmax_j(s_ij)
    o_ih = g_h · Σ_j p_ij v_jκ                            head_gain (synaptic scaling, NCN gain)
    H_ih = −Σ_j p_ij log p_ij                             entropy, in [0, log(#visible keys)]

Decoding: with ``T_q < T_k`` queries are the last ``T_q`` positions (query i sits at absolute
position ``T_k − T_q + i``; i and j above are absolute positions), as with a KV cache.

Sources: the pairwise synaptic modulation matrix S_ij = σ(w·[q_i; k_j] + c) of NeuroLlama's
``SynapticModulationMatrix`` (reference-systems §1.4) is linear inside the sigmoid, so
S_ij = σ(a_i + b_j) with a_i = w_q·q_i and b_j = w_k·k_j + c; adding log S_ij to the logits is the
published "multiply the probabilities by S", followed by the row renormalization the sketch forgot.
Pairs outside the gate window get S = 1 (ungated, **not** masked), as the published module leaves
keys outside its window unmodulated; use ``window`` to mask them instead. NCN's precision β
multiplies the query before SDPA's 1/√D (Mmorgan-ML, eq. 14) and its gain g multiplies the attention
output (§4.1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def visible_pairs(
    t_q: int,
    t_k: int,
    *,
    causal: bool,
    window: int | None,
    key_padding_mask: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor | None:
    """Which keys each query may see: ``[T_q, T_k]`` or ``[B, 1, T_q, T_k]`` bool, or None (all).

    Query i sits at absolute position ``T_k − T_q + i`` (the last ``T_q`` positions: decoding
    with a KV cache). Key j is visible when ``j ≤ i_abs`` (causal), ``|i_abs − j| < window``
    and ``key_padding_mask[b, j]``; a query always sees its own position, so that no row is empty
    (the convention of :class:`neuro_models.Llama` for left padding).
    """
    i = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    j = torch.arange(t_k, device=device)[None, :]
    allowed: torch.Tensor | None = None
    if causal:
        allowed = j <= i
    if window is not None:
        near = (i - j).abs() < window
        allowed = near if allowed is None else allowed & near
    if key_padding_mask is not None:
        keys = key_padding_mask[:, None, None, :]
        allowed = keys if allowed is None else allowed & keys
        allowed = allowed | (i == j)
    return allowed


def attention_probabilities_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    causal: bool = True,
    window: int | None = None,
    query_scale: torch.Tensor | None = None,
    key_bias: torch.Tensor | None = None,
    pair_gate: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The attention probabilities ``p [B, H, T_q, T_k]`` of the spec, in at least fp32.

    Args:
        q: ``[B, T_q, H, D]``; query i sits at absolute position ``T_k − T_q + i``.
        k: ``[B, T_k, H_kv, D]`` with ``H % H_kv == 0`` and ``T_k ≥ T_q``.
        causal: mask keys ``j > i``.
        window: mask keys with ``|i − j| ≥ window`` (sliding window), or None.
        query_scale: ``[B, T_q, H]`` β, or None (β = 1).
        key_bias: ``[B, T_k, H_kv]`` c, or None.
        pair_gate: ``(a [B, T_q, H], b [B, T_k, H], W)``, or None.
        key_padding_mask: ``[B, T_k]`` bool, True for real keys, or None; a query always sees
            its own position.
    """
    dt = torch.promote_types(q.dtype, torch.float32)
    t_q, h, d = q.shape[1:]
    t_k = k.shape[1]
    group = h // k.shape[2]
    qf = q.to(dt).transpose(1, 2)  # [B, H, T_q, D]
    kf = k.to(dt).repeat_interleave(group, dim=2).transpose(1, 2)
    s = qf @ kf.transpose(-1, -2) / math.sqrt(d)  # [B, H, T_q, T_k]
    if query_scale is not None:
        s = s * query_scale.to(dt).transpose(1, 2)[..., :, None]
    if key_bias is not None:
        c = key_bias.to(dt).repeat_interleave(group, dim=2).transpose(1, 2)
        s = s + c[..., None, :]
    if pair_gate is not None:
        a, b, w = pair_gate
        i = torch.arange(t_k - t_q, t_k, device=q.device)[:, None]
        j = torch.arange(t_k, device=q.device)[None, :]
        logit = a.to(dt).transpose(1, 2)[..., :, None] + b.to(dt).transpose(1, 2)[..., None, :]
        s = s + torch.where((i - j).abs() < w, F.logsigmoid(logit), 0.0)
    allowed = visible_pairs(
        t_q,
        t_k,
        causal=causal,
        window=window,
        key_padding_mask=key_padding_mask,
        device=q.device,
    )
    if allowed is not None:
        s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, dim=-1)


def modulated_attention_reference(
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialized modulated attention; see the module docstring for the equation.

    Args:
        q, k, causal, window, query_scale, key_bias, pair_gate, key_padding_mask: as in
            :func:`attention_probabilities_reference`.
        v: ``[B, T_k, H_kv, D]``.
        head_gain: ``[H]`` or ``[B, T_q, H]`` g, or None.

    Returns:
        ``(out [B, T_q, H, D], entropy [B, T_q, H])`` in ``q.dtype`` (computed in at least fp32).
    """
    p = attention_probabilities_reference(
        q,
        k,
        causal=causal,
        window=window,
        query_scale=query_scale,
        key_bias=key_bias,
        pair_gate=pair_gate,
        key_padding_mask=key_padding_mask,
    )
    group = q.shape[2] // k.shape[2]
    vf = v.to(p.dtype).repeat_interleave(group, dim=2).transpose(1, 2)
    out = (p @ vf).transpose(1, 2)  # [B, T, H, D]
    if head_gain is not None:
        out = out * head_gain.to(p.dtype)[..., None]
    # log p is −∞ at masked pairs; 0·log p is taken as 0 there (also in the gradient)
    log_p = torch.where(p > 0, p, 1.0).log()
    entropy = -(p * log_p).sum(-1).transpose(1, 2)
    return out.to(q.dtype), entropy.to(q.dtype)


def apply_fused(
    function: Any,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *extra: object,
    causal: bool = True,
    window: int | None = None,
    query_scale: torch.Tensor | None = None,
    key_bias: torch.Tensor | None = None,
    pair_gate: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    head_gain: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    return_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run a fast path's ``torch.autograd.Function`` (blockwise, Triton) with the reference's
    arguments (inputs assumed validated).

    The Function takes ``(q, k, v, β, c, a, b, key_padding_mask, causal, window, W, entropy,
    *extra)`` and returns ``(out without g, entropy)``; the head gain g multiplies the output
    here, outside the Function (one elementwise op, autograd handles it).

    Returns:
        ``(out [B, T_q, H, D], entropy [B, T_q, H] or None)``.
    """
    ga = gb = gate_w = None
    if pair_gate is not None:
        ga, gb, gate_w = pair_gate
    out, ent = function.apply(
        q,
        k,
        v,
        query_scale,
        key_bias,
        ga,
        gb,
        key_padding_mask,
        causal,
        window,
        gate_w,
        return_entropy,
        *extra,
    )
    if head_gain is not None:
        out = out * head_gain[..., None]
    return out, (ent if return_entropy else None)


def reference_vjp(
    inputs: tuple[torch.Tensor | None, ...],
    needs_grad: tuple[bool, ...],
    dout: torch.Tensor,
    dent: torch.Tensor | None,
    *,
    causal: bool,
    window: int | None,
    gate_w: int | None,
    key_padding_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """Differentiable vector-Jacobian product of the spec, for double backward of the fast paths.

    The blockwise and Triton backwards compute ``∂L/∂inputs`` with hand-written formulas that
    autograd cannot differentiate again. Under ``create_graph=True`` they call this instead: it
    recomputes the materialized spec from the original inputs and differentiates it with
    ``create_graph=True``, so second derivatives (gradient penalties, Hessian-vector products) are
    exact, at the spec's ``[B, H, T, T]`` memory.

    Args:
        inputs: ``(q, k, v, query_scale, key_bias, gate_a, gate_b)`` as given to the fast path.
        needs_grad: which of ``inputs`` need a gradient (``ctx.needs_input_grad``).
        dout: ``[B, T, H, D]`` upstream gradient of the output.
        dent: ``[B, T, H]`` upstream gradient of the entropy, or None.
        causal, window, gate_w, key_padding_mask: as in :func:`modulated_attention_reference`.

    Returns:
        One gradient (or None) per entry of ``inputs``.
    """
    q, k, v, beta, kb, ga, gb = inputs
    assert q is not None
    assert k is not None
    assert v is not None
    pair = None if ga is None or gb is None or gate_w is None else (ga, gb, gate_w)
    out, ent = modulated_attention_reference(
        q,
        k,
        v,
        causal=causal,
        window=window,
        query_scale=beta,
        key_bias=kb,
        pair_gate=pair,
        key_padding_mask=key_padding_mask,
    )
    outs, ups = [out], [dout]
    if dent is not None:
        outs.append(ent)
        ups.append(dent)
    wrt = [i for i, (x, n) in enumerate(zip(inputs, needs_grad)) if n and x is not None]
    grads = torch.autograd.grad(
        outs,
        [inputs[i] for i in wrt],  # type: ignore[misc,arg-type]
        ups,
        create_graph=True,
        allow_unused=True,
    )
    result: list[torch.Tensor | None] = [None] * len(inputs)
    for i, g in zip(wrt, grads):
        result[i] = g
    return tuple(result)
