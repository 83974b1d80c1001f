"""Brain-inspired training objectives as small, composable loss terms that report each term separately."""

__version__ = "0.1.0"

__all__ = ["__version__"]
