"""Spiking neurons with surrogate gradients, fused multi-step kernels, spiking FFN layers and a sparse recurrent network simulator.

Layout: spike and input tensors are ``[T, B, ...]`` (time first), neuron state ``[B, ...]``.
"""

from neuro_spiking.adaptive_lif import (
    AdaptiveLIF,
    AdaptiveLIFParams,
    AdaptiveLIFState,
    adaptive_lif_init,
    adaptive_lif_scan,
    adaptive_lif_step,
)
from neuro_spiking.gif import GIF, GIFParams, GIFState, gif_init, gif_scan, gif_step
from neuro_spiking.izhikevich import (
    Izhikevich,
    IzhikevichParams,
    IzhikevichState,
    izhikevich_init,
    izhikevich_scan,
    izhikevich_step,
)
from neuro_spiking.lif import (
    IF,
    LIF,
    IFParams,
    LIFParams,
    LIFState,
    lif_init,
    lif_scan,
    lif_step,
    lif_trace,
)
from neuro_spiking.ops.lif_scan import LIFScanOutput, fused_lif_scan
from neuro_spiking.surrogates import (
    ATan,
    FastSigmoid,
    MultiBit,
    Rectangular,
    Sigmoid,
    Surrogate,
    Triangle,
    spike,
)

__version__ = "0.1.0"

__all__ = [
    "GIF",
    "IF",
    "LIF",
    "ATan",
    "AdaptiveLIF",
    "AdaptiveLIFParams",
    "AdaptiveLIFState",
    "FastSigmoid",
    "GIFParams",
    "GIFState",
    "IFParams",
    "Izhikevich",
    "IzhikevichParams",
    "IzhikevichState",
    "LIFParams",
    "LIFScanOutput",
    "LIFState",
    "MultiBit",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "Triangle",
    "__version__",
    "adaptive_lif_init",
    "adaptive_lif_scan",
    "adaptive_lif_step",
    "fused_lif_scan",
    "gif_init",
    "gif_scan",
    "gif_step",
    "izhikevich_init",
    "izhikevich_scan",
    "izhikevich_step",
    "lif_init",
    "lif_scan",
    "lif_step",
    "lif_trace",
    "spike",
]
