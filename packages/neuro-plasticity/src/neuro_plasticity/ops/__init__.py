"""Ops with kernels: each folder holds the reference (spec), other backends and one dispatcher."""

from neuro_plasticity.ops.event_stdp import EventPairSTDP, EventSTDPState, event_driven
from neuro_plasticity.ops.fast_weights import FastWeightState, fast_weights, fast_weights_step

__all__ = [
    "EventPairSTDP",
    "EventSTDPState",
    "FastWeightState",
    "event_driven",
    "fast_weights",
    "fast_weights_step",
]
