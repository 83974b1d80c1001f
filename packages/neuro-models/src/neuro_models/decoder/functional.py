"""Functional pieces of the decoder: rotary embeddings, causal attention and the fused output
head + cross-entropy.

RoPE (Su et al. 2021, "RoFormer") uses the rotate-half layout of ``transformers`` (pairs
``(i, i + d_h/2)``), not Meta's interleaved pairs ``(2i, 2i+1)``: it is cheaper in eager PyTorch
and makes HF conversion a plain copy. The two layouts differ by a fixed permutation of the rows of
``W_q`` and ``W_k`` per head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

# Tokens per chunk of the fused lm_head + cross-entropy: a [512, V] fp32 block (8 MB at V 4096),
# small enough to stay in cache, large enough for an efficient matmul.
LOSS_CHUNK = 512


def rope_table(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[max_seq_len, head_dim / 2]`` (fp32) with ``ω_i = θ^(-2i / d_h)``."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(x_i, x_{i+d_h/2})`` of ``x [..., d_h]`` by the angles in ``cos``/``sin``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def rotate(
    rope: tuple[torch.Tensor, torch.Tensor] | None, *xs: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Each of ``xs [..., d_h]`` rotated by ``rope = (cos, sin)`` (cast to its dtype); unchanged
    when ``rope`` is None (a model without rotary positions)."""
    if rope is None:
        return xs
    cos, sin = rope
    return tuple(apply_rope(x, cos.to(x.dtype), sin.to(x.dtype)) for x in xs)


# Largest score tensor B·H·T·T (elements) that causal_attention writes out on CPU: 64 MB in fp32
# per layer; longer sequences keep SDPA's memory-efficient kernel.
CPU_WRITTEN_ATTENTION_MAX_SCORES = 1 << 24
# Smallest query block of the written-out attention (at most 4 blocks per sequence).
ATTENTION_QUERY_BLOCK = 64


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention ``[B, H, T, d_h]`` of ``q``, ``k``, ``v`` (all ``[B, H, T, d_h]``):

        o_i = Σ_{j ≤ i} softmax_j(q_i·k_j / √d_h) v_j

    ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``, except on CPU with at most
    :data:`CPU_WRITTEN_ATTENTION_MAX_SCORES` scores for bf16/fp16 inputs, or any dtype inside
    ``torch.compile``, where the same equation is written out (:func:`written_out_attention`:
    scores in the input dtype, softmax in fp32, as ``transformers``' eager attention, in query
    blocks that skip the keys after their last query). There SDPA's CPU flash kernel is slower
    forward + backward, in bf16 eager or under ``torch.compile`` (which fuses scale, mask and
    softmax) and in fp32 under ``torch.compile``, at T 256, d_h 64 on one thread, while in fp32
    eager it is as fast or faster and is kept (``benchmarks/scripts/models_attention_cpu.py``;
    raw output ``benchmarks/results/throughput/attention-2026-11-30-cpu-1thread-bf16-fp32.txt``).
    """
    b, h, t, _ = q.shape
    if (
        q.device.type != "cpu"
        or (q.dtype not in (torch.bfloat16, torch.float16) and not torch.compiler.is_compiling())
        or b * h * t * t > CPU_WRITTEN_ATTENTION_MAX_SCORES
    ):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return written_out_attention(q, k, v)


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The written-out branch of :func:`causal_attention`, for any dtype and device."""
    t = q.shape[-2]
    # Query blocks see only the keys up to their last row: ~(n+1)/2n of the full T x T work.
    block = max(ATTENTION_QUERY_BLOCK, -(-t // 4))
    scale = q.shape[-1] ** -0.5
    outs = []
    for lo in range(0, t, block):
        hi = min(lo + block, t)
        scores = (q[..., lo:hi, :] @ k[..., :hi, :].transpose(-1, -2)) * scale
        causal = torch.ones(hi - lo, hi, dtype=torch.bool, device=q.device).tril(lo)
        scores = scores.masked_fill(~causal, float("-inf"))
        outs.append(torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v[..., :hi, :])
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-2)


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean NLL of ``softmax(h Wᵀ)`` at ``targets``, gradients computed chunk by chunk in forward.

    ``h [N, d]``, ``weight [V, d]``, ``targets [N]``. Each chunk of ``chunk`` rows forms its logits
    in ``dtype`` (the autocast dtype, as ``lm_head`` would), takes its softmax in fp32 and turns it
    at once into ``∂loss/∂logits = (softmax − onehot)/N``, so neither the ``[N, V]`` logits nor
    their fp32 copy are kept for backward (the idea of Liger-Kernel's fused linear cross-entropy).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        h: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        n = h.shape[0]
        w, hc = weight.to(dtype), h.to(dtype)
        # N·∂loss/∂h and N·∂loss/∂W; the 1/N goes onto these small tensors in backward.
        grad_h = torch.empty_like(hc)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        nll = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for lo in range(0, n, chunk):
                x, t = hc[lo : lo + chunk], targets[lo : lo + chunk]
                z = x @ w.t()
                z_t = z.gather(1, t[:, None]).float()
                m = z.amax(dim=-1, keepdim=True).float()
                # Softmax by hand, each pass fused with a dtype change where one is needed:
                # exp(z − max) in fp32 straight from the ``dtype`` logits, and the division by
                # the sum written out in ``dtype`` (on CPU, ~2x cheaper than log_softmax, exp
                # and separate casts).
                g = (z - m).exp_()
                total = g.sum(dim=-1, keepdim=True)
                nll += (total.log() + m - z_t).sum()
                # softmax − onehot = (e − onehot·Σe) / Σe.
                g[torch.arange(t.shape[0], device=t.device), t] -= total[:, 0]
                g_c = g if dtype == g.dtype else torch.empty_like(g, dtype=dtype)
                torch.div(g, total, out=g_c)
                torch.mm(g_c, w, out=grad_h[lo : lo + chunk])
                grad_w.add_(g_c.t() @ x)
        ctx.save_for_backward(grad_h.to(h.dtype), grad_w.to(weight.dtype))
        ctx.n = n
        return nll / n

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        return grad_h * scale, grad_w * scale, None, None, None
