"""``modulated_attention``: causal attention with precision, key bias, pair gate, gain and entropy.

One dispatcher; see :mod:`.reference` for the equation. Backends:

``"reference"``  the materialized spec (``[B, H, T, T]`` memory).
``"sdpa"``       ``F.scaled_dot_product_attention`` when the features allow it: no ``key_bias``,
                 ``pair_gate``, ``window`` or entropy (β is folded into q, g multiplies the output;
                 decoding and padding become a boolean ``attn_mask``).
``"blockwise"``  the exact CPU path with O(T·block) memory and a recomputing backward.
``"triton"``     the flash-style kernel (CUDA, or the CPU interpreter in tests).
``"auto"``       ``"sdpa"`` where it applies, else ``"triton"`` on CUDA and ``"blockwise"`` on CPU
                 (``"reference"`` while ``torch.compile`` traces, which fuses it).

Finiteness checks of the modulation inputs follow :mod:`neuro_core.validation`: skipped under
``torch.compile`` and switchable off (``NEURO_FINITE_CHECKS=0``) where the device sync matters.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import torch
import torch.nn.functional as F

from neuro_attention.ops.modulated_attention.blockwise import modulated_attention_blockwise
from neuro_attention.ops.modulated_attention.reference import (
    apply_fused,
    attention_probabilities_reference,
    modulated_attention_reference,
    visible_pairs,
)
from neuro_core.dispatch import resolve_backend
from neuro_core.validation import check_int, check_same_device, check_tensor

AttentionBackend = Literal["auto", "reference", "sdpa", "blockwise", "triton"]
_SUPPORTED: tuple[str, ...] = ("auto", "reference", "sdpa", "blockwise", "triton")

PairGate = tuple[torch.Tensor, torch.Tensor, int]


def _torch_at_least(major: int, minor: int) -> bool:
    have = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return have >= (major, minor)


# enable_gqa appeared in torch 2.5; SDPA is a builtin without an inspectable signature. A module
# constant, not a cached function, so that torch.compile does not warn about the cache wrapper.
_SDPA_HAS_GQA = _torch_at_least(2, 5)


def _validate(q, k, v, window, query_scale, key_bias, pair_gate, head_gain, pad) -> None:  # type: ignore[no-untyped-def]
    check_tensor("q", q, ndim=4, floating=True)
    b, t, h, d = q.shape
    check_tensor("k", k, ndim=4, dtype=q.dtype, device=q.device)
    tk, hkv = k.shape[1], k.shape[2]
    check_tensor("k", k, shape=(b, None, None, d))
    if tk < t:
        raise ValueError(
            f"k: the number of keys T_k={tk} must be ≥ the number of queries T_q={t} "
            "(queries are the last T_q positions)"
        )
    check_tensor("v", v, shape=(b, tk, hkv, d), dtype=q.dtype, device=q.device)
    if pad is not None:
        check_tensor("key_padding_mask", pad, shape=(b, tk), dtype=torch.bool, device=q.device)
    if hkv == 0 or h % hkv:
        raise ValueError(f"k: the number of query heads H={h} must be divisible by H_kv={hkv}")
    if window is not None:
        check_int("window", window)
    mods: dict[str, torch.Tensor | None] = {"query_scale": query_scale, "key_bias": key_bias}
    if pair_gate is not None:
        if not isinstance(pair_gate, tuple) or len(pair_gate) != 3:
            raise ValueError("pair_gate must be a tuple (a [B,T,H], b [B,T,H], W)")
        check_int("pair_gate window W", pair_gate[2])
        mods["pair_gate a"], mods["pair_gate b"] = pair_gate[0], pair_gate[1]
    check_same_device(
        q=q, k=k, v=v, **{n.replace(" ", "_"): x for n, x in mods.items()}, head_gain=head_gain
    )
    for name, x in mods.items():
        if x is None:
            continue
        shape = {"key_bias": (b, tk, hkv), "pair_gate b": (b, tk, h)}.get(name, (b, t, h))
        check_tensor(name, x, shape=shape, dtype=q.dtype, finite=True)
    if head_gain is not None:
        check_tensor("head_gain", head_gain, ndim=(1, 3), dtype=q.dtype, finite=True)
        if tuple(head_gain.shape) not in ((h,), (b, t, h)):
            raise ValueError(
                f"head_gain must have shape ({h},) or {(b, t, h)}, got {tuple(head_gain.shape)}"
            )


def _sdpa(q, k, v, causal, query_scale, head_gain, pad):  # type: ignore[no-untyped-def]
    if query_scale is not None:
        q = q * query_scale[..., None]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    group = q.shape[2] // k.shape[2]
    t_q, t_k = q.shape[1], k.shape[1]
    mask = None
    if pad is not None or (causal and t_q != t_k):
        # SDPA's is_causal aligns the top-left corner; decoding needs the bottom-right one
        mask = visible_pairs(
            t_q, t_k, causal=causal, window=None, key_padding_mask=pad, device=q.device
        )
        causal = False
    if group == 1:
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, is_causal=causal)
    elif _SDPA_HAS_GQA:
        out = F.scaled_dot_product_attention(
            qt, kt, vt, attn_mask=mask, is_causal=causal, enable_gqa=True
        )
    else:
        kt, vt = kt.repeat_interleave(group, 1), vt.repeat_interleave(group, 1)
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, is_causal=causal)
    out = out.transpose(1, 2)
    if head_gain is not None:
        out = out * head_gain[..., None]
    return out


@overload
def modulated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = ...,
    window: int | None = ...,
    query_scale: torch.Tensor | None = ...,
    key_bias: torch.Tensor | None = ...,
    pair_gate: PairGate | None = ...,
    head_gain: torch.Tensor | None = ...,
    return_entropy: Literal[False] = ...,
    backend: AttentionBackend = ...,
    key_padding_mask: torch.Tensor | None = ...,
) -> torch.Tensor: ...


@overload
def modulated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = ...,
    window: int | None = ...,
    query_scale: torch.Tensor | None = ...,
    key_bias: torch.Tensor | None = ...,
    pair_gate: PairGate | None = ...,
    head_gain: torch.Tensor | None = ...,
    return_entropy: Literal[True],
    backend: AttentionBackend = ...,
    key_padding_mask: torch.Tensor | None = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def modulated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    window: int | None = None,
    query_scale: torch.Tensor | None = None,
    key_bias: torch.Tensor | None = None,
    pair_gate: PairGate | None = None,
    head_gain: torch.Tensor | None = None,
    return_entropy: bool = False,
    backend: AttentionBackend = "auto",
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention with per-token precision, key bias, factorized pair gate, head gain and entropy.

    The equation is in :mod:`neuro_attention.ops.modulated_attention.reference`.

    Decoding with a KV cache: pass the new queries (``T_q ≥ 1``) and every key and value so far
    (``T_k ≥ T_q``); query i sits at absolute position ``T_k − T_q + i``, so running all T
    positions at once equals running a prefix and then one token at a time.

    Args:
        q: ``[B, T_q, H, D]`` queries.
        k, v: ``[B, T_k, H_kv, D]`` keys and values, ``H % H_kv == 0`` (head h reads kv head
            ``h // (H / H_kv)``), ``T_k ≥ T_q``.
        causal: mask keys after the query (default True).
        window: if set (≥ 1), also mask keys with ``|i − j| ≥ window``.
        query_scale: ``[B, T_q, H]`` precision β multiplying the logits of query i (default 1).
        key_bias: ``[B, T_k, H_kv]`` additive logit bias of key j.
        pair_gate: ``(a [B, T_q, H], b [B, T_k, H], W)``: adds ``log σ(a_i + b_j)`` to pairs with
            ``|i − j| < W``; pairs further apart are ungated (not masked).
        head_gain: ``[H]`` or ``[B, T_q, H]`` gain multiplying each head's output.
        return_entropy: also return the attention entropy ``[B, T_q, H]`` (nats).
        backend: see the module docstring.
        key_padding_mask: ``[B, T_k]`` bool, True for real tokens; padded keys are masked except
            that a query always sees its own position (rows stay finite; left padding as in
            :mod:`neuro_models.generate`).

    Returns:
        ``out [B, T_q, H, D]`` in ``q.dtype``, or ``(out, entropy)`` with
        ``return_entropy=True``.

    Raises:
        ValueError: naming the argument, for mismatched shapes, dtypes or devices, ``T_k < T_q``,
            H not divisible by H_kv, window or W < 1, or non-finite modulation values.
    """
    _validate(q, k, v, window, query_scale, key_bias, pair_gate, head_gain, key_padding_mask)
    chosen = resolve_backend(backend, q, supported=_SUPPORTED, op="modulated_attention")
    sdpa_ok = key_bias is None and pair_gate is None and window is None and not return_entropy
    if backend == "auto":
        if sdpa_ok or chosen == "triton":
            chosen = "sdpa" if sdpa_ok else "triton"
        else:
            # the blockwise path writes into strided views, which torch.compile cannot trace;
            # under compile the reference is the better input for the compiler anyway
            chosen = "reference" if torch.compiler.is_compiling() else "blockwise"
    if chosen == "sdpa":
        if not sdpa_ok:
            raise ValueError(
                "backend='sdpa' supports only query_scale and head_gain (no key_bias, pair_gate, "
                "window or return_entropy)"
            )
        return _sdpa(q, k, v, causal, query_scale, head_gain, key_padding_mask)
    kwargs: dict[str, Any] = dict(
        causal=causal,
        window=window,
        query_scale=query_scale,
        key_bias=key_bias,
        pair_gate=pair_gate,
        head_gain=head_gain,
    )
    if key_padding_mask is not None:
        kwargs["key_padding_mask"] = key_padding_mask
    if chosen == "reference":
        out, ent = modulated_attention_reference(q, k, v, **kwargs)
        return (out, ent) if return_entropy else out
    if chosen == "triton":
        from neuro_attention.ops.modulated_attention.triton import TritonModulatedAttention

        out, ent_opt = apply_fused(
            TritonModulatedAttention, q, k, v, return_entropy=return_entropy, **kwargs
        )
    else:
        out, ent_opt = modulated_attention_blockwise(
            q, k, v, return_entropy=return_entropy, **kwargs
        )
    if return_entropy:
        assert ent_opt is not None
        return out, ent_opt
    return out


__all__ = [
    "AttentionBackend",
    "PairGate",
    "attention_probabilities_reference",
    "modulated_attention",
    "modulated_attention_blockwise",
    "modulated_attention_reference",
    "visible_pairs",
]
