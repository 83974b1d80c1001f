"""Brain-inspired training objectives: small, composable loss terms reported separately."""

from neuro_objectives.homeostatic import (
    PUBLISHED_WEIGHT,
    HomeostaticRegularizer,
    homeostatic_penalty,
    homeostatic_terms,
)

__version__ = "0.1.0"

__all__ = [
    "PUBLISHED_WEIGHT",
    "HomeostaticRegularizer",
    "__version__",
    "homeostatic_penalty",
    "homeostatic_terms",
]
