"""Brain-inspired attention mechanisms on one fused, causal attention op (synaptic, column, habituation, population coding, neuromodulated precision and gain)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
