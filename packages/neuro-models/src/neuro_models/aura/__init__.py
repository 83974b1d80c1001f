"""Aura (``auralmn/aura-snn-rag``): the HippocampalTransformer and the SNN-RAG transformer on the
one decoder, with the published behaviours behind flags.

* :class:`HippocampalTransformer` with :class:`AuraConfig`: place-cell residual, theta-gamma code,
  embedding LayerNorm, pre-LN blocks with biased projections, prosody and memory query gates,
  GELU FFN, tied head (:mod:`neuro_models.aura.model`).
* the SNN-RAG transformer: the same model with :func:`snn_rag_config` (hybrid spiking FFNs in
  every other layer, a memory read in every layer, the bank in ``model.memory``).
* presets :func:`notebook_config` (the trained model, every published flag) and
  :func:`colab_config`; :func:`training_loss` (``published_labels=True``: the copy task) and
  :func:`notebook_eval_ppl` (the published "Eval PPL" on training documents).

Importing this package registers the mixer ``"aura_attention"`` and the modulator
``"aura_prosody"`` with the decoder.
"""

from neuro_models.aura.config import (
    AuraConfig,
    RetrievalConfig,
    colab_config,
    notebook_config,
    snn_rag_config,
)
from neuro_models.aura.model import HippocampalTransformer, count_formula, decoder_config
from neuro_models.aura.parts import (
    AuraSignals,
    HippocampalAttention,
    MemoryBank,
    PlaceCellEmbedding,
    ProsodyGates,
    ThetaGammaPositions,
    prosody_factor,
)
from neuro_models.aura.protocol import notebook_eval_ppl, training_loss

__all__ = [
    "AuraConfig",
    "AuraSignals",
    "HippocampalAttention",
    "HippocampalTransformer",
    "MemoryBank",
    "PlaceCellEmbedding",
    "ProsodyGates",
    "RetrievalConfig",
    "ThetaGammaPositions",
    "colab_config",
    "count_formula",
    "decoder_config",
    "notebook_config",
    "notebook_eval_ppl",
    "prosody_factor",
    "snn_rag_config",
    "training_loss",
]
