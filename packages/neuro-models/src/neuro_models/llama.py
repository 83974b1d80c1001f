"""The iso-parameter Llama-style baseline decoder (``specs/reference-systems.md`` §6.1).

    h = x + Attn(RMSNorm(x)),   y = h + SwiGLU(RMSNorm(h)),   logits = RMSNorm(y_L) Wᵀ

Attention is causal grouped-query attention through ``F.scaled_dot_product_attention`` with rotary
position embeddings (Su et al. 2021, "RoFormer") applied to queries and keys; the MLP is SwiGLU
(Shazeer 2020): ``W_down(silu(W_gate x) ⊙ W_up x)``. No biases anywhere. Init: every matrix
N(0, σ), the two residual output projections of each block N(0, σ/√(2L)) (GPT-2, Radford et al.
2019).

What we changed from Meta's reference ``model.py`` and why:

* q/k/v are one fused ``qkv`` matrix and gate/up one ``gate_up`` matrix (fewer, larger matmuls; the
  HF converter splits them). RoPE uses the rotate-half layout (pairs ``(i, i + d_h/2)``) of
  ``transformers``, not Meta's interleaved pairs ``(2i, 2i+1)``: it is cheaper in eager PyTorch and
  makes HF conversion a plain copy. The two layouts differ by a fixed permutation of the rows of
  ``W_q`` and ``W_k`` per head (what HF's conversion script applies to Meta checkpoints).
* Batched generation with left padding: ``attention_mask`` marks real tokens; positions count only
  real tokens (as HF does), and each query may always see itself so that all-padding rows stay
  finite.

Layout: tokens ``[B, T]``, activations ``[B, T, d]``, attention ``[B, H, T, d_h]`` inside SDPA.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.ops import RMSNorm
from neuro_core.validation import check_tensor
from neuro_models.config import LlamaConfig

# SDPA gained native grouped-query attention (``enable_gqa``) in torch 2.5.
_SDPA_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)

# Tokens per chunk of the fused lm_head + cross-entropy: a [512, V] fp32 block (8 MB at V 4096);
# 512 was ~5% faster than 1024 or 2048 for the d 256 benchmark step on one CPU thread.
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


class KVCache:
    """Preallocated keys/values of every layer for incremental decoding.

    ``k[i]``, ``v[i]``: ``[B, n_kv_heads, capacity, d_h]``. ``length`` positions are filled (the
    same for every row; batches of different prompt lengths are left-padded and ``mask`` records
    which cached positions hold real tokens). :meth:`Llama.forward` writes to it and advances
    ``length``; the cache is the only state of a generation and is never kept on the model.
    """

    def __init__(
        self,
        config: LlamaConfig,
        batch: int,
        capacity: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        capacity = config.max_seq_len if capacity is None else capacity
        if not 1 <= capacity <= config.max_seq_len:
            raise ValueError(f"capacity must be in [1, {config.max_seq_len}], got {capacity}")
        if batch < 1:
            raise ValueError(f"batch must be ≥ 1, got {batch}")
        shape = (batch, config.n_kv_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.batch, self.capacity, self.length = batch, capacity, 0
        # [B, capacity] bool, True where a real token is cached; None while there is no padding.
        self.mask: torch.Tensor | None = None
        # [B] number of real tokens cached per row (the next RoPE position).
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``/``v`` ``[B, KV, T, d_h]`` at ``length``; return everything cached so far."""
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE; ``[B, T, d] -> [B, T, d]``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (
            config.n_heads,
            config.n_kv_heads,
            config.head_dim,
        )
        qkv_out = (config.n_heads + 2 * config.n_kv_heads) * config.head_dim
        self.qkv = nn.Linear(config.d_model, qkv_out, bias=False)
        self.out = nn.Linear(config.n_heads * config.head_dim, config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV = self.n_heads, self.n_kv_heads
        # split (not slicing): its backward is one concatenation instead of zero-filled copies.
        qk, v = self.qkv(x).view(B, T, H + 2 * KV, self.head_dim).split([H + KV, KV], dim=2)
        # Rotate queries and keys together: one set of elementwise kernels instead of two.
        q, k = apply_rope(qk, cos.to(qk.dtype), sin.to(qk.dtype)).split([H, KV], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if H != KV and not _SDPA_GQA:
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        gqa = {"enable_gqa": True} if H != KV and _SDPA_GQA else {}
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, **gqa)
        return self.out(y.transpose(1, 2).reshape(B, T, H * self.head_dim))


class SwiGLU(nn.Module):
    """``W_down(silu(W_gate x) ⊙ W_up x)``; ``[B, T, d] -> [B, T, d]``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.ffn_dim, bias=False)
        self.down = nn.Linear(config.ffn_dim, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm decoder block: ``x + Attn(norm(x))`` then ``h + SwiGLU(norm(h))``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, is_causal, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    """Llama-style decoder: ``tokens [B, T] -> logits [B, T, V]``.

    Blocks live in ``self.layers`` (an ``nn.ModuleList`` of plain modules) so that FSDP can wrap
    them one by one. Build on the meta device (``with torch.device("meta"): Llama(cfg)``) to count
    parameters of large presets without allocating them.
    """

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise ValueError(f"config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_table(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, σ) for matrices, N(0, σ/√(2L)) for residual output projections, ones for norms."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for block in self.layers:
            assert isinstance(block, Block)
            nn.init.normal_(block.attn.out.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` of the next token at every position; see :meth:`hidden_states`."""
        return self.lm_head(self.hidden_states(tokens, cache=cache, attention_mask=attention_mask))

    def loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, *, chunk: int = LOSS_CHUNK
    ) -> torch.Tensor:
        """Mean next-token NLL ``[]`` (fp32) of ``targets [B, T]`` given ``inputs [B, T]``.

        Equal, value and gradients, to ``F.cross_entropy(self(inputs).float().flatten(0, 1),
        targets.flatten())`` (every target must be a valid id: no ``ignore_index``), but
        ``lm_head`` and the cross-entropy run fused over ``chunk`` tokens at a time, so the
        ``[B, T, V]`` logits are never materialized: faster to train, and less memory.
        """
        if chunk < 1:
            raise ValueError(f"chunk must be ≥ 1, got {chunk}")
        check_tensor(
            "targets", targets, shape=tuple(inputs.shape), dtype=(torch.int64, torch.int32)
        )
        h = self.hidden_states(inputs)
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        out: torch.Tensor = _LinearCrossEntropy.apply(
            h.flatten(0, 1), self.lm_head.weight, targets.flatten().long(), chunk, dtype
        )
        return out

    def hidden_states(
        self,
        tokens: torch.Tensor,
        *,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-normed hidden states ``[B, T, d]``; ``lm_head`` of them gives the logits.

        Args:
            tokens: ``[B, T]`` int64/int32 ids in ``[0, vocab_size)``.
            cache: optional :class:`KVCache`; the new tokens follow the ``cache.length`` cached
                ones and are appended to it (``cache.length`` advances by ``T``).
            attention_mask: optional ``[B, T]`` bool, True for real tokens and False for left
                padding. Padded positions get finite but meaningless logits. With a cache, the
                mask of earlier calls is remembered in it.

        Returns:
            ``[B, T, d_model]`` (in the autocast dtype under autocast). Generation applies
            ``lm_head`` to the last position only.

        Raises:
            ValueError: bad ``tokens``/``attention_mask``, or more than ``max_seq_len`` (or
                ``cache.capacity``) positions.
        """
        check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
        B, T = tokens.shape
        start = 0 if cache is None else cache.length
        limit = self.config.max_seq_len if cache is None else cache.capacity
        if start + T > limit:
            raise ValueError(
                f"tokens: sequence of {start + T} positions exceeds "
                f"{'max_seq_len' if cache is None else 'cache.capacity'} = {limit}"
            )
        if not torch.compiler.is_compiling() and T > 0:
            lo, hi = (int(v) for v in torch.aminmax(tokens))
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(
                    f"tokens must lie in [0, {self.config.vocab_size}), got range [{lo}, {hi}]"
                )
        if cache is not None and cache.batch != B:
            raise ValueError(f"cache: built for batch {cache.batch}, tokens have batch {B}")
        if attention_mask is not None:
            check_tensor("attention_mask", attention_mask, shape=(B, T), dtype=torch.bool)
        cos, sin, mask, is_causal = self._layout(B, T, start, cache, attention_mask, tokens.device)

        x = self.embed(tokens)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, mask, is_causal, cache, i)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def _layout(
        self,
        B: int,
        T: int,
        start: int,
        cache: KVCache | None,
        attention_mask: torch.Tensor | None,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        """RoPE angles ``[B, T, 1, d_h/2]`` or ``[T, 1, d_h/2]``, SDPA mask ``[B, 1, T, S]``|None, causal."""
        padded = attention_mask is not None or (cache is not None and cache.mask is not None)
        if not padded:
            if cache is not None:
                cache.seen += T
            cos = self.rope_cos[start : start + T][:, None]
            sin = self.rope_sin[start : start + T][:, None]
            # No padding: SDPA's own causal mask, or no mask at all when T queries see every key.
            if start == 0:
                return cos, sin, None, T > 1
            if T == 1:
                return cos, sin, None, False
            return cos, sin, self._causal(start, T, device)[None, None], False

        new = (
            attention_mask
            if attention_mask is not None
            else torch.ones(B, T, dtype=torch.bool, device=device)
        )
        seen = cache.seen if cache is not None else torch.zeros(B, dtype=torch.long, device=device)
        positions = (seen[:, None] + new.long().cumsum(-1) - 1).clamp(min=0)
        if cache is not None:
            cache.seen += new.long().sum(-1)
            if cache.mask is None:
                cache.mask = torch.ones(B, cache.capacity, dtype=torch.bool, device=device)
            cache.mask[:, start : start + T] = new
            keys = cache.mask[:, : start + T]
        else:
            keys = new
        # Query i (absolute start+i) sees real keys j ≤ start+i, and always itself.
        causal = self._causal(start, T, device)
        diag = (
            torch.arange(start + T, device=device)[None, :]
            == (start + torch.arange(T, device=device))[:, None]
        )
        mask = (causal[None] & keys[:, None, :]) | diag[None]
        cos, sin = self.rope_cos[positions][:, :, None], self.rope_sin[positions][:, :, None]
        return cos, sin, mask[:, None], False

    @staticmethod
    def _causal(start: int, T: int, device: torch.device) -> torch.Tensor:
        """``[T, start + T]`` bool, True where key j ≤ query position ``start + i``."""
        q = start + torch.arange(T, device=device)
        return torch.arange(start + T, device=device)[None, :] <= q[:, None]
