"""Configuration of the Brain-Inspired LLM v3 port: the published shape and the four flags.

Shape defaults are the published ``create_brain_inspired_model(vocab_size=256, dim=512,
num_layers=6)`` (``gowrav-vishwakarma/qllm2`` ``v3/`` @5271bfb; ``specs/reference-systems.md``
§5.1), which has exactly 16,420,584 parameters.

The defaults compute our causal version; :meth:`V3Config.published` sets the four flags to what
the published code computes:

=================  ==================================  =========================================
flag               ours (default)                      published
=================  ==================================  =========================================
``softmax``        ``"prefix"``: softmax of the         ``"sequence"``: softmax over all T
                   consciousness over positions ≤ t     positions (sees the future)
``spiking``        ``"causal"``: a LIF scan over time   ``"global"``: one membrane per feature
                   per sequence, state reset per call   fed the batch-and-time mean, carried
                                                        across calls in a Parameter
``routing``        ``"token"``: each token picks its    ``"batch"``: one branch for the whole
                   developmental branch from its own    batch from the batch mean of the
                   feature variance                     sequence-and-feature variance
``memory_writes``  ``False``: no ``.data`` writes       ``True``: in training, the forward
                                                        overwrites the short-term slots (EMA of
                                                        the batch-and-time mean), the episodic
                                                        memory (consolidation) and the usage
                                                        statistics
=================  ==================================  =========================================

Parameter count does not depend on the flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from neuro_core.validation import check_int
from neuro_models.config import check_known_keys

Softmax = Literal["prefix", "sequence"]
Spiking = Literal["causal", "global"]
Routing = Literal["token", "batch"]
_CHOICES: dict[str, tuple[str, ...]] = {
    "softmax": ("prefix", "sequence"),
    "spiking": ("causal", "global"),
    "routing": ("token", "batch"),
}


@dataclass(frozen=True, kw_only=True)
class V3Config:
    """Shape, published constants and the causal/published flags of :class:`~neuro_models.v3.V3Model`.

    Attributes:
        vocab_size: bytes, 256 (the published model embeds ``ord(c)``; characters ≥ 256 would
            crash it).
        dim: width d, 512.
        num_layers: repetitions of the shared memory block, each with its own spiking layer and
            developmental-plasticity module, 6.
        memory_size: short-term memory slots, 64.
        concept_dim: long-term concept space, 256.
        num_concepts: long-term concepts, 1024.
        episodic_slots: long-term episodic patterns, 100 (hard-coded in the published code).
        max_dim: length of each developmental module's usage statistics (never read by the
            forward pass), 1024.
        max_seq_len: longest sequence accepted (the model has no positions; this only bounds
            :func:`~neuro_models.generate.generate`).
        spike_threshold: membrane threshold of the spiking layers, 1.0.
        spike_decay: membrane and spike-history decay, 0.9.
        refractory_level: a feature is silenced while its spike history exceeds it, 0.1.
        complexity_threshold: below this variance the developmental module uses its base
            Linear, 0.1.
        complexity_scale: branch ``k = int(scale · variance) mod 3``, 10.
        softmax, spiking, routing, memory_writes: see the module docstring.
    """

    vocab_size: int = 256
    dim: int = 512
    num_layers: int = 6
    memory_size: int = 64
    concept_dim: int = 256
    num_concepts: int = 1024
    episodic_slots: int = 100
    max_dim: int = 1024
    max_seq_len: int = 2048
    spike_threshold: float = 1.0
    spike_decay: float = 0.9
    refractory_level: float = 0.1
    complexity_threshold: float = 0.1
    complexity_scale: float = 10.0
    softmax: Softmax = "prefix"
    spiking: Spiking = "causal"
    routing: Routing = "token"
    memory_writes: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "num_layers", "memory_size", "concept_dim",
                     "num_concepts", "episodic_slots", "max_dim", "max_seq_len"):  # fmt: skip
            value = getattr(self, name)
            check_int(name, value)
        for name in ("spike_threshold", "refractory_level", "complexity_threshold",
                     "complexity_scale"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        d = self.spike_decay
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0.0 <= d < 1.0:
            raise ValueError(f"spike_decay must be in [0, 1), got {d!r}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.memory_writes, bool):
            raise ValueError(f"memory_writes must be a bool, got {self.memory_writes!r}")

    @property
    def is_causal(self) -> bool:
        """True when every flag is ours (the model is causal, batch- and call-independent)."""
        return (
            self.softmax == "prefix"
            and self.spiking == "causal"
            and self.routing == "token"
            and not self.memory_writes
        )

    @classmethod
    def published(cls, **changes: Any) -> V3Config:
        """The published computation: every flag set to its published value (then ``changes``)."""
        flags: dict[str, Any] = {
            "softmax": "sequence",
            "spiking": "global",
            "routing": "batch",
            "memory_writes": True,
        }
        return cls(**{**flags, **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V3Config:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        check_known_keys(cls, d)
        return cls(**dict(d))

    def replace(self, **changes: Any) -> V3Config:
        """A copy with ``changes`` applied (validated again)."""
        return V3Config.from_dict({**self.to_dict(), **changes})


def published_small() -> V3Config:
    """The brain model of the published speed/memory comparison (``simple_brain_test``):
    d = 128, 4 layers, every other default; 1,142,760 parameters (the "4.38×" denominator)."""
    return V3Config.published(dim=128, num_layers=4)
