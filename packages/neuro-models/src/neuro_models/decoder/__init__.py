"""The one decoder every reference model is a configuration of (Llama, NCN, and those to come).

A model is a :class:`DecoderConfig`: shape, positions, init, and typed parts per block (token
mixer, FFN, optional modulator), each a registered ``kind`` with options (:class:`Part`). See
:mod:`neuro_models.decoder.model` for the equations and :mod:`neuro_models.decoder.parts` for the
part protocols and the registry.
"""

from neuro_models.decoder.cache import KVCache
from neuro_models.decoder.config import SHAPE_FIELDS, DecoderConfig, Part, Positions, shape_kwargs
from neuro_models.decoder.functional import LOSS_CHUNK, apply_rope, rope_table, rotate
from neuro_models.decoder.model import Block, Decoder, DecoderOutput
from neuro_models.decoder.parts import (
    Attention,
    GeluMLP,
    SequenceContext,
    SwiGLU,
    register_ffn,
    register_mixer,
    register_modulator,
    registered,
)

__all__ = [
    "LOSS_CHUNK",
    "SHAPE_FIELDS",
    "Attention",
    "Block",
    "Decoder",
    "DecoderConfig",
    "DecoderOutput",
    "GeluMLP",
    "KVCache",
    "Part",
    "Positions",
    "SequenceContext",
    "SwiGLU",
    "apply_rope",
    "register_ffn",
    "register_mixer",
    "register_modulator",
    "registered",
    "rope_table",
    "rotate",
    "shape_kwargs",
]
