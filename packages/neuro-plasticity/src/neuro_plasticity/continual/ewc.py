"""Elastic weight consolidation (Kirkpatrick et al. 2017), online EWC (Schwarz et al. 2018) and a
running-average Fisher (EWC++, Chaudhry et al. 2018), for classifiers and language models.

    L(θ) = L_task(θ) + (λ/2) Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²

F is the diagonal Fisher information of the model's predictive distribution,

    F_i = E_{x ~ data} E_{y ~ q(·|x)} [ (∂ log p_θ(y | x) / ∂θ_i)² ],

averaged over the labelled units: one per sample for a classifier (logits ``[N, C]``, labels
``[N]``), one per *token* for a language model (logits ``[B, T, V]``, labels ``[B, T]``, already
aligned with the outputs, i.e. shifted by one for next-token prediction; ``ignore_index`` marks
padding). ``fisher="empirical"`` takes ``q`` = the data labels; ``"true"`` samples ``y`` from the
model itself (the definition of the Fisher). For a language model, ``estimator="token"`` squares
the gradient of each token's log-likelihood (exact; one forward per sequence and one backward
pass per token, vectorised with ``torch.func.vmap`` in chunks of ``token_chunk``; an op without a
batching rule, such as the CPU flash-attention backward, falls back to a slower loop with a
warning); ``estimator="sequence"`` squares the gradient of each sequence's summed
log-likelihood (one backward pass per sequence) and divides by the number of tokens. With
``fisher="true"`` the sequence estimator is unbiased for the token-level Fisher, because the
cross terms ``E[g_s g_t]`` (s ≠ t) vanish for labels sampled independently per position
(``E_y[∂ log p(y)] = 0``); with ``"empirical"`` they do not, and the two differ.

Dropout. The Fisher is computed with the model in **eval mode** (dropout off, batch norm on its
running statistics): the Fisher of the deterministic predictive distribution the model is
evaluated with. Every submodule's ``training`` flag is restored afterwards, also on error. (In
train mode each per-sample gradient would be that of a different random sub-network, and
``torch.func.vmap`` refuses the random op outright; that is why the published-style estimator
failed on a model with dropout.)

Modes. ``mode="separate"`` keeps one (θ*, F) anchor per consolidated task (Kirkpatrick);
``mode="online"`` keeps a single anchor with F ← γ F_old + F_new and θ* ← the latest parameters
(Schwarz et al. 2018, "Progress & Compress", §2.3). ``fisher_momentum=α`` makes
:meth:`EWC.update_fisher` a running average within a task, ``F ← (1 − α) F + α F_batch``, so it
can be called on the current training batch every few steps instead of in a separate pass at the
end of the task (Chaudhry et al. 2018, "Riemannian Walk", §4.1).

What we changed from Aura (reference-systems §3.2): there the Fisher is the square of
*batch-mean* gradients (kept as ``fisher="published"``: the mean over batches of
``(∂ mean-batch CE / ∂θ)²``), the ½ is missing (Aura's λ = 0.4 is ``lam=0.8`` here), the labels
of a language model are ``[B, T]`` (our previous classifier-only code raised "y must have 1
dims"), and the penalty is never added to the loss. Here :meth:`EWC.augment` returns the loss that
is optimised, with the penalty inside it.

Scale of λ. F is an average per labelled unit, matching a task loss that is a mean over samples
or tokens; ``lam = n`` (the number of units the task was trained on) gives the Laplace
approximation of the task's posterior on the summed loss (Kirkpatrick et al. 2017).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor

FisherKind = Literal["empirical", "true", "published"]
Estimator = Literal["token", "sequence"]
_FISHER_KINDS: tuple[str, ...] = ("empirical", "true", "published")
_ESTIMATORS: tuple[str, ...] = ("token", "sequence")
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _check_logits(out: object, y: torch.Tensor) -> torch.Tensor:
    want = "[N, C] for labels y [N]" if y.ndim == 1 else "[B, T, V] for labels y [B, T]"
    if (
        not isinstance(out, torch.Tensor)
        or tuple(out.shape[:-1]) != tuple(y.shape)
        or out.ndim != y.ndim + 1
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model output must be logits {want} = {tuple(y.shape)}, got {got}")
    return check_tensor("model output", out, floating=True)


def _sample_labels(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    probs = logits.detach().float().softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def diagonal_fisher(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    fisher: FisherKind = "empirical",
    estimator: Estimator = "token",
    ignore_index: int = -100,
    token_chunk: int = 64,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher ``F_i = mean over labelled units of (∂ log p(y | x) / ∂θ_i)²``.

    See the module docstring for the estimators. The model is evaluated in eval mode.

    Args:
        model: maps ``x`` to logits ``[N, C]`` (classifier) or ``[B, T, V]`` (language model).
        data: batches ``(x, y)`` with integer labels ``y`` ``[N]`` or ``[B, T]`` (targets aligned
            with the outputs; ``ignore_index`` marks positions to skip).
        fisher: ``"empirical"`` (data labels), ``"true"`` (labels sampled from the model) or
            ``"published"`` (Aura: mean over batches of the squared batch-mean gradient).
        estimator: ``"token"`` or ``"sequence"`` (language models; ``"sequence"`` raises for a
            classifier, whose samples have one label each).
        ignore_index: label value of positions that are not counted (default −100, as
            ``F.cross_entropy``).
        token_chunk: per-token gradients computed at once per sequence (memory: ``token_chunk``
            copies of the parameters).
        generator: for ``"true"``.

    Returns:
        ``{name: F}`` for every parameter that requires grad (same shapes and dtypes).
    """
    if fisher not in _FISHER_KINDS:
        raise ValueError(f"fisher must be one of {_FISHER_KINDS}, got {fisher!r}")
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    check_int("token_chunk", token_chunk)
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameter that requires grad")
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    with _eval_mode(model):
        for x, y in data:
            check_tensor("y", y, ndim=(1, 2), dtype=_INT_DTYPES)
            if y.ndim == 1 and estimator != "token":
                raise ValueError("estimator='sequence' needs language-model labels y [B, T]")
            if fisher == "published":
                count += _add_published(model, params, x, y, ignore_index, total)
            elif y.ndim == 1:
                count += _add_classifier(model, params, x, y, fisher, generator, total)
            else:
                count += _add_language_model(
                    model,
                    params,
                    x,
                    y,
                    fisher,
                    estimator,
                    ignore_index,
                    token_chunk,
                    generator,
                    total,
                )
    if count == 0:
        raise ValueError("data must contain at least one labelled sample or token")
    return {n: t / count for n, t in total.items()}


def _add_classifier(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    fisher: FisherKind,
    generator: torch.Generator | None,
    total: dict[str, torch.Tensor],
) -> int:
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    with torch.no_grad():
        logits = _check_logits(model(x), y)
    if fisher == "true":
        y = _sample_labels(logits, generator)

    def logp(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi[None],))
        return out.log_softmax(-1)[0].gather(0, yi.reshape(1)).squeeze(0)

    g = vmap(grad(logp), in_dims=(None, 0, 0))(params, x, y.long())
    for n in total:
        total[n] += g[n].pow(2).sum(0)
    return int(y.shape[0])


def _add_language_model(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    fisher: FisherKind,
    estimator: Estimator,
    ignore_index: int,
    token_chunk: int,
    generator: torch.Generator | None,
    total: dict[str, torch.Tensor],
) -> int:
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    y = y.long()
    valid = y != ignore_index
    if fisher == "true":
        with torch.no_grad():
            logits = _check_logits(model(x), y)
        y = torch.where(valid, _sample_labels(logits, generator), y)
    if bool(((y < 0) & valid).any()):
        raise ValueError(f"y must hold class indices ≥ 0 or ignore_index={ignore_index}")
    count = 0
    for b in range(y.shape[0]):
        positions = torch.nonzero(valid[b]).squeeze(1)
        if positions.numel() == 0:
            continue
        xb, yb = x[b : b + 1], y[b].clamp(min=0)

        def token_logp(
            p: dict[str, torch.Tensor], xb: torch.Tensor = xb, yb: torch.Tensor = yb
        ) -> torch.Tensor:
            out = _check_logits(functional_call(model, (p, buffers), (xb,)), yb[None])
            return out[0].log_softmax(-1).gather(-1, yb[:, None]).squeeze(-1)  # [T]

        # vjp's stub also covers has_aux=True (three results); without aux it returns two.
        primal_and_pullback = vjp(token_logp, params)
        logp, backward = primal_and_pullback[0], primal_and_pullback[1]
        seq_len = logp.shape[0]
        if estimator == "sequence":
            (g,) = backward(valid[b].to(logp.dtype))
            for n in total:
                total[n] += g[n].pow(2)
        else:
            for chunk in positions.split(token_chunk):
                basis = F.one_hot(chunk, seq_len).to(logp.dtype)  # [c, T]
                (g,) = vmap(backward)(basis)
                for n in total:
                    total[n] += g[n].pow(2).sum(0)
        count += int(positions.numel())
    return count


def _add_published(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    ignore_index: int,
    total: dict[str, torch.Tensor],
) -> int:
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def mean_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        out = _check_logits(functional_call(model, (p, buffers), (x,)), y)
        return F.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.reshape(-1).long(), ignore_index=ignore_index
        )

    g = grad(mean_loss)(params)
    for n in total:
        total[n] += g[n].pow(2)
    return 1  # one unit per batch: the published Fisher is a mean over batches


class EWC:
    """EWC penalty bound to a model.

    Usage per task: train with ``loss, terms = ewc.augment(task_loss)``; at the end of the task call
    ``ewc.update_fisher(data)`` (or, with ``fisher_momentum``, call it on training batches as you
    go), then ``ewc.consolidate()``.

    Args:
        model: the network whose parameters are anchored (a classifier or a language model).
        lam: λ ≥ 0.
        mode: ``"separate"`` or ``"online"``.
        gamma: online decay γ ∈ (0, 1] of the old Fisher (``mode="online"`` only).
        fisher: ``"empirical"``, ``"true"`` or ``"published"``, see :func:`diagonal_fisher`.
        estimator: ``"token"`` or ``"sequence"`` (language models), see :func:`diagonal_fisher`.
        ignore_index: label of positions that are not counted.
        token_chunk: per-token gradients computed at once.
        fisher_momentum: ``α ∈ (0, 1]``: running average ``F ← (1 − α) F + α F_new`` over
            :meth:`update_fisher` calls within a task (None: each call replaces the estimate).
    """

    def __init__(
        self,
        model: nn.Module,
        lam: float,
        *,
        mode: Literal["separate", "online"] = "separate",
        gamma: float = 1.0,
        fisher: FisherKind = "empirical",
        estimator: Estimator = "token",
        ignore_index: int = -100,
        token_chunk: int = 64,
        fisher_momentum: float | None = None,
    ) -> None:
        self.model = model
        self.lam = check_positive("lam", lam, allow_zero=True)
        if mode not in ("separate", "online"):
            raise ValueError(f"mode must be 'separate' or 'online', got {mode!r}")
        if mode == "separate" and gamma != 1.0:
            raise ValueError("gamma is used only by mode='online'")
        self.mode = mode
        self.gamma = check_in_range("gamma", gamma, 0.0, 1.0, low_open=True)
        if fisher not in _FISHER_KINDS:
            raise ValueError(f"fisher must be one of {_FISHER_KINDS}, got {fisher!r}")
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        self.fisher_kind: FisherKind = fisher
        self.estimator: Estimator = estimator
        self.ignore_index = ignore_index
        self.token_chunk = token_chunk
        self.fisher_momentum = (
            None
            if fisher_momentum is None
            else check_in_range("fisher_momentum", fisher_momentum, 0.0, 1.0, low_open=True)
        )
        self.anchors: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        self._pending: dict[str, torch.Tensor] | None = None

    def update_fisher(
        self,
        data: Iterable[tuple[torch.Tensor, torch.Tensor]],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Estimate the Fisher of the task being learned (kept until :meth:`consolidate`).

        Returns the current estimate: this call's, or the running average with
        ``fisher_momentum``.
        """
        new = diagonal_fisher(
            self.model,
            data,
            fisher=self.fisher_kind,
            estimator=self.estimator,
            ignore_index=self.ignore_index,
            token_chunk=self.token_chunk,
            generator=generator,
        )
        if self.fisher_momentum is None or self._pending is None:
            self._pending = new
        else:
            a = self.fisher_momentum
            self._pending = {n: (1 - a) * self._pending[n] + a * f for n, f in new.items()}
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
