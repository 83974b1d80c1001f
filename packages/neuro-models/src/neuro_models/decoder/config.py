"""Configuration of the one decoder: shape, positions, init, and the typed parts of every block.

A block is ``x + drop(g·Mixer(norm(x); β))`` then ``x + drop(g·γ·FFN(norm(x)))`` (pre-norm); each
part is a :class:`Part`: a registered ``kind`` (see :mod:`neuro_models.decoder.parts`) and its
options, so a whole model is a JSON-serializable value that a bundle can rebuild.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from neuro_core.validation import check_int
from neuro_models.config import _check_float, check_heads, check_known_keys

#: ``"rope"``: rotary embeddings on queries and keys (Su et al. 2021). ``"learned"``: a learned
#: absolute position table added to the token embedding (GPT-2).
Positions = Literal["rope", "learned"]
_POSITIONS = ("rope", "learned")


#: The shape fields that model configurations (Llama, Aura, NCN) share with
#: :class:`DecoderConfig` under the same names.
SHAPE_FIELDS = (
    "vocab_size",
    "d_model",
    "n_layers",
    "n_heads",
    "ffn_dim",
    "max_seq_len",
    "norm_eps",
)


def shape_kwargs(config: Any) -> dict[str, Any]:
    """The :data:`SHAPE_FIELDS` of a model configuration, as keyword arguments of
    :class:`DecoderConfig` (the model's own mapping adds the rest)."""
    return {name: getattr(config, name) for name in SHAPE_FIELDS}


@dataclass(frozen=True)
class Part:
    """One typed part of a block: a registered ``kind`` and its keyword ``options``.

    ``Part("attention")``, ``Part("gelu", {"bias": True})``. Options must be JSON values (they
    are saved in bundles); the factory registered for ``kind`` validates them.
    """

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"kind must be a non-empty str, got {self.kind!r}")
        if not isinstance(self.options, Mapping):
            raise ValueError(f"options must be a mapping, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": dict(self.options)}

    @classmethod
    def coerce(cls, name: str, value: object) -> Part:
        """``value`` as a Part: a Part, a kind string, or a ``{"kind", "options"}`` mapping."""
        if isinstance(value, Part):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"kind", "options"})
            if unknown or "kind" not in value:
                raise ValueError(
                    f"{name}: a part mapping has keys kind, options; got {sorted(value)}"
                )
            return cls(value["kind"], value.get("options", {}))
        raise ValueError(f"{name} must be a Part, a kind string or a mapping, got {value!r}")


PartOrLayers = Part | tuple[Part, ...]


@dataclass(frozen=True, kw_only=True)
class DecoderConfig:
    """Shape, positions, init and parts of a :class:`~neuro_models.decoder.Decoder`.

    Attributes:
        vocab_size: token ids ``V``.
        d_model: residual width ``d`` (divisible by ``n_heads``).
        n_layers: blocks ``L``.
        n_heads: query heads ``H``.
        n_kv_heads: key/value heads (grouped-query attention; divides ``n_heads``); None means
            ``n_heads``.
        ffn_dim: hidden width ``F`` of the FFN parts.
        max_seq_len: longest sequence (prompt + generated) the model accepts.
        positions: ``"rope"`` or ``"learned"``.
        rope_theta: RoPE base θ.
        norm_eps: RMSNorm ε.
        init_std: σ of the N(0, σ) init of every Linear and Embedding (biases 0, norms 1).
        scaled_residual_init: residual output projections (a part's ``residual_projections()``)
            drawn from N(0, σ/√(2L)) (GPT-2 / Llama convention).
        tie_embeddings: the output projection is the token embedding.
        dropout: on the embedding and on each sublayer output, in training only (0: none).
        mixer: token mixer of every block (one :class:`Part`), or one per layer (a tuple).
        ffn: FFN of every block, or one per layer.
        modulator: optional part emitting per-token, per-layer signals (gain g, precision β,
            gate γ) from the embedding stream, consumed by every block (the NCN control network).
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    ffn_dim: int
    max_seq_len: int = 2048
    positions: Positions = "rope"
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    scaled_residual_init: bool = True
    tie_embeddings: bool = True
    dropout: float = 0.0
    mixer: PartOrLayers = Part("attention")
    ffn: PartOrLayers = Part("swiglu")
    modulator: Part | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "ffn_dim", "max_seq_len"):
            check_int(name, getattr(self, name))
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        check_int("n_kv_heads", self.n_kv_heads)
        for name in ("rope_theta", "norm_eps", "init_std"):
            _check_float(name, getattr(self, name))
        for name in ("scaled_residual_init", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.positions not in _POSITIONS:
            raise ValueError(f"positions must be one of {_POSITIONS}, got {self.positions!r}")
        if not (isinstance(self.dropout, int | float) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        check_heads(self.d_model, self.n_heads, self.kv_heads, rope=self.positions == "rope")
        for name in ("mixer", "ffn"):
            value = getattr(self, name)
            if isinstance(value, tuple | list):
                parts = tuple(Part.coerce(f"{name}[{i}]", p) for i, p in enumerate(value))
                if len(parts) != self.n_layers:
                    raise ValueError(
                        f"{name}: one part per layer needs {self.n_layers} parts, got {len(parts)}"
                    )
                object.__setattr__(self, name, parts)
            else:
                object.__setattr__(self, name, Part.coerce(name, value))
        if self.modulator is not None:
            object.__setattr__(self, "modulator", Part.coerce("modulator", self.modulator))

    @property
    def head_dim(self) -> int:
        """Per-head width ``d_h = d_model / n_heads``."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """``n_kv_heads`` as an int (never None after construction)."""
        assert self.n_kv_heads is not None
        return self.n_kv_heads

    def mixer_at(self, layer: int) -> Part:
        """The token-mixer part of block ``layer``."""
        return self.mixer[layer] if isinstance(self.mixer, tuple) else self.mixer

    def ffn_at(self, layer: int) -> Part:
        """The FFN part of block ``layer``."""
        return self.ffn[layer] if isinstance(self.ffn, tuple) else self.ffn

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field, parts as ``{"kind", "options"}`` (JSON-serializable)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Part):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [p.to_dict() for p in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        check_known_keys(cls, d)
        values = dict(d)
        for name in ("mixer", "ffn"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> DecoderConfig:
        """A copy with ``changes`` applied (validated again)."""
        return DecoderConfig.from_dict({**self.to_dict(), **changes})
