"""Hippocampal-style memory for sequence models: episodic key-value stores and retrieval."""

from neuro_memory.episodic import (
    EpisodicMemory,
    EpisodicParams,
    EpisodicState,
    Replacement,
    Retrieved,
    decay,
    init_state,
    read,
    write,
)
from neuro_memory.faiss_index import FaissIndex
from neuro_memory.retrieval import MemoryRetrieval, RetrievalParams

__version__ = "0.1.0"

__all__ = [
    "EpisodicMemory",
    "EpisodicParams",
    "EpisodicState",
    "FaissIndex",
    "MemoryRetrieval",
    "Replacement",
    "RetrievalParams",
    "Retrieved",
    "__version__",
    "decay",
    "init_state",
    "read",
    "write",
]
