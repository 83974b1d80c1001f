"""NeuroLlama (corteX.neurollama): the published toggles on the one decoder, per-token early exit,
presets with exact parameter accounting. See ``specs/reference-systems.md`` §1."""

from neuro_models.neurollama.config import (
    ExitMode,
    NeuroLlamaConfig,
    SynapticMode,
    neurollama_8b,
    neurollama_70b,
    neurollama_405b,
)
from neuro_models.neurollama.early_exit import (
    ExitResult,
    calibrate_exits,
    early_exit_decode,
    truncated_nll,
)
from neuro_models.neurollama.model import NeuroLlama, training_loss
from neuro_models.neurollama.presets import (
    OverheadRow,
    build_meta,
    count_total,
    format_table,
    match_ffn,
    overhead_table,
    parameter_groups,
)

__all__ = [
    "ExitMode",
    "ExitResult",
    "NeuroLlama",
    "NeuroLlamaConfig",
    "OverheadRow",
    "SynapticMode",
    "build_meta",
    "calibrate_exits",
    "count_total",
    "early_exit_decode",
    "format_table",
    "match_ffn",
    "neurollama_8b",
    "neurollama_70b",
    "neurollama_405b",
    "overhead_table",
    "parameter_groups",
    "training_loss",
    "truncated_nll",
]
