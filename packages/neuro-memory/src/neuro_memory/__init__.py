"""Hippocampal-style memory for sequence models: episodic stores, retrieval, place/grid/time cells
and theta-gamma positional encoding."""

from neuro_memory.centroid_index import (
    CentroidIndex,
    CentroidParams,
    centroid_insert,
    centroid_read,
    centroid_rebuild,
    init_centroid_index,
)
from neuro_memory.cognitive_map import (
    CognitiveMap,
    CognitiveMapParams,
    init_map,
    map_insert,
    map_query,
    spread_activation,
)
from neuro_memory.consolidation import Consolidated, ConsolidationParams, consolidate
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
from neuro_memory.grid_cells import (
    GridCellParams,
    GridCells,
    GridLayout,
    grid_cell_layout,
    grid_code,
)
from neuro_memory.importance import (
    ImportanceParams,
    importance_score,
    novelty,
    surprise_from_logits,
)
from neuro_memory.injection import InjectionParams, MemoryInjection
from neuro_memory.knn import KnnResult, knn_search
from neuro_memory.persistence import LoadedMemory, MemoryFileError, load_memory, save_memory
from neuro_memory.place_cells import PlaceCellEncoder, PlaceCellParams, PlaceCode, place_cell_code
from neuro_memory.retrieval import MemoryRetrieval, RetrievalParams
from neuro_memory.theta_gamma import (
    ThetaGammaEncoding,
    ThetaGammaParams,
    published_theta_gamma_encoding,
    theta_gamma_encoding,
)
from neuro_memory.time_cells import TimeCellParams, TimeCells, time_cell_code
from neuro_memory.write_path import (
    MemoryWriter,
    MemoryWrites,
    WriteParams,
    concat_writes,
    segment_pool,
    segment_positions,
    visibility,
    writes_from_state,
)

__version__ = "0.1.0"

__all__ = [
    "CentroidIndex",
    "CentroidParams",
    "CognitiveMap",
    "CognitiveMapParams",
    "Consolidated",
    "ConsolidationParams",
    "EpisodicMemory",
    "EpisodicParams",
    "EpisodicState",
    "FaissIndex",
    "GridCellParams",
    "GridCells",
    "GridLayout",
    "ImportanceParams",
    "InjectionParams",
    "KnnResult",
    "LoadedMemory",
    "MemoryFileError",
    "MemoryInjection",
    "MemoryRetrieval",
    "MemoryWriter",
    "MemoryWrites",
    "PlaceCellEncoder",
    "PlaceCellParams",
    "PlaceCode",
    "Replacement",
    "RetrievalParams",
    "Retrieved",
    "ThetaGammaEncoding",
    "ThetaGammaParams",
    "TimeCellParams",
    "TimeCells",
    "WriteParams",
    "__version__",
    "centroid_insert",
    "centroid_read",
    "centroid_rebuild",
    "concat_writes",
    "consolidate",
    "decay",
    "grid_cell_layout",
    "grid_code",
    "importance_score",
    "init_centroid_index",
    "init_map",
    "init_state",
    "knn_search",
    "load_memory",
    "map_insert",
    "map_query",
    "novelty",
    "place_cell_code",
    "published_theta_gamma_encoding",
    "read",
    "save_memory",
    "segment_pool",
    "segment_positions",
    "spread_activation",
    "surprise_from_logits",
    "theta_gamma_encoding",
    "time_cell_code",
    "visibility",
    "write",
    "writes_from_state",
]
