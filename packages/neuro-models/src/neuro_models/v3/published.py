"""The published v3 training path (``BrainInspiredTrainingSystem.train(mode="hybrid")``), runnable.

Per batch ``(x, y)`` the published hybrid step (reference-systems §5.2) does, in train mode::

    a      = mean_t Consciousness(Emb(x))                  [B, d]   ("consciousness state")
    logits = model(x, training_step=step)                  forward 1 (side effects: .data writes)
    loss   = CE(logits, y) · (1 + 0.1 · mean(a))           ConsciousnessTrainer.train_step
    if mean(a) > 0.7: consolidate(x, ...)                  (published: x are token ids → crashes)
    logits₂ = model(x)                                     forward 2 (BiologicallyPlausibleTrainer)
    local_errors = 1[argmax logits₂ ≠ y]
    reported   = loss + mean(local_errors)                 (hence train ≈ 6.55 vs val ≈ 5.55)

and nothing else: no ``backward()``, no optimiser, no weight update. Validation is the mean over
batches of the batch-mean CE in eval mode. Training stops early once ≥ 10 epochs have run and the
mean "learning efficiency" ``mean(a) · std(a)`` of the last 10 exceeds 0.7 (it never does).

We run the forwards under ``torch.no_grad()``: the published code builds graphs it never uses, so
the values are identical. The only parameter changes are the published ``.data`` side effects of
the model's flags (short-term slots, spiking state, usage statistics, consolidation); none of them
reads the targets, so the trained parameters do not depend on ``y`` at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neuro_core.validation import check_tensor
from neuro_models.v3.model import V3Model

#: ConsciousnessTrainer(consciousness_weight=0.1).
CONSCIOUSNESS_WEIGHT = 0.1
#: ConsciousnessTrainer._consolidate_memories threshold on mean(a).
CONSCIOUS_CONSOLIDATION = 0.7
#: _check_human_like_learning: epochs looked back and efficiency threshold.
HUMAN_LIKE_WINDOW, HUMAN_LIKE_EFFICIENCY = 10, 0.7

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class PublishedEpoch:
    """One epoch of :func:`published_train`.

    Attributes:
        epoch: 0-based.
        steps: batches seen so far (all epochs).
        train_loss: mean over batches of the reported hybrid loss (CE·(1 + 0.1·a) + error rate).
        train_ce: mean over batches of the plain CE of forward 1.
        val_loss: mean over validation batches of the batch-mean CE (the published "val loss").
        val_perplexity: mean over validation batches of exp(batch CE) (as published).
        efficiency: mean over batches of mean(a)·std(a) (the published "learning efficiency").
    """

    epoch: int
    steps: int
    train_loss: float
    train_ce: float
    val_loss: float
    val_perplexity: float
    efficiency: float


def consciousness_state(model: V3Model, x: torch.Tensor) -> torch.Tensor:
    """Published ``get_consciousness_state(x)['consciousness_weights']``:
    ``mean_t Consciousness(Emb(x))`` ``[B, d]``."""
    return model.embed(x).mean(dim=1)


def _check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    check_tensor("x", x, ndim=2, dtype=(torch.int64, torch.int32))
    check_tensor("y", y, shape=tuple(x.shape), dtype=(torch.int64, torch.int32))


@torch.no_grad()
def published_step(model: V3Model, x: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, float]:
    """One published hybrid step on ``x, y [B, T]`` (see the module docstring).

    Returns:
        ``{"loss": reported loss, "ce": CE of forward 1, "efficiency": mean(a)·std(a)}``.

    Raises:
        RuntimeError: the published consolidation condition ``mean(a) > 0.7`` holds: the
            published code then calls ``consolidate_memory`` on token ids and crashes.
    """
    _check_batch(x, y)
    model.train()
    a = consciousness_state(model, x)
    logits = model(x, training_step=step)
    ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten().long())
    loss = ce * (1 + CONSCIOUSNESS_WEIGHT * a.mean())
    if float(a.mean(dim=1).mean()) > CONSCIOUS_CONSOLIDATION:
        raise RuntimeError(
            "published ConsciousnessTrainer consolidates here with token ids as activations, "
            "which crashes the published code"
        )
    logits2 = model(x)
    errors = (logits2.argmax(dim=-1) != y).float()
    return {
        "loss": float(loss + errors.mean()),
        "ce": float(ce),
        "efficiency": float(a.mean() * a.std()),
    }


@torch.no_grad()
def published_validate(model: V3Model, batches: Iterable[Batch]) -> tuple[float, float]:
    """Published ``_validate_epoch``: ``(mean batch CE, mean batch exp(CE))`` in eval mode."""
    model.eval()
    losses = []
    for x, y in batches:
        _check_batch(x, y)
        logits = model(x)
        losses.append(float(F.cross_entropy(logits.float().flatten(0, 1), y.flatten().long())))
    if not losses:
        raise ValueError("batches must not be empty")
    return sum(losses) / len(losses), sum(math.exp(v) for v in losses) / len(losses)


def published_train(
    model: V3Model,
    train_batches: Iterable[Batch],
    val_batches: Iterable[Batch],
    *,
    epochs: int = 1,
) -> list[PublishedEpoch]:
    """Run the published hybrid training for ``epochs`` epochs (see the module docstring).

    Args:
        model: the port, normally with ``V3Config.published()`` flags (any flags run).
        train_batches, val_batches: re-iterable collections of ``(x, y)`` ``[B, T]`` byte pairs
            (lists, or DataLoaders), iterated once per epoch.
        epochs: ≥ 1.

    Returns:
        One :class:`PublishedEpoch` per epoch run.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int ≥ 1, got {epochs!r}")
    history: list[PublishedEpoch] = []
    efficiencies: list[float] = []
    step = 0
    for epoch in range(epochs):
        rows = []
        for x, y in train_batches:
            rows.append(published_step(model, x, y, step))
            step += 1
        if not rows:
            raise ValueError("train_batches must not be empty")
        val_loss, val_ppl = published_validate(model, val_batches)
        efficiency = sum(r["efficiency"] for r in rows) / len(rows)
        history.append(
            PublishedEpoch(
                epoch=epoch,
                steps=step,
                train_loss=sum(r["loss"] for r in rows) / len(rows),
                train_ce=sum(r["ce"] for r in rows) / len(rows),
                val_loss=val_loss,
                val_perplexity=val_ppl,
                efficiency=efficiency,
            )
        )
        efficiencies.append(efficiency)
        recent = efficiencies[-HUMAN_LIKE_WINDOW:]
        if (
            len(efficiencies) >= HUMAN_LIKE_WINDOW
            and sum(recent) / len(recent) > HUMAN_LIKE_EFFICIENCY
        ):
            break
    return history


def byte_batches(
    data: bytes | torch.Tensor, seq_len: int, batch_size: int, *, drop_last: bool = True
) -> list[Batch]:
    """Cut a byte stream into consecutive non-overlapping windows of ``seq_len + 1`` bytes, as
    ``(x = w[:-1], y = w[1:])`` batches of ``batch_size`` windows, in stream order.

    Args:
        data: ``bytes`` or a 1-D integer tensor of values in [0, 256).
        seq_len: positions per window (≥ 1).
        batch_size: windows per batch (≥ 1).
        drop_last: drop a final batch with fewer than ``batch_size`` windows.
    """
    for name, v in (("seq_len", seq_len), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int ≥ 1, got {v!r}")
    if isinstance(data, bytes | bytearray):
        stream = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    else:
        check_tensor("data", data, ndim=1)
        if data.is_floating_point() or data.is_complex():
            raise ValueError(f"data must be an integer tensor, got {data.dtype}")
        stream = data.long()
    n = (stream.numel() - 1) // seq_len
    if n < 1:
        raise ValueError(f"data: {stream.numel()} bytes are fewer than seq_len + 1 = {seq_len + 1}")
    x = stream[: n * seq_len].view(n, seq_len)
    y = stream[1 : n * seq_len + 1].view(n, seq_len)
    out = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]
    if drop_last and out[-1][0].shape[0] < batch_size:
        out = out[:-1]
    if not out:
        raise ValueError(f"data: fewer than batch_size = {batch_size} windows")
    return out


__all__ = [
    "Batch",
    "PublishedEpoch",
    "byte_batches",
    "consciousness_state",
    "published_step",
    "published_train",
    "published_validate",
]
