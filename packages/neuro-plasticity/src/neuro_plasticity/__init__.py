"""Composable plasticity rules (Hebbian, Oja, BCM, STDP, three-factor), chunked Hebbian fast weights with a Triton kernel, and continual-learning tools."""

__version__ = "0.1.0"

__all__ = ["__version__"]
