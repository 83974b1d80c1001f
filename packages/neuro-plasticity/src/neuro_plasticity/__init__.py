"""Composable plasticity rules (Hebbian, Oja, BCM, STDP, three-factor), chunked Hebbian fast weights with a Triton kernel, and continual-learning tools."""

from neuro_plasticity.consolidation import (
    ConsolidatingRule,
    ConsolidationState,
    consolidating,
    two_regime_stdp,
)
from neuro_plasticity.hebbian import (
    BCMState,
    bcm,
    foldiak,
    hebbian,
    oja,
    reward_modulated_hebbian,
)
from neuro_plasticity.homeostasis import (
    ThresholdAdaptation,
    synaptic_scaling,
    threshold_adaptation,
)
from neuro_plasticity.layers import (
    HebbianAttention,
    HebbianCache,
    HebbianFastWeights,
    RewardModulatedHebbian,
)
from neuro_plasticity.neuromodulation import (
    ActivityModulator,
    ActivityModulatorParams,
    ActivityModulatorState,
    activity_modulator_init,
    activity_modulator_step,
    jaccard,
)
from neuro_plasticity.ops.event_stdp import EventPairSTDP, EventSTDPState, event_driven
from neuro_plasticity.ops.fast_weights import FastWeightState, fast_weights, fast_weights_step
from neuro_plasticity.rule import (
    ClipParams,
    EventPlasticityHook,
    PlasticityHook,
    Rule,
    Transform,
    chain,
    clip,
    eligibility,
    modulate,
    on_topology,
    prune,
    scale,
    weight_decay,
)
from neuro_plasticity.stdp import (
    PairSTDPParams,
    PairTraces,
    TripletTraces,
    pair_stdp,
    three_factor_stdp,
    triplet_stdp,
)
from neuro_plasticity.topology import CSR, Dense, Topology, local_csr

__version__ = "0.2.0"

__all__ = [
    "CSR",
    "ActivityModulator",
    "ActivityModulatorParams",
    "ActivityModulatorState",
    "BCMState",
    "ClipParams",
    "ConsolidatingRule",
    "ConsolidationState",
    "Dense",
    "EventPairSTDP",
    "EventPlasticityHook",
    "EventSTDPState",
    "FastWeightState",
    "HebbianAttention",
    "HebbianCache",
    "HebbianFastWeights",
    "PairSTDPParams",
    "PairTraces",
    "PlasticityHook",
    "RewardModulatedHebbian",
    "Rule",
    "ThresholdAdaptation",
    "Topology",
    "Transform",
    "TripletTraces",
    "__version__",
    "activity_modulator_init",
    "activity_modulator_step",
    "bcm",
    "chain",
    "clip",
    "consolidating",
    "eligibility",
    "event_driven",
    "fast_weights",
    "fast_weights_step",
    "foldiak",
    "hebbian",
    "jaccard",
    "local_csr",
    "modulate",
    "oja",
    "on_topology",
    "pair_stdp",
    "prune",
    "reward_modulated_hebbian",
    "scale",
    "synaptic_scaling",
    "three_factor_stdp",
    "threshold_adaptation",
    "triplet_stdp",
    "two_regime_stdp",
    "weight_decay",
]
