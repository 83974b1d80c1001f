"""Fast weights as a causal sequence mixer: the recurrent spec and its one-step form.

Layout ``[B, T, H, D]`` (batch, time, heads, head dim). The fast-weight matrix of each head is
``S ∈ R^{Dk × Dv}`` (rows indexed by key features, as in flash-linear-attention), updated once
per token and read with the query *after* the update:

    hebbian (Ba et al. 2016; Schmidhuber 1992):
        S_t = λ S_{t−1} + η β_t k_t v_tᵀ
    delta  (Schlag, Irie & Schmidhuber 2021, eq. 24; Widrow–Hoff):
        S_t = S_{t−1} + η β_t k_t (v_t − S_{t−1}ᵀ k_t)ᵀ
    oja    (Oja 1982, row-wise, with the value as the post-synaptic activity):
        S_t[:, c] = (λ − η β_t v_t[c]²) S_{t−1}[:, c] + η β_t v_t[c] k_t

    o_t = S_tᵀ q_t

λ ∈ (0, 1] is the retention (``decay``), η ≥ 0 the learning rate (``lr``) and β_t ≥ 0 an optional
per-token, per-head write strength (``strength`` ``[B, T, H]``: a gate, or a reward for the
reward-modulated variant; 1 when omitted). The issue writes S as ``[Dv, Dk]`` (S_t = λS + η v kᵀ,
o = S q); this is the same math transposed.

The Oja variant forgets, per value channel c, in proportion to v[c]²: a channel written often
does not grow without bound. It requires λ − η β v² > 0 (checked by the dispatcher).

What we changed from NeuroLlama's Hebbian attention (reference-systems §1.7): the state is built
causally per position and per batch item and starts from zero (or an explicit ``initial_state``)
on every call, instead of a matrix summed over the whole sequence and carried to the next batch.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

FastWeightRule = Literal["hebbian", "delta", "oja"]


class FastWeightState(NamedTuple):
    """Recurrent state of :func:`fast_weights_step`: ``S`` ``[B, H, Dk, Dv]`` (fp32 or wider)."""

    S: torch.Tensor


def fast_weights_step_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor,
    strength: torch.Tensor | None,
    *,
    rule: FastWeightRule,
    lr: float,
    decay: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``q, k`` ``[B, H, Dk]``, ``v`` ``[B, H, Dv]``, ``state`` ``[B, H, Dk, Dv]``,
    ``strength`` ``[B, H]`` or None. Returns ``(o [B, H, Dv], new state)``."""
    eta = lr if strength is None else lr * strength[..., None, None]
    if rule == "hebbian":
        state = decay * state + eta * k[..., :, None] * v[..., None, :]
    elif rule == "delta":
        pred = torch.einsum("bhk,bhkv->bhv", k, state)
        state = state + eta * k[..., :, None] * (v - pred)[..., None, :]
    elif rule == "oja":
        alpha = decay - eta * v[..., None, :].pow(2)
        state = alpha * state + eta * k[..., :, None] * v[..., None, :]
    else:
        raise ValueError(f"rule must be 'hebbian', 'delta' or 'oja', got {rule!r}")
    out = torch.einsum("bhk,bhkv->bhv", q, state)
    return out, state


def initial_state_compute(
    q: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor | None
) -> tuple[torch.dtype, torch.Tensor]:
    """The compute dtype (``q``'s, at least fp32) and the state ``[B, H, Dk, Dv]`` entering the
    sequence in it (zeros without ``initial_state``); ``q [B, T, H, Dk]``, ``v [B, T, H, Dv]``."""
    compute = torch.promote_types(q.dtype, torch.float32)
    b, _, h, dk = q.shape
    if initial_state is None:
        return compute, q.new_zeros(b, h, dk, v.shape[-1], dtype=compute)
    return compute, initial_state.to(compute)


def fast_weights_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    strength: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    *,
    rule: FastWeightRule,
    lr: float,
    decay: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrent loop (the spec). Returns ``(o [B, T, H, Dv], final state [B, H, Dk, Dv])``.

    Computed in (at least) fp32; ``o`` is cast back to ``v.dtype``, the state stays fp32.
    """
    b, t, h, _ = q.shape
    dv = v.shape[-1]
    compute, state = initial_state_compute(q, v, initial_state)
    qf, kf, vf = q.to(compute), k.to(compute), v.to(compute)
    sf = None if strength is None else strength.to(compute)
    outs = []
    for i in range(t):
        o, state = fast_weights_step_reference(
            qf[:, i],
            kf[:, i],
            vf[:, i],
            state,
            None if sf is None else sf[:, i],
            rule=rule,
            lr=lr,
            decay=decay,
        )
        outs.append(o)
    out = torch.stack(outs, dim=1) if outs else vf.new_zeros(b, 0, h, dv)
    return out.to(v.dtype), state
