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
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_int, check_tensor
from neuro_models.v3.config import V3Config
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
    check_int("epochs", epochs)
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


@dataclass(frozen=True)
class PublishedComparison:
    """What :func:`published_comparison` measured (names as in the published test).

    Attributes:
        transformer_params, brain_params: parameter counts (the transformer's without its
            embedding and head, as published).
        memory_efficiency: ``transformer_params / brain_params`` (the "4.38× more efficient").
        transformer_time, brain_time: wall seconds of one first forward pass each.
        speedup: ``transformer_time / brain_time`` (the "1.43× faster").
        transformer_loss, brain_loss: CE of each model's logits against random targets.
        transformer_logit_var, brain_logit_var: variance of each model's logits over the
            vocabulary, averaged over positions: for near-zero logits CE ≈ ln V + var/2 − z̄_y.
    """

    transformer_params: int
    brain_params: int
    memory_efficiency: float
    transformer_time: float
    brain_time: float
    speedup: float
    transformer_loss: float
    brain_loss: float
    transformer_logit_var: float
    brain_logit_var: float


def published_comparison(
    *, seed: int = 0, batch_size: int = 4, seq_len: int = 16, dim: int = 128
) -> PublishedComparison:
    """Re-run the published ``simple_brain_test.test_performance_comparison`` as published.

    Random bytes x and random targets y ``[4, 16]``; an untrained ``nn.Transformer(d_model=128,
    nhead=8, 4 encoder + 4 decoder layers)`` with its own embedding and head, fed ``src = tgt =
    Emb(x)`` in training mode (dropout on), without a causal mask and with ``batch_first=False``,
    so it reads the batch axis as time; and an untrained published v3 model at d = 128 with 4
    repetitions, called once in training mode with ``training_step=100``. One timed forward each,
    no warm-up; CE of each against y. Nothing is trained: both losses sit near ln 256, and their
    gap is set by the init scale of the logits (see :class:`PublishedComparison`).
    """
    torch.manual_seed(seed)
    vocab = 256
    x = torch.randint(0, vocab, (batch_size, seq_len))
    y = torch.randint(0, vocab, (batch_size, seq_len))
    transformer = nn.Transformer(d_model=dim, nhead=8, num_encoder_layers=4, num_decoder_layers=4)
    embedding, head = nn.Embedding(vocab, dim), nn.Linear(dim, vocab)
    start = time.perf_counter()
    e = embedding(x)
    t_logits = head(transformer(e, e))
    t_time = time.perf_counter() - start
    brain = V3Model(V3Config.published(dim=dim, num_layers=4))
    start = time.perf_counter()
    b_logits = brain(x, training_step=100)
    b_time = time.perf_counter() - start
    t_params = sum(p.numel() for p in transformer.parameters())
    b_params = sum(p.numel() for p in brain.parameters())
    with torch.no_grad():
        t_loss = F.cross_entropy(t_logits.reshape(-1, vocab), y.reshape(-1))
        b_loss = F.cross_entropy(b_logits.reshape(-1, vocab), y.reshape(-1))
        t_var = t_logits.var(dim=-1).mean()
        b_var = b_logits.var(dim=-1).mean()
    return PublishedComparison(
        transformer_params=t_params,
        brain_params=b_params,
        memory_efficiency=t_params / b_params,
        transformer_time=t_time,
        brain_time=b_time,
        speedup=t_time / b_time,
        transformer_loss=float(t_loss),
        brain_loss=float(b_loss),
        transformer_logit_var=float(t_var),
        brain_logit_var=float(b_var),
    )


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
        check_int(name, v)
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
    "PublishedComparison",
    "PublishedEpoch",
    "byte_batches",
    "consciousness_state",
    "published_comparison",
    "published_step",
    "published_train",
    "published_validate",
]
