"""Ops with a kernel: each is a folder with ``reference.py``, ``triton.py`` and a dispatcher."""

from neuro_core.ops.rmsnorm import RMSNorm, rms_norm

__all__ = ["RMSNorm", "rms_norm"]
