"""Exact parameter accounting, iso-parameter matching, and presets of the Llama baseline.

Counts (no biases, RMSNorm weights counted, ``d_h = d / H``; ``specs/reference-systems.md`` §1.11):

    attention = d·H·d_h + 2·d·KV·d_h + H·d_h·d,   MLP = 3·d·F,   norms = 2·d per block
    total = V·d (embedding) + L·(attention + MLP + 2d) + d (final norm) + V·d (output, if untied)

"Embedding" parameters are every vocabulary-sized matrix: the token embedding and, when untied,
the output projection (tied tensors count once). "Non-embedding" is the rest.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_int
from neuro_models.config import LlamaConfig, swiglu_hidden
from neuro_models.llama import Llama


class ParamCount(NamedTuple):
    """Trainable parameter count, split into vocabulary matrices and the rest."""

    total: int
    embedding: int
    non_embedding: int


def _count_config(c: LlamaConfig) -> ParamCount:
    attention = c.d_model * c.head_dim * (2 * c.n_heads + 2 * c.n_kv_heads)
    block = attention + 3 * c.d_model * c.ffn_dim + 2 * c.d_model
    embedding = c.vocab_size * c.d_model * (1 if c.tie_embeddings else 2)
    non_embedding = c.n_layers * block + c.d_model
    return ParamCount(embedding + non_embedding, embedding, non_embedding)


#: Module names of an LM head (the last component of the qualified name).
HEAD_NAMES = frozenset({"lm_head", "head", "output", "unembed"})


def _count_module(model: nn.Module) -> ParamCount:
    vocab_sizes = {m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)}
    to_vocab = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.out_features in vocab_sizes
    ]
    # a projection inside a block may also map to vocab_size features (d_model == vocab_size):
    # when the model names its head, only that counts
    named = [m for name, m in to_vocab if name.rsplit(".", 1)[-1] in HEAD_NAMES]
    heads = named if named else [m for _, m in to_vocab]
    embedding_ids: set[int] = set()
    for m in [m for m in model.modules() if isinstance(m, nn.Embedding)] + heads:
        embedding_ids.update(id(p) for p in m.parameters(recurse=False) if p.requires_grad)
    # model.parameters() yields a shared (tied) tensor once.
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    embedding = sum(p.numel() for p in params if id(p) in embedding_ids)
    return ParamCount(total, embedding, total - embedding)


def count_parameters(model_or_config: nn.Module | LlamaConfig) -> ParamCount:
    """Exact trainable parameter count of a model, or of a :class:`LlamaConfig` without building it.

    For a module, embedding parameters are those of its ``nn.Embedding`` layers and of its LM
    head: the ``nn.Linear`` layers with an output size equal to a vocabulary size that are named
    like a head (:data:`HEAD_NAMES`, e.g. ``lm_head``), or, when none is, every such layer.
    Works on the meta device.

    Raises:
        ValueError: ``model_or_config`` is neither an ``nn.Module`` nor a ``LlamaConfig``.
    """
    if isinstance(model_or_config, LlamaConfig):
        return _count_config(model_or_config)
    if isinstance(model_or_config, nn.Module):
        return _count_module(model_or_config)
    raise ValueError(
        f"model_or_config must be an nn.Module or LlamaConfig, got {type(model_or_config).__name__}"
    )


def match_parameters(target: int, base: LlamaConfig, tolerance: float = 0.02) -> LlamaConfig:
    """``base`` with the SwiGLU width (a multiple of 8) whose total count is closest to ``target``.

    The count is linear in ``ffn_dim``: ``total(F) = total(0) + 3·d·L·F``, so the best multiple of
    8 is one of the two around the real solution.

    Args:
        target: parameter count to match (e.g. the treatment model's total).
        base: every other field of the baseline.
        tolerance: largest accepted ``|total - target| / target`` (default 2 %, §6.1).

    Returns:
        ``base`` with ``ffn_dim`` replaced.

    Raises:
        ValueError: bad ``target``/``tolerance``, or no multiple of 8 lands within ``tolerance``
            (e.g. the embedding alone exceeds the target).
    """
    check_int("target", target)
    if not (isinstance(tolerance, int | float) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    per_unit = 3 * base.d_model * base.n_layers
    fixed = _count_config(base).total - per_unit * base.ffn_dim
    exact = (target - fixed) / per_unit
    candidates = {max(8, 8 * math.floor(exact / 8)), max(8, 8 * math.ceil(exact / 8))}
    best = min(candidates, key=lambda f: (abs(fixed + per_unit * f - target), f))
    total = fixed + per_unit * best
    error = abs(total - target) / target
    if error > tolerance:
        raise ValueError(
            f"target: cannot match {target:,} parameters within {tolerance:.1%} by ffn_dim alone "
            f"(best ffn_dim={best} gives {total:,}, off by {error:.1%}; fixed part {fixed:,})"
        )
    return base.replace(ffn_dim=best)


def build_meta(config: LlamaConfig) -> Llama:
    """Build ``Llama(config)`` on the meta device: shapes only, no memory, no init cost."""
    with torch.device("meta"):
        return Llama(config)


def _llama3(d_model: int, n_layers: int, n_heads: int, ffn_dim: int) -> LlamaConfig:
    # Meta's released Llama 3 / 3.1 configs: V 128256, KV 8, θ 5·10⁵, ε 1e-5, untied, ctx 8192.
    return LlamaConfig(
        vocab_size=128256,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=8,
        ffn_dim=ffn_dim,
        rope_theta=500000.0,
        norm_eps=1e-5,
        tie_embeddings=False,
        max_seq_len=8192,
    )


def llama3_8b() -> LlamaConfig:
    """Llama 3 8B: d 4096, 32 layers, 32/8 heads, F 14336; 8,030,261,248 parameters."""
    return _llama3(4096, 32, 32, 14336)


def llama3_70b() -> LlamaConfig:
    """Llama 3 70B: d 8192, 80 layers, 64/8 heads, F 28672; 70,553,706,496 parameters."""
    return _llama3(8192, 80, 64, 28672)


def llama3_405b() -> LlamaConfig:
    """Llama 3.1 405B: d 16384, 126 layers, 128/8 heads, F 53248; 405,853,388,800 parameters.

    KV = 8 as released by Meta (the corteX docs' KV = 16 gives 410,081,247,232 and is wrong).
    """
    return _llama3(16384, 126, 128, 53248)


def tiny(vocab_size: int = 256) -> LlamaConfig:
    """Test-sized model: d 64, 2 layers, 4/2 heads (GQA), F 168, ctx 128 (~0.1M parameters)."""
    return LlamaConfig(
        vocab_size=vocab_size, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
        ffn_dim=swiglu_hidden(64), max_seq_len=128,
    )  # fmt: skip


def cpu_small(vocab_size: int = 4096) -> LlamaConfig:
    """The d 256 / 4-layer / 4-head throughput benchmark model (~4.2M parameters at V 4096)."""
    return LlamaConfig(
        vocab_size=vocab_size, d_model=256, n_layers=4, n_heads=4, n_kv_heads=4,
        ffn_dim=swiglu_hidden(256), max_seq_len=1024,
    )  # fmt: skip


def cpu_medium(vocab_size: int = 4096) -> LlamaConfig:
    """The d 512 / 8-layer / 8-head throughput benchmark model (~27.2M parameters at V 4096)."""
    return LlamaConfig(
        vocab_size=vocab_size, d_model=512, n_layers=8, n_heads=8, n_kv_heads=8,
        ffn_dim=swiglu_hidden(512), max_seq_len=1024,
    )  # fmt: skip


def nanogpt_shakespeare_char(vocab_size: int = 65) -> LlamaConfig:
    """nanoGPT's CPU Shakespeare-char size: 4 layers, 4 heads, d 128, context 64.

    nanoGPT's GPT has a 4d GELU MLP (2·4·d² = 131,072 per block); the SwiGLU width 344 (3·d·F =
    132,096) keeps the same budget. V 65 is the character vocabulary of Tiny Shakespeare.
    """
    return LlamaConfig(
        vocab_size=vocab_size, d_model=128, n_layers=4, n_heads=4, n_kv_heads=4,
        ffn_dim=344, max_seq_len=64,
    )  # fmt: skip


__all__ = [
    "ParamCount",
    "build_meta",
    "count_parameters",
    "cpu_medium",
    "cpu_small",
    "llama3_8b",
    "llama3_70b",
    "llama3_405b",
    "match_parameters",
    "nanogpt_shakespeare_char",
    "tiny",
]
