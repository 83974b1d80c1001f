"""Synaptic intelligence (Zenke, Poole & Ganguli 2017, "Continual learning through synaptic intelligence").

During a task each parameter accumulates its contribution to the loss decrease along the path,
ω_i += −g_i Δθ_i per optimiser step (eq. 3, with g the gradient that was applied). At the end of
the task its importance grows by Ω_i += ω_i / ((Δ_i)² + ξ), with Δ_i the total change over the
task (eq. 5), and the penalty is c Σ_i Ω_i (θ_i − θ*_i)² around the end-of-task parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_core.validation import check_positive


class SynapticIntelligence:
    """SI bound to a model. Wrap each ``optimizer.step()`` as ``si.step(optimizer)``; call
    :meth:`consolidate` at the end of every task; add :meth:`penalty` (or use :meth:`augment`).

    Args:
        model: the network.
        c: penalty strength ≥ 0 (Zenke et al. use 0.1 on split MNIST).
        xi: damping ξ > 0 (default 1e-3, as in the paper).
    """

    def __init__(self, model: nn.Module, c: float, xi: float = 1e-3) -> None:
        self.model = model
        self.c = check_positive("c", c, allow_zero=True)
        self.xi = check_positive("xi", xi)
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.omega = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.importance = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.start = {n: p.detach().clone() for n, p in self.params.items()}
        self.anchor: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Run ``optimizer.step()`` and accumulate the path integral ω."""
        before = {n: p.detach().clone() for n, p in self.params.items()}
        grads = {
            n: (p.grad.detach().clone() if p.grad is not None else None)
            for n, p in self.params.items()
        }
        optimizer.step()
        for n, p in self.params.items():
            g = grads[n]
            if g is not None:
                self.omega[n] -= g * (p.detach() - before[n])

    @torch.no_grad()
    def consolidate(self) -> None:
        """End of task: Ω += ω/(Δ² + ξ), reset ω, anchor θ* = θ."""
        for n, p in self.params.items():
            delta = p.detach() - self.start[n]
            self.importance[n] += self.omega[n] / (delta.pow(2) + self.xi)
            self.omega[n].zero_()
            self.start[n] = p.detach().clone()
        self.anchor = {n: p.detach().clone() for n, p in self.params.items()}

    def penalty(self) -> torch.Tensor:
        """c Σ Ω (θ − θ*)² (0 before the first consolidation)."""
        first = next(iter(self.params.values()))
        if self.anchor is None:
            return torch.zeros((), device=first.device)
        total = torch.zeros((), device=first.device)
        for n, p in self.params.items():
            total = total + (self.importance[n] * (p - self.anchor[n]).pow(2)).sum()
        return self.c * total

    def augment(self, task_loss: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(task_loss + penalty, {"task": ..., "si": ...})``."""
        pen = self.penalty()
        return task_loss + pen, {"task": task_loss.detach(), "si": pen.detach()}
