"""An episodic key-value memory: pure functions over a NamedTuple state.

A fixed-capacity bank of ``N`` slots holds keys ``[N, Dk]``, values ``[N, Dv]`` and a strength per
slot. Reading scores every stored memory against a query and returns the exact top-k::

    state = init_state(params, key_dim=64, value_dim=64)
    state = write(state, keys, values, params)            # keys [M, Dk], values [M, Dv]
    values, scores, indices = read(state, queries, k, params)   # queries [Q, Dk]
    state = decay(state, params)                          # once per step

The score of memory ``i`` for query ``q`` is

    score_i(q) = cos(q, key_i) · strength_i,    cos(a, b) = a·b / (max(‖a‖, ε) · max(‖b‖, ε))

and each :func:`decay` call multiplies every strength by ``1 − decay_rate``.

Source: the memory bank of Aura's ``HippocampalFormation`` (auralmn/aura-snn-rag,
``src/core/hippocampal.py``: ``create_episodic_memory``, ``retrieve_similar_memories``,
``decay_memories``). What we changed and why:

* **Score.** Aura scores ``(0.5·cos + 0.3/(1 + spatial distance) + 0.2·exp(−age / 3600 s)) ·
  strength``. We keep ``cos · strength`` only. The temporal term reads the wall clock, so two runs
  on the same data retrieve different memories (non-reproducible); the spatial term compares a
  "current location" that nothing derived from text ever moves, so it is a constant. Recency is
  still expressed, reproducibly, through the per-step strength decay, and ``age`` counts decay
  steps rather than seconds.
* **Exact search.** Aura's optional centroid index returned top-k positions *within the candidate
  subset* and used them as absolute bank indices, so it returned the wrong memories. :func:`read`
  is exact; with ``candidates`` (e.g. from :class:`neuro_memory.FaissIndex`) it re-ranks those
  slots exactly and maps positions back to slot indices (a test pins this).
* **FIFO.** Aura's overwrite slot is ``memory_count % max_memories`` with ``memory_count`` frozen at
  ``max_memories`` once full, so every later write lands in slot 0. Here ``count`` keeps counting
  and ``"fifo"`` is a true ring buffer. ``"weakest"`` (evict the lowest strength) is ours.
* **Purity.** Aura mutates module buffers in place; here every function returns a new state and
  the caller owns it (no hidden state, reproducible, differentiable w.r.t. written tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor

Replacement = Literal["fifo", "weakest"]
_REPLACEMENTS: tuple[str, ...] = ("fifo", "weakest")

#: Largest ``[queries, slots]`` score matrix :func:`read` builds at once (2**26 fp32 = 256 MiB);
#: larger query batches are processed in chunks with identical results.
MAX_SCORES = 2**26


@dataclass(frozen=True, kw_only=True)
class EpisodicParams:
    """Hyper-parameters of an episodic memory (not its contents; see :class:`EpisodicState`).

    Attributes:
        capacity: number of slots ``N``. Default 100 000 = Aura's ``max_memories``.
        decay_rate: fraction of strength lost per :func:`decay` call, in ``[0, 1)``. Default 0.01 =
            the default of Aura's ``HippocampalFormation.decay_memories``; the Aura design document
            quotes 0.03 as the hand-tuned rate used in training.
        replacement: which slot a write overwrites once the bank is full: ``"fifo"`` (the oldest
            write, Aura's intent) or ``"weakest"`` (the lowest strength, ties to the oldest write).
            Keep one policy for a state's lifetime: FIFO's ring position assumes slots were
            filled in write order.
        initial_strength: strength of a freshly written memory when ``write`` is given none.
            Default 1.0 = Aura's.
        eps: lower bound on vector norms in the cosine (1e-8, as ``F.cosine_similarity``).
    """

    capacity: int = 100_000
    decay_rate: float = 0.01
    replacement: Replacement = "fifo"
    initial_strength: float = 1.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_int("capacity", self.capacity)
        check_in_range("decay_rate", self.decay_rate, 0.0, 1.0, high_open=True)
        if self.replacement not in _REPLACEMENTS:
            raise ValueError(
                f"replacement must be one of {_REPLACEMENTS}, got {self.replacement!r}"
            )
        check_positive("initial_strength", self.initial_strength)
        check_positive("eps", self.eps)


class EpisodicState(NamedTuple):
    """Contents of an episodic memory with ``N`` slots.

    Slots ``0 .. size − 1`` are filled (both policies fill empty slots in index order and never
    free one); the rest hold zeros and ``stamp = −1``.

    Attributes:
        keys: ``[N, Dk]``.
        values: ``[N, Dv]``.
        strength: ``[N]``, 0 for empty slots.
        age: ``[N]`` long, number of :func:`decay` steps since the slot was written.
        stamp: ``[N]`` long, write sequence number of the slot's content (−1 when empty); orders
            FIFO eviction and breaks strength ties.
        count: total number of memories ever written (not capped at ``N``).
    """

    keys: torch.Tensor
    values: torch.Tensor
    strength: torch.Tensor
    age: torch.Tensor
    stamp: torch.Tensor
    # Shadows tuple.count (unused on a state); the name matches the published bank's counter.
    count: int  # type: ignore[assignment]

    @property
    def capacity(self) -> int:
        """Number of slots ``N``."""
        return int(self.keys.shape[0])

    @property
    def size(self) -> int:
        """Number of filled slots, ``min(count, N)``."""
        return min(self.count, self.capacity)


class Retrieved(NamedTuple):
    """Result of :func:`read` for ``Q`` queries.

    Attributes:
        values: ``[Q, k, Dv]`` values of the retrieved memories, best first.
        scores: ``[Q, k]`` their scores ``cos · strength``, descending.
        indices: ``[Q, k]`` long, their slot indices in the bank.
    """

    values: torch.Tensor
    scores: torch.Tensor
    indices: torch.Tensor


def init_state(
    params: EpisodicParams,
    key_dim: int,
    value_dim: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> EpisodicState:
    """An empty memory of ``params.capacity`` slots on ``device``."""
    for name, d in (("key_dim", key_dim), ("value_dim", value_dim)):
        check_int(name, d)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    n = params.capacity
    return EpisodicState(
        keys=torch.zeros(n, key_dim, device=device, dtype=dtype),
        values=torch.zeros(n, value_dim, device=device, dtype=dtype),
        strength=torch.zeros(n, device=device, dtype=dtype),
        age=torch.zeros(n, device=device, dtype=torch.long),
        stamp=torch.full((n,), -1, device=device, dtype=torch.long),
        count=0,
    )


def _check_state(state: EpisodicState, params: EpisodicParams) -> None:
    if not isinstance(state, EpisodicState):
        raise ValueError(f"state must be an EpisodicState, got {type(state).__name__}")
    if state.capacity != params.capacity:
        raise ValueError(
            f"params.capacity is {params.capacity} but state has {state.capacity} slots"
        )


def _slots(state: EpisodicState, m: int, params: EpisodicParams) -> torch.Tensor:
    """Slot indices for ``m ≤ N`` new memories, in write order."""
    n, size, device = state.capacity, state.size, state.keys.device
    if params.replacement == "fifo":
        return (state.count + torch.arange(m, device=device)) % n
    free = min(n - size, m)
    fresh = torch.arange(size, size + free, device=device)
    if free == m:
        return fresh
    # Evict the lowest strength, ties to the earliest write: stable sort by stamp, then strength.
    by_stamp = torch.sort(state.stamp[:size], stable=True).indices
    order = by_stamp[torch.sort(state.strength[:size][by_stamp], stable=True).indices]
    return torch.cat([fresh, order[: m - free]])


def write(
    state: EpisodicState,
    keys: torch.Tensor,
    values: torch.Tensor,
    params: EpisodicParams,
    *,
    strength: torch.Tensor | None = None,
) -> EpisodicState:
    """Store ``M`` memories and return the new state (``state`` is not modified).

    Each memory goes to its own slot: empty slots first (lowest index first), then, once the bank
    is full, the slot chosen by ``params.replacement`` among the memories stored *before* this call.
    Written slots get age 0. ``M > N`` is written in chunks of ``N``, so only the last ``N`` stay.
    When no new memory is weaker than a stored one (e.g. the default strength), one call equals
    ``M`` calls with one memory each. Being pure, a write copies the bank (``O(N·(Dk + Dv))``),
    so write in batches rather than one memory at a time.

    Args:
        state: the memory.
        keys: ``[M, Dk]`` finite.
        values: ``[M, Dv]`` finite.
        params: hyper-parameters; ``params.capacity`` must equal the state's.
        strength: optional ``[M]`` finite, ≥ 0 (e.g. an importance); default
            ``params.initial_strength`` for all.

    Raises:
        ValueError: naming the argument with the wrong shape, device, or non-finite values.
    """
    _check_state(state, params)
    dk, dv, device = state.keys.shape[1], state.values.shape[1], state.keys.device
    check_tensor("keys", keys, shape=(None, dk), floating=True, device=device, finite=True)
    m = int(keys.shape[0])
    check_tensor("values", values, shape=(m, dv), floating=True, device=device, finite=True)
    if strength is None:
        strength = torch.full((m,), params.initial_strength, device=device, dtype=state.keys.dtype)
    else:
        check_tensor("strength", strength, shape=(m,), floating=True, device=device, finite=True)
        if bool((strength < 0).any()):
            raise ValueError("strength must be ≥ 0")
    if m == 0:
        return state
    n = state.capacity
    if m > n:
        # Chunks of at most N, in order: the same slots as writing the memories one at a time.
        for lo in range(0, m, n):
            hi = min(lo + n, m)
            state = write(state, keys[lo:hi], values[lo:hi], params, strength=strength[lo:hi])
        return state
    stamps = state.count + torch.arange(m, device=device)
    slots = _slots(state, m, params)
    dtype = state.keys.dtype
    return EpisodicState(
        keys=state.keys.index_copy(0, slots, keys.to(dtype)),
        values=state.values.index_copy(0, slots, values.to(state.values.dtype)),
        strength=state.strength.index_copy(0, slots, strength.to(state.strength.dtype)),
        age=state.age.index_fill(0, slots, 0),
        stamp=state.stamp.index_copy(0, slots, stamps),
        count=state.count + m,
    )


def _check_k(k: int, size: int) -> None:
    check_int("k", k)
    if k > size:
        raise ValueError(f"k={k} exceeds the number of stored memories ({size})")


def read(
    state: EpisodicState,
    queries: torch.Tensor,
    k: int,
    params: EpisodicParams,
    *,
    candidates: torch.Tensor | None = None,
) -> Retrieved:
    """Exact top-``k`` memories for each query by ``cos(q, key) · strength``.

    Args:
        state: the memory (``k ≤ state.size``).
        queries: ``[Q, Dk]`` finite (checked in eager mode only); cast to the state's dtype.
        k: number of memories per query, ``1 ≤ k ≤ state.size``.
        params: hyper-parameters (``eps``; ``capacity`` must match the state).
        candidates: optional ``[Q, C]`` long slot indices to search instead of the whole bank
            (from an approximate index); ``−1`` marks padding; each row needs at least ``k``
            distinct filled slots. Results are still *slot* indices.

    Returns:
        :class:`Retrieved` ``(values [Q, k, Dv], scores [Q, k], indices [Q, k])``, best first.
        Differentiable w.r.t. ``queries``, ``state.keys``, ``state.values`` and ``state.strength``
        (the choice of the top k is not).

    Raises:
        ValueError: wrong shapes, non-finite queries, ``k`` out of range, bad candidates.
    """
    _check_state(state, params)
    device, dtype = state.keys.device, state.keys.dtype
    check_tensor(
        "queries",
        queries,
        shape=(None, state.keys.shape[1]),
        floating=True,
        device=device,
        # A data-dependent check cannot be traced by torch.compile(fullgraph=True); eager checks.
        finite=not torch.compiler.is_compiling(),
    )
    size = state.size
    _check_k(k, size)
    q = F.normalize(queries.to(dtype), dim=-1, eps=params.eps)
    if candidates is None:
        keys = state.keys[:size]
        # cos · strength with the key norms folded into the strength: no normalised copy of the bank.
        weight = state.strength[:size] / keys.norm(dim=-1).clamp_min(params.eps)
        # Queries in chunks so the [chunk, N] score matrix stays within MAX_SCORES elements.
        step = max(1, MAX_SCORES // size)
        parts = [
            torch.topk((q[i : i + step] @ keys.T) * weight, k, dim=-1)
            for i in range(0, max(q.shape[0], 1), step)
        ]
        scores = parts[0].values if len(parts) == 1 else torch.cat([t.values for t in parts])
        indices = parts[0].indices if len(parts) == 1 else torch.cat([t.indices for t in parts])
        return Retrieved(state.values[indices], scores, indices)
    cand = _check_candidates(candidates, queries.shape[0], size, k, device)
    safe = cand.clamp_min(0)
    keys = F.normalize(state.keys[safe], dim=-1, eps=params.eps)  # [Q, C, Dk]
    scores = torch.einsum("qd,qcd->qc", q, keys) * state.strength[safe]
    scores = scores.masked_fill(cand < 0, -math.inf)
    top = torch.topk(scores, k, dim=-1)
    # Positions within the candidate list -> slot indices (Aura skipped this step).
    indices = cand.gather(1, top.indices)
    return Retrieved(state.values[indices], top.values, indices)


def _check_candidates(
    candidates: torch.Tensor, q: int, size: int, k: int, device: torch.device
) -> torch.Tensor:
    check_tensor("candidates", candidates, ndim=2, device=device, dtype=(torch.int64, torch.int32))
    if candidates.shape[0] != q:
        raise ValueError(f"candidates must have {q} rows (one per query), got {candidates.shape}")
    cand = candidates.long()
    if bool(((cand < -1) | (cand >= size)).any()):
        raise ValueError(f"candidates must be filled slot indices in [0, {size}) or -1")
    srt = torch.sort(cand, dim=1).values
    if bool(((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any()):
        raise ValueError("candidates must not repeat a slot within a row")
    if bool(((cand >= 0).sum(1) < k).any()):
        raise ValueError(f"every row of candidates needs at least k={k} slots")
    return cand


def decay(state: EpisodicState, params: EpisodicParams, *, steps: int = 1) -> EpisodicState:
    """Advance ``steps`` steps: ``strength ← strength · (1 − decay_rate)^steps``, ``age += steps``.

    Empty slots keep strength 0 and age 0.
    """
    _check_state(state, params)
    check_int("steps", steps, low=0)
    filled = state.stamp >= 0
    factor = (1.0 - params.decay_rate) ** steps
    return state._replace(strength=state.strength * factor, age=state.age + filled.long() * steps)


class EpisodicMemory(nn.Module):
    """Thin module around the functions above; holds only hyper-parameters, never the memory.

    ``forward(state, queries, k)`` is :func:`read`. The state is created by :meth:`init_state`,
    passed in, and returned by :meth:`write` / :meth:`decay`.
    """

    def __init__(self, key_dim: int, value_dim: int, params: EpisodicParams | None = None) -> None:
        super().__init__()
        self.key_dim, self.value_dim = key_dim, value_dim
        self.params = params if params is not None else EpisodicParams()

    def init_state(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> EpisodicState:
        return init_state(self.params, self.key_dim, self.value_dim, device=device, dtype=dtype)

    def write(
        self,
        state: EpisodicState,
        keys: torch.Tensor,
        values: torch.Tensor,
        *,
        strength: torch.Tensor | None = None,
    ) -> EpisodicState:
        return write(state, keys, values, self.params, strength=strength)

    def decay(self, state: EpisodicState, *, steps: int = 1) -> EpisodicState:
        return decay(state, self.params, steps=steps)

    def forward(self, state: EpisodicState, queries: torch.Tensor, k: int) -> Retrieved:
        return read(state, queries, k, self.params)

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, value_dim={self.value_dim}, params={self.params}"
