"""Hippocampal-style memory for sequence models: episodic key-value stores and retrieval."""

__version__ = "0.1.0"

__all__ = ["__version__"]
