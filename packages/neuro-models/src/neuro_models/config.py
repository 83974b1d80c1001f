"""Typed configuration of the Llama-style baseline decoder.

The defaults follow the iso-parameter baseline of ``specs/reference-systems.md`` §6.1 (RoPE θ = 10⁴
for small models, tied embeddings, N(0, 0.02) init); the Llama 3 presets in
:mod:`neuro_models.params` override ``rope_theta``, ``norm_eps`` and ``tie_embeddings`` as Meta's
released configs do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neuro_core.validation import check_int


def _check_float(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_known_keys(cls: type, d: Mapping[str, Any]) -> None:
    """``ValueError`` naming the keys of ``d`` that are not fields of the dataclass ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")


def check_heads(d_model: int, n_heads: int, n_kv_heads: int, *, rope: bool) -> None:
    """The attention shape constraints: ``n_heads`` divides ``d_model``, ``n_kv_heads`` divides
    ``n_heads`` (grouped-query attention), and with RoPE the head width ``d_model / n_heads``
    is even (RoPE rotates channel pairs)."""
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})")
    if rope and (d_model // n_heads) % 2:
        raise ValueError(
            f"n_heads: head width d_model / n_heads = {d_model // n_heads} must be even for RoPE"
        )


@dataclass(frozen=True, kw_only=True)
class LlamaConfig:
    """Shape and initialization of a :class:`neuro_models.llama.Llama` decoder.

    Attributes:
        vocab_size: number of token ids ``V``.
        d_model: residual width ``d``; must be divisible by ``n_heads``.
        n_layers: number of decoder blocks ``L``.
        n_heads: query heads ``H``; head width ``d_h = d / H`` must be even (RoPE rotates pairs).
        n_kv_heads: key/value heads (grouped-query attention); must divide ``n_heads``.
            ``n_kv_heads == n_heads`` is plain multi-head attention.
        ffn_dim: SwiGLU hidden width ``F``.
        rope_theta: RoPE base θ (10⁴ as in Su et al. 2021 and Llama 2; Llama 3 uses 5·10⁵).
        norm_eps: RMSNorm ε (1e-5 as in Llama 2/3).
        tie_embeddings: share the token embedding with the output projection (counted once).
        max_seq_len: longest sequence (prompt + generated tokens) the model accepts; the RoPE
            table is precomputed up to this length.
        init_std: standard deviation of the N(0, σ) weight init (0.02, GPT-2/Llama convention);
            residual output projections use ``σ / sqrt(2 L)``.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    max_seq_len: int = 2048
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_dim"):
            check_int(name, getattr(self, name))
        check_int("max_seq_len", self.max_seq_len)
        for name in ("rope_theta", "norm_eps", "init_std"):
            _check_float(name, getattr(self, name))
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        check_heads(self.d_model, self.n_heads, self.n_kv_heads, rope=True)

    @property
    def head_dim(self) -> int:
        """Per-head width ``d_h = d_model / n_heads``."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LlamaConfig:
        """Build a config from a mapping; unknown keys raise ``ValueError`` naming them."""
        check_known_keys(cls, d)
        return cls(**dict(d))

    def replace(self, **changes: Any) -> LlamaConfig:
        """A copy with ``changes`` applied (validated again; unknown fields raise)."""
        return LlamaConfig.from_dict({**self.to_dict(), **changes})


def swiglu_hidden(d_model: int, multiple_of: int = 8) -> int:
    """SwiGLU width ``⌊(8/3)·d / m⌋·m`` that keeps the MLP at ~``8 d²`` parameters.

    Shazeer 2020 ("GLU Variants Improve Transformer") shrinks the 4d hidden layer by 2/3 when
    the FFN gains its third matrix; Llama rounds up to a multiple of 256, we round down to a
    multiple of 8 so that small models stay close to the 8d² budget.
    """
    check_int("d_model", d_model)
    check_int("multiple_of", multiple_of)
    return max(multiple_of, (8 * d_model // 3) // multiple_of * multiple_of)
