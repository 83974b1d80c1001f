"""Ops with kernels: each folder holds the reference (spec), other backends and one dispatcher."""

from neuro_plasticity.ops.fast_weights import FastWeightState, fast_weights, fast_weights_step

__all__ = ["FastWeightState", "fast_weights", "fast_weights_step"]
