"""Importance of a candidate memory: how surprising, how new, how salient.

For ``M`` candidates with surprise ``S ≥ 0`` (nats), novelty ``N ∈ [0, 1]`` and an external
salience ``E ∈ [0, 1]`` (e.g. a reward or arousal signal), the importance is the weighted mean

    I = (w_S · (1 − exp(−S / S₀)) + w_N · N + w_E · E) / (w_S + w_N + w_E)   ∈ [0, 1]

over the terms given (a term passed as ``None`` drops out of both sums). The surprise term maps
``[0, ∞)`` nats monotonically onto ``[0, 1)``; ``S₀`` is the surprise worth ``1 − 1/e``. Novelty
against the stored keys ``K`` is

    N(x) = (1 − max_j cos(x, K_j)) / 2                (1 when nothing is stored)

so a copy of a stored key has novelty 0 and an opposite key 1.

Source: Aura's design document asks for "memory decay adaptive based on importance/recency"
(shared/seeds, Aura mission, §3); its code stores every memory at strength 1. The three terms are
the usual write signals of memory-augmented models: prediction error (surprise-gated writes),
dissimilarity to what is stored, and an external salience. Used as the ``strength`` of
:func:`neuro_memory.write`, importance decides what ``"weakest"`` replacement evicts and what
:func:`neuro_memory.consolidate` moves to long-term memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neuro_core.validation import check_positive, check_tensor


@dataclass(frozen=True, kw_only=True)
class ImportanceParams:
    """Weights of :func:`importance_score`.

    Attributes:
        surprise_weight: ``w_S ≥ 0``. Default 1.
        novelty_weight: ``w_N ≥ 0``. Default 1.
        salience_weight: ``w_E ≥ 0``. Default 1.
        surprise_scale: ``S₀ > 0`` in nats. Default 2.0 (ours): a token predicted with
            probability ``e⁻² ≈ 0.14`` scores ``1 − 1/e ≈ 0.63``.
    """

    surprise_weight: float = 1.0
    novelty_weight: float = 1.0
    salience_weight: float = 1.0
    surprise_scale: float = 2.0

    def __post_init__(self) -> None:
        for name in ("surprise_weight", "novelty_weight", "salience_weight"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_positive("surprise_scale", self.surprise_scale)


def surprise_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``S = −log softmax(logits)[target]`` in nats, per position.

    Args:
        logits: ``[..., V]`` finite.
        targets: ``[...]`` long in ``[0, V)``. For a causal LM pair the logits at ``t − 1`` with
            the token at ``t``: the surprise of token ``t`` is then known at position ``t``.

    Returns:
        ``[...]`` surprise, same dtype as ``logits``.
    """
    check_tensor("logits", logits, floating=True, finite=True)
    if logits.ndim < 1:
        raise ValueError(f"logits must have shape [..., V], got {tuple(logits.shape)}")
    v = logits.shape[-1]
    check_tensor(
        "targets", targets, shape=tuple(logits.shape[:-1]), dtype=torch.long, device=logits.device
    )
    if targets.numel() and bool(((targets < 0) | (targets >= v)).any()):
        raise ValueError(f"targets must lie in [0, {v})")
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def novelty(keys: torch.Tensor, stored: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """``N = (1 − max_j cos(key, stored_j)) / 2`` per key; 1 when ``stored`` is empty.

    Args:
        keys: ``[M, D]`` finite.
        stored: ``[N, D]`` (e.g. ``state.keys[:state.size]``), same dtype and device.
        eps: norm floor of the cosine.

    Returns:
        ``[M]`` in ``[0, 1]``.
    """
    check_tensor("keys", keys, ndim=2, floating=True, finite=True)
    check_tensor(
        "stored", stored, shape=(None, keys.shape[1]), dtype=keys.dtype, device=keys.device
    )
    if stored.shape[0] == 0:
        return torch.ones(keys.shape[0], dtype=keys.dtype, device=keys.device)
    cos = F.normalize(keys, dim=-1, eps=eps) @ F.normalize(stored, dim=-1, eps=eps).T
    return ((1.0 - cos.max(dim=1).values) / 2).clamp(0.0, 1.0)


def importance_score(
    *,
    surprise: torch.Tensor | None = None,
    novelty: torch.Tensor | None = None,
    salience: torch.Tensor | None = None,
    params: ImportanceParams | None = None,
) -> torch.Tensor:
    """Importance ``I ∈ [0, 1]`` of each candidate (see the module docstring).

    Args:
        surprise: ``[...]`` nats, ≥ 0 (e.g. :func:`surprise_from_logits`).
        novelty: ``[...]`` in ``[0, 1]`` (e.g. :func:`novelty`).
        salience: ``[...]`` in ``[0, 1]``.
        params: weights; default :class:`ImportanceParams`.

    At least one term must be given, all with the same shape, and the given terms' weights must
    not all be 0.
    """
    p = params if params is not None else ImportanceParams()
    terms = []
    shape = None
    for name, x, w in (
        ("surprise", surprise, p.surprise_weight),
        ("novelty", novelty, p.novelty_weight),
        ("salience", salience, p.salience_weight),
    ):
        if x is None:
            continue
        check_tensor(name, x, floating=True, finite=True)
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
        if name == "surprise":
            if bool((x < 0).any()):
                raise ValueError("surprise must be ≥ 0 (nats)")
            x = 1.0 - torch.exp(-x / p.surprise_scale)
        elif bool(((x < 0) | (x > 1)).any()):
            raise ValueError(f"{name} must lie in [0, 1]")
        terms.append((x, w))
    if not terms:
        raise ValueError("give at least one of surprise, novelty, salience")
    total = sum(w for _, w in terms)
    if total == 0:
        raise ValueError("the weights of the given terms are all 0")
    return sum(w * x for x, w in terms) / total  # type: ignore[return-value]
