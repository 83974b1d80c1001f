"""Neuromodulatory Control Networks (Morgan 2025): the control network, its consumers, generation
with a KV cache, and signal instrumentation.

The control network lives here, in neuro-models, rather than in a component package because it is
defined by its coupling to every block (attention precision and gain, FFN gate); the reusable
consumer, ``neuro_attention.ops.modulated_attention``, is in neuro-attention, and the homeostatic
regularizer is ``neuro_objectives.HomeostaticRegularizer``.
"""

from neuro_models.ncn.config import (
    Backbone,
    ControlConfig,
    NCNConfig,
    Pooling,
    SignalInit,
    published_config,
)
from neuro_models.ncn.control import (
    ControlNetwork,
    PoolCache,
    SaliencePooling,
    Signals,
    intended_signal_values,
    signals_from_logits,
)
from neuro_models.ncn.generate import generate
from neuro_models.ncn.instrument import (
    SIGNAL_NAMES,
    plot_scan,
    scan,
    signal_statistics,
    token_response,
)
from neuro_models.ncn.model import (
    NCNCache,
    NCNModel,
    NCNOutput,
    modulated_attention_reference,
)

__all__ = [
    "SIGNAL_NAMES",
    "Backbone",
    "ControlConfig",
    "ControlNetwork",
    "NCNCache",
    "NCNConfig",
    "NCNModel",
    "NCNOutput",
    "PoolCache",
    "Pooling",
    "SaliencePooling",
    "SignalInit",
    "Signals",
    "generate",
    "intended_signal_values",
    "modulated_attention_reference",
    "plot_scan",
    "published_config",
    "scan",
    "signal_statistics",
    "signals_from_logits",
    "token_response",
]
