"""Continual-learning tools: EWC, synaptic intelligence, replay, sleep consolidation, metaplasticity."""

from neuro_plasticity.continual.consolidation import SleepConfig, prune_weights, sleep
from neuro_plasticity.continual.ewc import EWC, diagonal_fisher
from neuro_plasticity.continual.metaplasticity import Metaplastic, laborieux_modulation
from neuro_plasticity.continual.replay import ReplayBuffer, ReplaySample
from neuro_plasticity.continual.si import SynapticIntelligence

__all__ = [
    "EWC",
    "Metaplastic",
    "ReplayBuffer",
    "ReplaySample",
    "SleepConfig",
    "SynapticIntelligence",
    "diagonal_fisher",
    "laborieux_modulation",
    "prune_weights",
    "sleep",
]
