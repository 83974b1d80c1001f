"""Reference models, the iso-parameter Llama baseline and the training/evaluation/generation harness."""

__version__ = "0.1.0"

from neuro_models.bundle import Bundle, BundleError, load_bundle, save_bundle
from neuro_models.config import LlamaConfig
from neuro_models.evaluate import EvalResult, mean_std
from neuro_models.llama import KVCache, Llama
from neuro_models.params import ParamCount, count_parameters, match_parameters
from neuro_models.train import TrainConfig, TrainResult

__all__ = [
    "Bundle",
    "BundleError",
    "EvalResult",
    "KVCache",
    "Llama",
    "LlamaConfig",
    "ParamCount",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "count_parameters",
    "load_bundle",
    "match_parameters",
    "mean_std",
    "save_bundle",
]
