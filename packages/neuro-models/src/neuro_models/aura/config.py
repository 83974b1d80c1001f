"""Configuration of Aura's HippocampalTransformer and SNN-RAG transformer, and the published presets.

Source: ``auralmn/aura-snn-rag`` @ d0fc21a (reference-systems §3): ``notebookforaura.py`` (the
Colab notebook that trained the published model), ``colab_l4_training.py`` (presets "test",
"medium", "full") and ``src/core/language_zone/*``. One config describes both models: the
HippocampalTransformer is this config with GELU FFNs and no retrieval; the SNN-RAG transformer
adds spiking/hybrid FFNs in some layers and a retrieval memory read in some layers
(:func:`snn_rag_config`).

Ours by default, the published behaviour behind a flag:

* ``positions="theta_gamma"``: neuro-memory's multiscale theta-gamma code (exact phases at any
  position) times a learnable amplitude that starts at the embedding's scale; ``"published_theta_gamma"`` is Aura's (rank ≤ 8, period
  ``max_seq_len − 1``, ``3d`` learnable parameters); ``"rope"`` is arm (c) of the reproduction.
* ``prosody="zeros"``: the prosody gate sees zeros (a learned per-head query temperature);
  ``"random"``: U[0, 1)⁴ noise per token at every call (the notebook's training batches);
  ``"amygdala"``: an untrained MLP on the sequence- and batch-mean embedding (the Colab script),
  non-causal and coupling the batch.
* ``store_memory=False``; ``True`` writes the mean final hidden state of every sequence into the
  memory bank at every forward call (published ``store_memory``), which nothing reads unless a
  layer retrieves.
* ``init="decoder"``: N(0, 0.02) for every Linear, residual projections N(0, 0.02/√(2L));
  ``"published"``: PyTorch's default ``nn.Linear`` init, as Aura (which has no init of its own
  besides the N(0, 0.02) embedding).
* ``place_k_rule="at_least_one"``; ``"published"`` is ``int(0.03 P)`` (0 for P ≤ 33).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from neuro_core.validation import check_in_range, check_int, check_positive
from neuro_models.config import check_known_keys

AuraPositions = Literal["theta_gamma", "published_theta_gamma", "rope"]
Prosody = Literal["zeros", "random", "amygdala"]
AuraInit = Literal["decoder", "published"]
FFNKind = Literal["gelu", "spiking", "hybrid"]
QueryMode = Literal["token", "sequence_mean"]
Aggregate = Literal["softmax", "mean"]

_POSITIONS = ("theta_gamma", "published_theta_gamma", "rope")
_PROSODY = ("zeros", "random", "amygdala")
_INITS = ("decoder", "published")
_FFNS = ("gelu", "spiking", "hybrid")


def _check_layers(name: str, layers: tuple[int, ...], n_layers: int) -> None:
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_layers:
            raise ValueError(f"{name} must hold layer indices in [0, {n_layers}), got {layers}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{name} must not repeat a layer, got {layers}")


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig:
    """The memory read of the SNN-RAG layers (neuro-memory's ``MemoryRetrieval``, gate injection).

    Attributes:
        layers: blocks that read the memory (None: every block; published: every block).
        k: memories per query (published ``num_retrieved``: 5 in the class, 3 in the Colab config).
        query: ``"token"`` (ours: token t queries with its own state, causal) or
            ``"sequence_mean"`` (published: one query from the mean over the whole sequence,
            broadcast to every position; non-causal).
        aggregate: ``"softmax"`` over the k scores at ``temperature`` (ours and published, which
            uses τ = 1) or ``"mean"``.
        temperature: τ of the softmax (published 1.0; ours 0.1, see neuro-memory).
        capacity: slots of the memory bank (published ``max_memories``: 10 000 in the Colab
            config).
    """

    layers: tuple[int, ...] | None = None
    k: int = 5
    query: QueryMode = "token"
    aggregate: Aggregate = "softmax"
    temperature: float = 0.1
    capacity: int = 10_000

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        check_positive("k", self.k)
        if self.query not in ("token", "sequence_mean"):
            raise ValueError(f"query must be 'token' or 'sequence_mean', got {self.query!r}")
        if self.aggregate not in ("softmax", "mean"):
            raise ValueError(f"aggregate must be 'softmax' or 'mean', got {self.aggregate!r}")
        check_positive("temperature", self.temperature)
        check_positive("capacity", self.capacity)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        check_known_keys(cls, d)
        return cls(**dict(d))


@dataclass(frozen=True, kw_only=True)
class AuraConfig:
    """Shape, hippocampal components and published-behaviour flags of :class:`HippocampalTransformer`.

    Defaults are the notebook's model (``notebookforaura.py``): V = 32 000, d = 768, 12 layers,
    16 heads, FFN 4096, T = 512, 2000 place cells, dropout 0.1 (the notebook's final value; its
    ``Config`` says 0.15 and a later cell lowers it), with our fixes switched on (module
    docstring). :func:`notebook_config` switches every published flag on.

    Attributes:
        vocab_size, d_model, n_layers, n_heads, ffn_dim, max_seq_len: the shape (d divisible by
            H; no grouped-query attention in Aura).
        place_cells: whether the place-cell residual ``e + s·(W_r a + b_r)`` follows the embedding.
        n_place_cells: ``P`` (published 2000). place_sparsity ``ρ`` (0.03), place_residual_scale
            ``s`` (0.1), place_k_rule, place_learnable (learnable prototypes, as published).
        positions: see the module docstring.
        gamma_per_theta: ``G`` of the theta-gamma codes (published 40 Hz / 8 Hz = 5).
        position_scale: initial learnable amplitude of our theta-gamma code (``d`` parameters),
            the embedding's σ = 0.02 (at amplitude 1 the code swamps the tokens; see
            :class:`~neuro_models.aura.ThetaGammaPositions`).
        rope_theta: RoPE base for ``positions="rope"``.
        prosody: source of the prosody features of the query gates (module docstring).
        amygdala_seed: seed of the untrained amygdala MLP (``prosody="amygdala"``).
        memory_gate: the per-token query temperature ``1 + 0.5 σ(w·h_t + b)`` (published
            "hippocampal memory" gate, which retrieves nothing).
        ffn: FFN of the blocks outside ``snn_layers``; ``"gelu"`` (published) with biases.
        snn_layers: blocks whose FFN is ``snn_ffn`` (published SNN-RAG: every other layer).
        snn_ffn: ``"hybrid"`` (published: ``(1 − σ(g))·MLP + σ(g)·SNN``) or ``"spiking"``.
        snn_options: options of neuro-spiking's ``SpikingFFN`` (JSON values: ``steps``,
            ``neuron``, ``backend``; ``gate_init`` for the hybrid). Default: 4 steps of GIF
            neurons with 8 spike levels, as Aura's SNN FFN.
        retrieval: the memory read (None: no layer reads; the HippocampalTransformer).
        store_memory: write mean final hidden states into the bank at every forward call.
        memory_capacity: bank slots when ``store_memory`` is on and ``retrieval`` is None.
        dropout: on the embedding, each sublayer output and the attention probabilities
            (training only).
        norm_eps: LayerNorm ε (PyTorch's default 1e-5, as published).
        init: see the module docstring.
    """

    vocab_size: int = 32_000
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 16
    ffn_dim: int = 4096
    max_seq_len: int = 512
    place_cells: bool = True
    n_place_cells: int = 2000
    place_sparsity: float = 0.03
    place_residual_scale: float = 0.1
    place_k_rule: Literal["at_least_one", "published"] = "at_least_one"
    place_learnable: bool = True
    positions: AuraPositions = "theta_gamma"
    gamma_per_theta: float = 5.0
    position_scale: float = 0.02
    rope_theta: float = 10_000.0
    prosody: Prosody = "zeros"
    amygdala_seed: int = 0
    memory_gate: bool = True
    ffn: FFNKind = "gelu"
    snn_layers: tuple[int, ...] = ()
    snn_ffn: Literal["hybrid", "spiking"] = "hybrid"
    snn_options: Mapping[str, Any] = field(default_factory=lambda: {"steps": 4, "neuron": "gif"})
    retrieval: RetrievalConfig | None = None
    store_memory: bool = False
    memory_capacity: int = 10_000
    dropout: float = 0.1
    norm_eps: float = 1e-5
    init: AuraInit = "decoder"

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "ffn_dim",
            "max_seq_len",
            "n_place_cells",
            "memory_capacity",
        ):
            value = getattr(self, name)
            check_int(name, value)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.positions not in _POSITIONS:
            raise ValueError(f"positions must be one of {_POSITIONS}, got {self.positions!r}")
        if self.positions == "theta_gamma" and self.d_model % 4:
            raise ValueError(
                f"d_model={self.d_model} must be a multiple of 4 for positions='theta_gamma'"
            )
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be even for positions='rope'")
        if self.prosody not in _PROSODY:
            raise ValueError(f"prosody must be one of {_PROSODY}, got {self.prosody!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if self.ffn not in _FFNS:
            raise ValueError(f"ffn must be one of {_FFNS}, got {self.ffn!r}")
        if self.snn_ffn not in ("hybrid", "spiking"):
            raise ValueError(f"snn_ffn must be 'hybrid' or 'spiking', got {self.snn_ffn!r}")
        if self.place_k_rule not in ("at_least_one", "published"):
            raise ValueError(
                f"place_k_rule must be 'at_least_one' or 'published', got {self.place_k_rule!r}"
            )
        for name in ("place_cells", "place_learnable", "memory_gate", "store_memory"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_in_range("place_sparsity", self.place_sparsity, 0.0, 1.0, low_open=True)
        check_positive("place_residual_scale", self.place_residual_scale, allow_zero=True)
        check_positive("gamma_per_theta", self.gamma_per_theta)
        check_positive("position_scale", self.position_scale)
        check_positive("rope_theta", self.rope_theta)
        check_in_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_positive("norm_eps", self.norm_eps)
        object.__setattr__(self, "snn_layers", tuple(self.snn_layers))
        _check_layers("snn_layers", self.snn_layers, self.n_layers)
        if not isinstance(self.snn_options, Mapping):
            raise ValueError(f"snn_options must be a mapping, got {self.snn_options!r}")
        object.__setattr__(self, "snn_options", dict(self.snn_options))
        if isinstance(self.retrieval, Mapping):
            object.__setattr__(self, "retrieval", RetrievalConfig.from_dict(self.retrieval))
        if self.retrieval is not None:
            if not isinstance(self.retrieval, RetrievalConfig):
                raise ValueError(
                    f"retrieval must be a RetrievalConfig, a mapping or None, got "
                    f"{type(self.retrieval).__name__}"
                )
            if self.retrieval.layers is not None:
                _check_layers("retrieval.layers", self.retrieval.layers, self.n_layers)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def retrieval_layers(self) -> tuple[int, ...]:
        """Blocks that read the memory (empty without ``retrieval``)."""
        if self.retrieval is None:
            return ()
        layers = self.retrieval.layers
        return tuple(range(self.n_layers)) if layers is None else layers

    @property
    def has_memory(self) -> bool:
        """Whether the model owns a memory bank (some layer reads it, or forward stores)."""
        return self.retrieval is not None or self.store_memory

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field (JSON-serializable; tuples become lists in JSON)."""
        out = dataclasses.asdict(self)
        out["snn_layers"] = list(self.snn_layers)
        if self.retrieval is not None and self.retrieval.layers is not None:
            out["retrieval"]["layers"] = list(self.retrieval.layers)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuraConfig:
        """Inverse of :meth:`to_dict`; unknown keys (also inside ``retrieval``) raise
        ``ValueError`` naming them."""
        check_known_keys(cls, d)
        values = dict(d)
        if "snn_layers" in values:
            values["snn_layers"] = tuple(values["snn_layers"])
        return cls(**values)

    def replace(self, **changes: Any) -> AuraConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


#: The published flags shared by the notebook's and the Colab script's models (Aura's
#: theta-gamma encoding, ``int(0.03 P)`` place cells, PyTorch's default init, dropout 0.1).
_PUBLISHED: dict[str, Any] = dict(
    positions="published_theta_gamma", place_k_rule="published", init="published", dropout=0.1
)


def notebook_config(**overrides: Any) -> AuraConfig:
    """The notebook's trained model with every published flag: Aura's theta-gamma encoding,
    ``int(0.03 P)`` place cells, random prosody, PyTorch's default init, dropout 0.1;
    131,605,916 parameters at the default shape (reference-systems §3.3)."""
    return AuraConfig(**{**_PUBLISHED, "prosody": "random", **overrides})


def colab_config(
    preset: Literal["test", "medium", "full"] = "full", **overrides: Any
) -> AuraConfig:
    """``colab_l4_training.py``'s HippocampalTransformer (V = 32 100: the FLAN-T5 tokenizer's
    ``vocab_size``, which the script writes into the config), with the amygdala prosody and the
    other published flags. "full": d 768, 12 layers, 12 heads, FFN 3072, T 512, P 2000
    (112,795,820 parameters); "medium": 8 layers, T 384, P 1000; "test": d 512, 6 layers,
    8 heads, FFN 2048, T 256, P 500."""
    shapes: dict[str, dict[str, Any]] = {
        "test": dict(
            d_model=512, n_layers=6, n_heads=8, ffn_dim=2048, max_seq_len=256, n_place_cells=500
        ),
        "medium": dict(
            d_model=768, n_layers=8, n_heads=12, ffn_dim=3072, max_seq_len=384, n_place_cells=1000
        ),
        "full": dict(
            d_model=768, n_layers=12, n_heads=12, ffn_dim=3072, max_seq_len=512, n_place_cells=2000
        ),
    }
    if preset not in shapes:
        raise ValueError(f"preset must be one of {sorted(shapes)}, got {preset!r}")
    published = {**_PUBLISHED, "prosody": "amygdala", "vocab_size": 32_100, **shapes[preset]}
    return AuraConfig(**{**published, **overrides})


def snn_rag_config(*, published: bool = False, **overrides: Any) -> AuraConfig:
    """The SNN-RAG transformer: hybrid spiking FFNs in every other layer (0, 2, 4, ...) and a
    memory read (gate injection) in every layer, as ``SNNRAGTransformer``'s defaults.

    Ours: per-token causal queries, softmax at τ = 0.1, memory written only by explicit calls.
    ``published=True``: the sequence-mean query (non-causal), softmax at τ = 1, the mean final
    hidden state stored at every forward call (so later calls read what earlier calls wrote),
    plus :func:`notebook_config`'s flags.
    """
    n_layers = int(overrides.get("n_layers", AuraConfig.n_layers))
    base: dict[str, Any] = dict(
        snn_layers=tuple(range(0, n_layers, 2)),
        retrieval=RetrievalConfig(
            k=5,
            query="sequence_mean" if published else "token",
            temperature=1.0 if published else 0.1,
        ),
    )
    if published:
        base.update(
            positions="published_theta_gamma",
            place_k_rule="published",
            prosody="random",
            init="published",
            store_memory=True,
        )
    base.update(overrides)
    return AuraConfig(**base)
