"""Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC (Schwarz et al. 2018).

    L(θ) = L_task(θ) + (λ/2) Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²

F is the diagonal Fisher information, estimated from per-sample gradients of the log-likelihood
of a classifier (``fisher="empirical"``: at the true labels; ``"true"``: at labels sampled from the
model's own predictive distribution, the definition of the Fisher). With ``mode="separate"`` one
(θ*, F) anchor is kept per consolidated task (Kirkpatrick); with ``mode="online"`` a single anchor
with F ← γ F_old + F_new and θ* ← the latest parameters (Schwarz et al. 2018, "Progress &
Compress", §2.3).

What we changed from Aura (reference-systems §3.2): there the Fisher is the square of
*batch-mean* gradients, the ½ is missing, and the penalty is never added to the loss. Here the
Fisher uses per-sample gradients, and :meth:`EWC.augment` returns the loss that is optimised, with
the penalty inside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from neuro_core.validation import check_in_range, check_positive, check_tensor

FisherKind = Literal["empirical", "true"]


def diagonal_fisher(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    fisher: FisherKind = "empirical",
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Mean over samples of the squared per-sample gradient of log p(y | x; θ).

    Args:
        model: a classifier mapping ``x`` ``[N, ...]`` to logits ``[N, C]``.
        data: batches ``(x, y)`` with integer labels ``y`` ``[N]``.
        fisher: ``"empirical"`` (true labels) or ``"true"`` (labels sampled from the model).
        generator: for ``"true"``.

    Returns:
        ``{name: F}`` for every parameter that requires grad (same shapes).
    """
    if fisher not in ("empirical", "true"):
        raise ValueError(f"fisher must be 'empirical' or 'true', got {fisher!r}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logp(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x[None],))
        return out.log_softmax(-1)[0].gather(0, y.reshape(1)).squeeze(0)

    per_sample = vmap(grad(logp), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for x, y in data:
        check_tensor("y", y, ndim=1)
        if fisher == "true":
            with torch.no_grad():
                probs = model(x).softmax(-1)
            y = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        g = per_sample(params, x, y)
        for n in total:
            total[n] += g[n].pow(2).sum(0)
        count += x.shape[0]
    if count == 0:
        raise ValueError("data must contain at least one sample")
    return {n: t / count for n, t in total.items()}


class EWC:
    """EWC penalty bound to a model.

    Usage per task: train with ``loss, terms = ewc.augment(task_loss)``; at the end of the task call
    ``ewc.update_fisher(data)`` then ``ewc.consolidate()``.

    Args:
        model: the network whose parameters are anchored.
        lam: λ ≥ 0.
        mode: ``"separate"`` or ``"online"``.
        gamma: online decay γ ∈ (0, 1] of the old Fisher (``mode="online"`` only).
        fisher: estimator, see :func:`diagonal_fisher`.
    """

    def __init__(
        self,
        model: nn.Module,
        lam: float,
        *,
        mode: Literal["separate", "online"] = "separate",
        gamma: float = 1.0,
        fisher: FisherKind = "empirical",
    ) -> None:
        self.model = model
        self.lam = check_positive("lam", lam, allow_zero=True)
        if mode not in ("separate", "online"):
            raise ValueError(f"mode must be 'separate' or 'online', got {mode!r}")
        if mode == "separate" and gamma != 1.0:
            raise ValueError("gamma is used only by mode='online'")
        self.mode = mode
        self.gamma = check_in_range("gamma", gamma, 0.0, 1.0, low_open=True)
        self.fisher_kind: FisherKind = fisher
        self.anchors: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        self._pending: dict[str, torch.Tensor] | None = None

    def update_fisher(
        self,
        data: Iterable[tuple[torch.Tensor, torch.Tensor]],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Estimate the Fisher of the task just learned (kept until :meth:`consolidate`)."""
        self._pending = diagonal_fisher(
            self.model, data, fisher=self.fisher_kind, generator=generator
        )
        return self._pending

    def consolidate(self) -> None:
        """Anchor the current parameters with the Fisher from :meth:`update_fisher`."""
        if self._pending is None:
            raise ValueError("consolidate: no Fisher estimate; call update_fisher(data) first")
        theta = {
            n: p.detach().clone() for n, p in self.model.named_parameters() if n in self._pending
        }
        fisher = self._pending
        if self.mode == "online" and self.anchors:
            old = self.anchors[0][1]
            fisher = {n: self.gamma * old[n] + f for n, f in fisher.items()}
            self.anchors = []
        self.anchors.append((theta, fisher))
        self._pending = None

    def penalty(self) -> torch.Tensor:
        """(λ/2) Σ F (θ − θ*)² over all anchors (0 before the first consolidation)."""
        params = dict(self.model.named_parameters())
        device = next(iter(params.values())).device
        total = torch.zeros((), device=device)
        for theta, fisher in self.anchors:
            for n, f in fisher.items():
                total = total + (f * (params[n] - theta[n]).pow(2)).sum()
        return 0.5 * self.lam * total

    def augment(self, task_loss: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(task_loss + penalty, {"task": ..., "ewc": ...})``: the loss to optimise and its terms."""
        pen = self.penalty()
        return task_loss + pen, {"task": task_loss.detach(), "ewc": pen.detach()}
