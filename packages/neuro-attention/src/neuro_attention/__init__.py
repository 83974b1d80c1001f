"""Brain-inspired attention mechanisms on one fused, causal attention op.

Synaptic, column, habituation, population coding, neuromodulated precision and gain.

Layout everywhere: ``[B, T, H, D]`` for per-head tensors, ``[B, T, H]`` for per-head, per-token
signals, ``[B, T, d_model]`` for layer inputs.
"""

from neuro_attention.ops import AttentionBackend, PairGate, modulated_attention

__version__ = "0.1.0"

__all__ = ["AttentionBackend", "PairGate", "__version__", "modulated_attention"]
