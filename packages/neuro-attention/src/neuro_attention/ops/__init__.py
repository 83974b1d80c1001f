"""Ops with several backends (reference spec, CPU path, Triton kernel)."""

from neuro_attention.ops.modulated_attention import AttentionBackend, PairGate, modulated_attention

__all__ = ["AttentionBackend", "PairGate", "modulated_attention"]
