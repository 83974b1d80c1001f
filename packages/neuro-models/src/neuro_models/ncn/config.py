"""Configuration of the NCN model: one backbone config and an optional control-network config.

Defaults are the published 18M run (``Mmorgan-ML/Neuromodulatory-Control-Networks`` @ ac0eb85,
``logs/run_1``): d = 256, 6 layers, 8 heads, FFN 1024, context 512, GPT-2 BPE (V = 50257), control
network hidden 64 with 2 pooling heads, dropout 0.1, RMSNorm ε 1e-5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from neuro_core.validation import check_in_range, check_positive
from neuro_models.config import check_known_keys

#: ``"gpt2"``: the published backbone (learned absolute positions, GELU FFN with biases,
#: bias-free attention, tied embeddings). ``"llama"``: RoPE, SwiGLU FFN, no biases, tied.
Backbone = Literal["gpt2", "llama"]
#: ``"causal"``: position t pools over positions ≤ t (ours, the default). ``"noncausal"``: the
#: published pooling over all T positions, which lets every position see the future.
Pooling = Literal["causal", "noncausal"]
#: ``"intended"``: the paper's bias protocol (β ≈ 1, γ ≈ 0.95, g = 1). ``"published"``: the biases
#: zeroed by the global weight init, as in the published code (β ≈ 0.70, γ = 0.5, g = 1).
SignalInit = Literal["intended", "published"]

_BACKBONES = ("gpt2", "llama")
_POOLINGS = ("causal", "noncausal")
_INITS = ("intended", "published")


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    """The neuromodulatory control network (one network feeding every layer).

    Attributes:
        hidden: width of the control MLP (published run: 64; the paper's §5.1 says 256).
        heads: heads of the salience pooling attention (published run: 2).
        pooling: causal (default) or the published non-causal pooling.
        init: bias-init protocol of the signal head.
        precision_floor: added to softplus so β > 0 (published 0.01).
        precision_max: upper clamp of β (published 4.0).
        gain_bias, precision_bias, gate_bias: the "intended" biases of the signal head, paper
            §4.1.4: 0 → g = 1; 0.525 → β = softplus(0.525) + 0.01 ≈ 1.0; 3 → γ = σ(3) ≈ 0.95.
    """

    hidden: int = 64
    heads: int = 2
    pooling: Pooling = "causal"
    init: SignalInit = "intended"
    precision_floor: float = 0.01
    precision_max: float = 4.0
    gain_bias: float = 0.0
    precision_bias: float = 0.525
    gate_bias: float = 3.0

    def __post_init__(self) -> None:
        check_positive("hidden", self.hidden)
        check_positive("heads", self.heads)
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        check_positive("precision_floor", self.precision_floor, allow_zero=True)
        if not self.precision_max > self.precision_floor:
            raise ValueError(
                f"precision_max must exceed precision_floor={self.precision_floor}, "
                f"got {self.precision_max}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControlConfig:
        """Build a config from a mapping; unknown keys raise ``ValueError`` naming them."""
        check_known_keys(cls, d)
        return cls(**dict(d))


@dataclass(frozen=True, kw_only=True)
class NCNConfig:
    """A decoder-only LM, optionally modulated by a control network.

    Attributes:
        vocab_size: V (published 50257, GPT-2 BPE).
        d_model: residual width d.
        n_layers: number of blocks L.
        n_heads: attention heads H (d must be divisible by H).
        ffn_dim: FFN hidden width F (GELU MLP for ``gpt2``, SwiGLU for ``llama``).
        max_seq_len: context length (size of the position table / RoPE cache).
        backbone: ``"gpt2"`` (published) or ``"llama"``.
        control: the control network, or None for the bare backbone (arm A′).
        dropout: on the embedding and on each sublayer output, in training only. The published
            code applies it twice per sublayer and also to attention probabilities; we apply it
            once and not to attention probabilities (the fused attention op has no dropout).
        norm_eps: RMSNorm ε (published 1e-5).
        rope_theta: RoPE base; only for ``llama`` (None → 10 000); setting it on ``gpt2`` raises.
        init_std: std of the N(0, σ) init of every Linear and Embedding (published 0.02).
        attention_backend: backend of the modulated attention op (see neuro-attention).
    """

    vocab_size: int = 50257
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    ffn_dim: int = 1024
    max_seq_len: int = 512
    backbone: Backbone = "gpt2"
    control: ControlConfig | None = field(default_factory=ControlConfig)
    dropout: float = 0.1
    norm_eps: float = 1e-5
    rope_theta: float | None = None
    init_std: float = 0.02
    attention_backend: Literal["auto", "reference", "sdpa", "blockwise", "triton"] = "auto"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "ffn_dim", "max_seq_len"):
            check_positive(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.backbone not in _BACKBONES:
            raise ValueError(f"backbone must be one of {_BACKBONES}, got {self.backbone!r}")
        if self.backbone == "llama" and (self.d_model // self.n_heads) % 2:
            raise ValueError("head_dim = d_model // n_heads must be even for RoPE (backbone)")
        if self.backbone == "gpt2" and self.rope_theta is not None:
            raise ValueError("rope_theta is only used by backbone='llama'; leave it None for gpt2")
        if self.rope_theta is not None:
            check_positive("rope_theta", self.rope_theta)
        if self.control is not None and self.d_model % self.control.heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by control.heads={self.control.heads}"
            )
        check_in_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_positive("norm_eps", self.norm_eps)
        check_positive("init_std", self.init_std)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def theta(self) -> float:
        """RoPE base actually used (llama only)."""
        return 10_000.0 if self.rope_theta is None else self.rope_theta

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field, ``control`` as a nested dict or None (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NCNConfig:
        """Inverse of :meth:`to_dict`; unknown keys (also inside ``control``) raise ``ValueError``
        naming them, and ``control`` must be a mapping, a :class:`ControlConfig` or None."""
        check_known_keys(cls, d)
        values = dict(d)
        control = values.get("control")
        if isinstance(control, Mapping):
            values["control"] = ControlConfig.from_dict(control)
        elif "control" in values and not (control is None or isinstance(control, ControlConfig)):
            raise ValueError(
                f"control must be a mapping, a ControlConfig or None, got {type(control).__name__}"
            )
        return cls(**values)


def published_config(**overrides: object) -> NCNConfig:
    """The published 18M NCN (18,007,762 parameters): arm C when combined with
    ``control=ControlConfig(pooling="noncausal", init="published")``."""
    return replace(NCNConfig(), **overrides)  # type: ignore[arg-type]
