"""Reference models, the iso-parameter Llama baseline and the training/evaluation/generation harness."""

__version__ = "0.1.0"

__all__ = ["__version__"]
