"""Brain-inspired training objectives: small, composable loss terms reported separately."""

from neuro_objectives.calibration import (
    DEFAULT_SOFT_BIN_TEMPERATURE,
    PUBLISHED_NUM_BINS,
    PlattScaling,
    calibration_loss,
    confidence_and_correct,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
)
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
from neuro_objectives.specialization import (
    LN2,
    column_attention_mass,
    js_divergence,
    mean_pairwise_js,
    specialization_loss,
    specialization_loss_from_mass,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SOFT_BIN_TEMPERATURE",
    "LN2",
    "PUBLISHED_CONTRASTIVE_WEIGHT",
    "PUBLISHED_ERROR_DECAY",
    "PUBLISHED_HORIZON",
    "PUBLISHED_NUM_BINS",
    "PUBLISHED_NUM_NEGATIVES",
    "PUBLISHED_PREDICTION_WEIGHT",
    "PUBLISHED_WEIGHT",
    "ContrastivePredictiveCoding",
    "ErrorSignalState",
    "HomeostaticRegularizer",
    "PlattScaling",
    "PredictionErrorSignal",
    "PredictionHead",
    "PredictiveCodingLayer",
    "PredictiveCodingOutput",
    "SurpriseLoss",
    "__version__",
    "calibration_loss",
    "column_attention_mass",
    "confidence_and_correct",
    "expected_calibration_error",
    "fit_platt",
    "fit_temperature",
    "homeostatic_penalty",
    "homeostatic_terms",
    "info_nce_terms",
    "js_divergence",
    "leaky_sequence_sum",
    "mean_pairwise_js",
    "prediction_error",
    "specialization_loss",
    "specialization_loss_from_mass",
]
