"""Brain-inspired training objectives: small, composable loss terms reported separately."""

from neuro_objectives.contrastive import (
    PUBLISHED_CONTRASTIVE_WEIGHT,
    PUBLISHED_HORIZON,
    PUBLISHED_NUM_NEGATIVES,
    ContrastivePredictiveCoding,
    info_nce_terms,
)
from neuro_objectives.homeostatic import (
    PUBLISHED_WEIGHT,
    HomeostaticRegularizer,
    homeostatic_penalty,
    homeostatic_terms,
)
from neuro_objectives.predictive import (
    PUBLISHED_ERROR_DECAY,
    PUBLISHED_PREDICTION_WEIGHT,
    ErrorSignalState,
    PredictionErrorSignal,
    PredictionHead,
    PredictiveCodingLayer,
    PredictiveCodingOutput,
    SurpriseLoss,
    leaky_sequence_sum,
    prediction_error,
)

__version__ = "0.1.0"

__all__ = [
    "PUBLISHED_CONTRASTIVE_WEIGHT",
    "PUBLISHED_ERROR_DECAY",
    "PUBLISHED_HORIZON",
    "PUBLISHED_NUM_NEGATIVES",
    "PUBLISHED_PREDICTION_WEIGHT",
    "PUBLISHED_WEIGHT",
    "ContrastivePredictiveCoding",
    "ErrorSignalState",
    "HomeostaticRegularizer",
    "PredictionErrorSignal",
    "PredictionHead",
    "PredictiveCodingLayer",
    "PredictiveCodingOutput",
    "SurpriseLoss",
    "__version__",
    "homeostatic_penalty",
    "homeostatic_terms",
    "info_nce_terms",
    "leaky_sequence_sum",
    "prediction_error",
]
