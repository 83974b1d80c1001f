"""Spiking neurons with surrogate gradients, fused multi-step kernels, spiking FFN layers and a sparse recurrent network simulator."""

__version__ = "0.1.0"

__all__ = ["__version__"]
