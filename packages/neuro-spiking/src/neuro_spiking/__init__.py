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
from neuro_spiking.encoding import (
    CalibratedReadout,
    delta_encode,
    first_spike_time,
    latency_encode,
    poisson_encode,
    rate_encode,
    spike_count,
    token_encode,
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
from neuro_spiking.layers import HybridFFN, SpikingFFN, ffn_parameter_count
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
from neuro_spiking.monitor import ActivityMonitor, PopulationStats
from neuro_spiking.network import (
    EventPlasticityHook,
    LogNormalWeights,
    Network,
    NetworkState,
    NeuromodulatorHook,
    PlasticityHook,
    PoissonInput,
    Population,
    Projection,
    RunResult,
    SpikeSource,
    random_projection,
)
from neuro_spiking.ops.alif_scan import fused_alif_scan
from neuro_spiking.ops.gif_scan import fused_gif_scan
from neuro_spiking.ops.lif_scan import LIFScanOutput, fused_lif_scan
from neuro_spiking.presets import HebLLMRole, hebllm_population
from neuro_spiking.sleep_phase import (
    ConsolidationHook,
    SleepParams,
    SleepReport,
    last_spike_sets,
    raster,
    sleep,
)
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

__version__ = "0.2.0"

__all__ = [
    "GIF",
    "IF",
    "LIF",
    "ATan",
    "ActivityMonitor",
    "AdaptiveLIF",
    "AdaptiveLIFParams",
    "AdaptiveLIFState",
    "CalibratedReadout",
    "ConsolidationHook",
    "EventPlasticityHook",
    "FastSigmoid",
    "GIFParams",
    "GIFState",
    "HebLLMRole",
    "HybridFFN",
    "IFParams",
    "Izhikevich",
    "IzhikevichParams",
    "IzhikevichState",
    "LIFParams",
    "LIFScanOutput",
    "LIFState",
    "LogNormalWeights",
    "MultiBit",
    "Network",
    "NetworkState",
    "NeuromodulatorHook",
    "PlasticityHook",
    "PoissonInput",
    "Population",
    "PopulationStats",
    "Projection",
    "Rectangular",
    "RunResult",
    "Sigmoid",
    "SleepParams",
    "SleepReport",
    "SpikeSource",
    "SpikingFFN",
    "Surrogate",
    "Triangle",
    "__version__",
    "adaptive_lif_init",
    "adaptive_lif_scan",
    "adaptive_lif_step",
    "delta_encode",
    "ffn_parameter_count",
    "first_spike_time",
    "fused_alif_scan",
    "fused_gif_scan",
    "fused_lif_scan",
    "gif_init",
    "gif_scan",
    "gif_step",
    "hebllm_population",
    "izhikevich_init",
    "izhikevich_scan",
    "izhikevich_step",
    "last_spike_sets",
    "latency_encode",
    "lif_init",
    "lif_scan",
    "lif_step",
    "lif_trace",
    "poisson_encode",
    "random_projection",
    "raster",
    "rate_encode",
    "sleep",
    "spike",
    "spike_count",
    "token_encode",
]
