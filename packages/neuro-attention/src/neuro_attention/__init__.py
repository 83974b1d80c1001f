"""Brain-inspired attention mechanisms on one fused, causal attention op.

Synaptic, column, habituation, population coding, neuromodulated precision and gain.
Layout everywhere: ``[B, T, H, D]`` for per-head tensors, ``[B, T, H]`` for per-head, per-token
signals, ``[B, T, d_model]`` for layer inputs.
"""

from neuro_attention.columns import (
    ColumnAttentionOutput,
    CorticalColumnAttention,
    HierarchicalColumnOrganizer,
    LateralInhibition,
    column_attention_mass,
    column_specialization,
    js_divergence,
    specialization_from_mass,
)
from neuro_attention.habituation import (
    AttentionDecay,
    HabituatingAttention,
    HabituationMode,
    HabituationState,
    NoveltyDetector,
    attention_decay_step,
    habituation_exposure,
)
from neuro_attention.layer import (
    NeuroAttention,
    NeuroAttentionCache,
    NeuroAttentionConfig,
    NeuroAttentionOutput,
)
from neuro_attention.modulation import MemoryTemperature, NeuromodulatorySignals, ProsodyQueryGate
from neuro_attention.ops import AttentionBackend, PairGate, modulated_attention
from neuro_attention.population import (
    AdaptiveHeadTemperature,
    ConfidenceWeightedVoting,
    EntropyBasedVoting,
    PopulationCodedAttention,
    PopulationVectorDecoder,
)
from neuro_attention.synaptic import (
    NeuromodulatedAttention,
    SynapticModulationMatrix,
    SynapticScaling,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveHeadTemperature",
    "AttentionBackend",
    "AttentionDecay",
    "ColumnAttentionOutput",
    "ConfidenceWeightedVoting",
    "CorticalColumnAttention",
    "EntropyBasedVoting",
    "HabituatingAttention",
    "HabituationMode",
    "HabituationState",
    "HierarchicalColumnOrganizer",
    "LateralInhibition",
    "MemoryTemperature",
    "NeuroAttention",
    "NeuroAttentionCache",
    "NeuroAttentionConfig",
    "NeuroAttentionOutput",
    "NeuromodulatedAttention",
    "NeuromodulatorySignals",
    "NoveltyDetector",
    "PairGate",
    "PopulationCodedAttention",
    "PopulationVectorDecoder",
    "ProsodyQueryGate",
    "SynapticModulationMatrix",
    "SynapticScaling",
    "__version__",
    "attention_decay_step",
    "column_attention_mass",
    "column_specialization",
    "habituation_exposure",
    "js_divergence",
    "modulated_attention",
    "specialization_from_mass",
]
