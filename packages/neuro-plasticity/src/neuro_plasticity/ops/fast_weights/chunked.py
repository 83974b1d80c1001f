"""Chunk-parallel fast weights: the same math as :mod:`.reference`, T/C sequential steps instead of T.

The sequence is cut into chunks of C tokens. Inside a chunk everything is a (masked) matrix
product; only the state at chunk boundaries is carried sequentially (Katharopoulos et al. 2020;
Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient Training", §3).
With S_0 the state entering a chunk, local positions i, j, and G the in-chunk cumulative log
retention:

    hebbian:  o_i = e^{G_i} q_i S_0 + Σ_{j≤i} e^{G_i − G_j} (q_i·k_j) v'_j,   v'_j = η β_j v_j
    oja:      the same with a per-value-channel G (retention λ − η β v² per channel)
    delta:    (I + diag(β') tril₋₁(K Kᵀ)) U = diag(β')(V − K S_0)       (the WY/UT form of
              Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule")
              O = Q S_0 + tril(Q Kᵀ) U,   S_C = S_0 + Kᵀ U

Padding tokens (T not a multiple of C) get zero keys, values and write strength and zero log
retention, so they change neither outputs nor the final state. Gradients come from autograd.
"""

from __future__ import annotations

import math

import torch

from neuro_plasticity.ops.fast_weights.reference import FastWeightRule, initial_state_compute


def _to_chunks(x: torch.Tensor, n: int, c: int) -> torch.Tensor:
    """``[B, T, H, ...]`` zero-padded to ``n·c`` steps, as ``[B, H, n, c, ...]``."""
    b, t, h = x.shape[:3]
    rest = x.shape[3:]
    pad = n * c - t
    if pad:
        x = torch.cat([x, x.new_zeros(b, pad, h, *rest)], dim=1)
    x = x.reshape(b, n, c, h, *rest)
    return x.movedim(3, 1)


def fast_weights_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    strength: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    *,
    rule: FastWeightRule,
    lr: float,
    decay: float,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked fast weights; same arguments and results as
    :func:`~neuro_plasticity.ops.fast_weights.reference.fast_weights_reference`."""
    b, t, h, _ = q.shape
    dv = v.shape[-1]
    compute, s0 = initial_state_compute(q, v, initial_state)
    c = max(1, min(chunk_size, t))
    n = max(1, math.ceil(t / c))
    qf, kf, vf = (_to_chunks(x.to(compute), n, c) for x in (q, k, v))
    beta = (
        torch.ones(b, t, h, dtype=compute, device=q.device)
        if strength is None
        else strength.to(compute)
    )
    beta = _to_chunks(beta, n, c) * lr  # [B, H, n, c]; zero on padding
    real = _to_chunks(torch.ones(b, t, h, dtype=compute, device=q.device), n, c)
    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    if rule == "hebbian":
        out, state = _hebbian(qf, kf, vf * beta[..., None], real * math.log(decay), s0, causal)
    elif rule == "oja":
        out, state = _oja(qf, kf, vf, beta, real, decay, s0, causal)
    elif rule == "delta":
        out, state = _delta(qf, kf, vf, beta, s0, causal)
    else:
        raise ValueError(f"rule must be 'hebbian', 'delta' or 'oja', got {rule!r}")
    out = out.movedim(1, 3).reshape(b, n * c, h, dv)[:, :t]
    return out.to(v.dtype), state


def _scan_states(s0: torch.Tensor, carry: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """States entering each chunk, ``[B, H, n, Dk, Dv]``: S_{n+1} = carry_n ⊙ S_n + update_n."""
    states = []
    s = s0
    for i in range(update.shape[2]):
        states.append(s)
        s = carry[:, :, i] * s + update[:, :, i]
    states.append(s)
    return torch.stack(states, dim=2)


def _hebbian(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    s0: torch.Tensor,
    causal: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    gc = g.cumsum(-1)  # [B, H, n, c]
    glast = gc[..., -1:]
    diff = (gc[..., :, None] - gc[..., None, :]).masked_fill(~causal, -math.inf)
    attn = (q @ k.transpose(-1, -2)) * diff.exp()
    intra = attn @ v
    update = (k * (glast - gc).exp()[..., None]).transpose(-1, -2) @ v  # [B, H, n, Dk, Dv]
    states = _scan_states(s0, glast.exp()[..., None], update)
    inter = (q * gc.exp()[..., None]) @ states[:, :, :-1]
    return inter + intra, states[:, :, -1]


def _oja(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    real: torch.Tensor,
    decay: float,
    s0: torch.Tensor,
    causal: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    eta = beta[..., None]
    g = torch.log(decay - eta * v.pow(2)) * real[..., None]  # [B, H, n, c, Dv]
    w = eta * v
    gc = g.cumsum(-2)
    glast = gc[..., -1:, :]
    diff = gc[..., :, None, :] - gc[..., None, :, :]  # [.., i, j, Dv]
    dmat = diff.masked_fill(~causal[..., None], -math.inf).exp()
    attn = q @ k.transpose(-1, -2)
    intra = torch.einsum("...ij,...ijc,...jc->...ic", attn, dmat, w)
    update = k.transpose(-1, -2) @ (w * (glast - gc).exp())
    states = _scan_states(s0, glast.exp(), update)
    inter = (q @ states[:, :, :-1]) * gc.exp()
    return inter + intra, states[:, :, -1]


def _delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    s0: torch.Tensor,
    causal: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    c = k.shape[-2]
    eye = torch.eye(c, dtype=k.dtype, device=k.device)
    strict = causal & ~eye.bool()
    kk = (k @ k.transpose(-1, -2)).masked_fill(~strict, 0.0)
    tmat = eye + beta[..., None] * kk
    w_v = torch.linalg.solve_triangular(tmat, beta[..., None] * v, upper=False, unitriangular=True)
    w_k = torch.linalg.solve_triangular(tmat, beta[..., None] * k, upper=False, unitriangular=True)
    qk = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0)
    outs = []
    s = s0
    for i in range(k.shape[2]):
        u = w_v[:, :, i] - w_k[:, :, i] @ s
        outs.append(q[:, :, i] @ s + qk[:, :, i] @ u)
        s = s + k[:, :, i].transpose(-1, -2) @ u
    return torch.stack(outs, dim=2), s
