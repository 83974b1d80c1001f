"""Sleep-style consolidation: replay at reduced plasticity, then prune weak synapses.

HebLLM's sleep (reference-systems §2.1) re-injects stored activity at 0.3× plasticity, prunes
w < 0.01, and clears the buffer; Aura's sleep replays 25 batches at 0.1× loss. Here one sleep
phase is: ``steps`` optimiser steps on batches drawn from a replay buffer, with every learning rate
multiplied by ``plasticity`` for the duration, followed by magnitude pruning of the weight
matrices. The buffer is kept (clearing it would forget the old tasks' rehearsal material).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from neuro_core.validation import check_in_range, check_positive
from neuro_plasticity.continual.replay import ReplayBuffer


@dataclass(frozen=True, kw_only=True)
class SleepConfig:
    """One sleep phase.

    Attributes:
        steps: replay optimiser steps (HebLLM/Aura: 25 batches).
        batch_size: replay batch size.
        plasticity: learning-rate multiplier during sleep, in (0, 1] (Aura 0.1, HebLLM 0.3).
        prune_threshold: weights with |w| below it are set to zero after replay (HebLLM 0.01);
            0 disables pruning.
    """

    steps: int = 25
    batch_size: int = 32
    plasticity: float = 0.1
    prune_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(
                f"steps must be ≥ 0 and batch_size ≥ 1, got {self.steps}, {self.batch_size}"
            )
        check_in_range("plasticity", self.plasticity, 0.0, 1.0, low_open=True)
        check_positive("prune_threshold", self.prune_threshold, allow_zero=True)


@torch.no_grad()
def prune_weights(model: nn.Module, threshold: float) -> dict[str, torch.Tensor]:
    """Zero every weight matrix entry (params with ≥ 2 dims) with |w| < threshold; return masks."""
    check_positive("threshold", threshold, allow_zero=True)
    masks = {}
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            keep = p.abs() >= threshold
            p.mul_(keep)
            masks[name] = keep
    return masks


def sleep(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: SleepConfig,
) -> dict[str, float]:
    """Run one sleep phase; returns ``{"replay_loss": mean loss, "pruned_fraction": ...}``.

    ``loss_fn(logits, y)`` gives per-example losses ``[n]`` (they are weighted by the buffer's
    importance weights, and become the new priorities of a prioritized buffer).
    """
    if len(buffer) == 0:
        raise ValueError("buffer is empty: nothing to replay")
    saved = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * config.plasticity
    losses = []
    try:
        model.train()
        for _ in range(config.steps):
            s = buffer.sample(config.batch_size)
            per = loss_fn(model(s.x), s.y)
            loss = (per * s.weight.to(per.device)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if buffer.prioritized:
                buffer.update_priorities(s.indices, per.detach())
            losses.append(float(loss.detach()))
    finally:
        for g, lr in zip(optimizer.param_groups, saved):
            g["lr"] = lr
    total = sum(int(p.numel()) for p in model.parameters() if p.ndim >= 2)
    pruned = 0
    if config.prune_threshold > 0:
        masks = prune_weights(model, config.prune_threshold)
        pruned = sum(int((~m).sum()) for m in masks.values())
    return {
        "replay_loss": sum(losses) / max(len(losses), 1),
        "pruned_fraction": pruned / max(total, 1),
    }
