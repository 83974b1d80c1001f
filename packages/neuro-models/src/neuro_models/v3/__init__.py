"""Brain-Inspired LLM v3 (``gowrav-vishwakarma/qllm2`` ``v3/``): a faithful port with the published
non-causal pieces behind flags, the published training path (which never updates a weight), and a
local-learning trainer. See ``specs/reference-systems.md`` §5 and ``docs/guides/v3.rst``."""

from neuro_models.v3.config import Routing, Softmax, Spiking, V3Config, published_small
from neuro_models.v3.local import LocalLearningConfig, LocalStep, LocalTrainer
from neuro_models.v3.model import (
    ConsciousnessLayer,
    DevelopmentalPlasticity,
    LongTermMemory,
    ShortTermMemory,
    SpikingLayer,
    V3Model,
    count_parameters,
    expected_parameters,
)
from neuro_models.v3.published import (
    PublishedComparison,
    PublishedEpoch,
    byte_batches,
    consciousness_state,
    published_comparison,
    published_step,
    published_train,
    published_validate,
)

__all__ = [
    "ConsciousnessLayer",
    "DevelopmentalPlasticity",
    "LocalLearningConfig",
    "LocalStep",
    "LocalTrainer",
    "LongTermMemory",
    "PublishedComparison",
    "PublishedEpoch",
    "Routing",
    "ShortTermMemory",
    "Softmax",
    "Spiking",
    "SpikingLayer",
    "V3Config",
    "V3Model",
    "byte_batches",
    "consciousness_state",
    "count_parameters",
    "expected_parameters",
    "published_comparison",
    "published_small",
    "published_step",
    "published_train",
    "published_validate",
]
