"""A sequence layer that reads an episodic memory with one query per token and gates it in.

For hidden states ``x [B, T, C]`` and a memory ``state`` (see :mod:`neuro_memory.episodic`)::

    q_t = W_q x_t                                   [Dk]
    (v_tj, s_tj)_{j ≤ k} = read(state, q_t, k)      top-k values [k, Dv] and scores [k]
    r_t = Σ_j w_tj v_tj,   w_t = softmax(s_t / τ)   (or 1/k with ``aggregate="mean"``)
    m_t = W_m r_t                                   [C]
    g_t = σ(W_g [x_t; m_t] + b_g)                   [C]
    y_t = x_t + g_t ⊙ m_t

Source: Aura's ``MemoryAugmentedLayer`` with gate injection (auralmn/aura-snn-rag,
``src/core/language_zone/memory_augmented_layer.py``), top-k = 5. What we changed and why:

* **Per-token queries (causal).** The published layer builds one query from the *mean over the
  whole sequence* and broadcasts the retrieved memory to every position, so token t's output
  depends on tokens after t: a leak of the future into a causal LM. Here token t's query uses
  only ``x_t``. The published behaviour is kept as ``query="sequence_mean"`` so the contract test
  can show that it breaks causality.
* **Score-weighted aggregation.** The published layer averages the top-k values uniformly; the
  choice of the top k has no gradient, so ``W_q`` then receives none and never learns. The softmax
  over the k scores (temperature ``τ``) makes retrieval trainable; ``aggregate="mean"`` keeps the
  published rule.
* **Batched search.** One exact top-k over all ``B·T`` queries instead of a Python loop per item.

The layer never stores or writes memories; the caller passes ``state`` in (e.g. one written with
:func:`neuro_memory.write` from mean-pooled document states) and owns its updates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_int, check_positive, check_tensor
from neuro_memory.episodic import EpisodicParams, EpisodicState, Retrieved, read

Aggregate = Literal["softmax", "mean"]
QueryMode = Literal["token", "sequence_mean"]


@dataclass(frozen=True, kw_only=True)
class RetrievalParams:
    """Options of :class:`MemoryRetrieval`.

    Attributes:
        k: memories read per token (fewer if the memory holds fewer). Default 5 = Aura's top-k.
        aggregate: ``"softmax"`` (score-weighted, ours) or ``"mean"`` (published).
        temperature: ``τ`` of the softmax over cosine·strength scores in ``[−1, 1]``. Default 0.1,
            within the 0.07–0.2 range used for cosine logits in contrastive learning (ours).
        query: ``"token"`` (causal, ours) or ``"sequence_mean"`` (published; non-causal).
    """

    k: int = 5
    aggregate: Aggregate = "softmax"
    temperature: float = 0.1
    query: QueryMode = "token"

    def __post_init__(self) -> None:
        check_int("k", self.k)
        if self.aggregate not in ("softmax", "mean"):
            raise ValueError(f"aggregate must be 'softmax' or 'mean', got {self.aggregate!r}")
        check_positive("temperature", self.temperature)
        if self.query not in ("token", "sequence_mean"):
            raise ValueError(f"query must be 'token' or 'sequence_mean', got {self.query!r}")


class MemoryRetrieval(nn.Module):
    """Gated injection of retrieved memories into ``[B, T, C]`` hidden states.

    Args:
        dim: hidden size ``C``.
        key_dim: memory key size ``Dk``.
        value_dim: memory value size ``Dv``.
        params: :class:`RetrievalParams` (default: k=5, softmax, τ=0.1, per-token queries).
        memory: :class:`EpisodicParams` of the memories this layer will read; ``forward`` then
            refuses a state of another capacity, with an error naming ``memory=``. Default
            ``None``: read whatever state is passed, with that state's capacity and the default
            ``eps`` (only ``eps`` affects a read).

    ``forward(x, state) -> y [B, T, C]``; with an empty memory ``y = x``.
    """

    def __init__(
        self,
        dim: int,
        key_dim: int,
        value_dim: int,
        *,
        params: RetrievalParams | None = None,
        memory: EpisodicParams | None = None,
    ) -> None:
        super().__init__()
        for name, d in (("dim", dim), ("key_dim", key_dim), ("value_dim", value_dim)):
            check_int(name, d)
        self.dim = dim
        self.params = params if params is not None else RetrievalParams()
        # Without memory= the layer adapts to each state's capacity (see retrieve).
        self.adapt_capacity = memory is None
        self.memory = memory if memory is not None else EpisodicParams()
        self.query = nn.Linear(dim, key_dim, bias=False)
        self.out = nn.Linear(value_dim, dim, bias=False)
        self.gate = nn.Linear(2 * dim, dim)

    def retrieve(self, x: torch.Tensor, state: EpisodicState) -> Retrieved:
        """The memories each token reads: values ``[B, T, k, Dv]``, scores/indices ``[B, T, k]``.

        ``k`` is ``min(params.k, state.size)``; the memory must not be empty.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dim {self.dim}, got shape {tuple(x.shape)}")
        if not isinstance(state, EpisodicState):
            raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
        memory = self.memory
        if self.adapt_capacity:
            memory = dataclasses.replace(memory, capacity=state.capacity)
        elif state.capacity != memory.capacity:
            raise ValueError(
                f"state has {state.capacity} slots but this MemoryRetrieval was built with "
                f"memory=EpisodicParams(capacity={memory.capacity}); pass the EpisodicParams the "
                "state was created with, or omit memory= to read any state"
            )
        b, t, _ = x.shape
        h = x.mean(1, keepdim=True).expand_as(x) if self.params.query == "sequence_mean" else x
        q = self.query(h).reshape(b * t, -1)
        got = read(state, q, min(self.params.k, state.size), memory)
        return Retrieved(*(z.reshape(b, t, *z.shape[1:]) for z in got))

    def forward(self, x: torch.Tensor, state: EpisodicState) -> torch.Tensor:
        if not isinstance(state, EpisodicState):
            raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
        if state.size == 0:
            check_tensor("x", x, ndim=3, floating=True)
            return x
        values, scores, _ = self.retrieve(x, state)
        if self.params.aggregate == "softmax":
            w = torch.softmax(scores / self.params.temperature, dim=-1)
        else:
            w = torch.full_like(scores, 1.0 / scores.shape[-1])
        r = torch.einsum("btk,btkd->btd", w, values).to(x.dtype)
        m = self.out(r)
        g = torch.sigmoid(self.gate(torch.cat([x, m], dim=-1)))
        return x + g * m

    def extra_repr(self) -> str:
        return f"dim={self.dim}, params={self.params}, memory={self.memory}"
