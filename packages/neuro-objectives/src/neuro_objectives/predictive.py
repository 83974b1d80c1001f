"""Predictive coding across layers (NeuroLlama ``predictive_coding``; Rao & Ballard 1999).

Each layer ``l`` has a top-down predictor ``f_l: h_{l+1} → ĥ_l`` and the surprise loss sums the
prediction errors over layers::

    L_surprise = Σ_{l=0}^{L−1} mean_{b,t} e(h_l, f_l(h_{l+1}))

with ``e(h, ĥ) = ‖h − ĥ‖² / D`` (``mode="mse"``, the published squared error averaged over
elements) or ``e(h, ĥ) = 1 − cos(h, ĥ)`` (``mode="cosine"``).

**Collapse.** In a pre-norm residual stream ``h_{l+1} ≈ h_l``, so ``f_l ≈ I`` already makes the
loss small, and because ``h_l`` and ``h_{l+1}`` are both outputs of the network, the gradient of
the raw squared error also shrinks every hidden state towards 0, where the loss is 0 whatever the
input (in ``tests/test_predictive.py`` the smallest mean norm falls to 0.08 of its start in 50
Adam steps). The guard, on by default: the target ``h_l`` is detached (``stop_gradient=True``),
so the loss moves the predictor and its input but never pulls the target towards the prediction
(same test: the norms keep about half their size); the scale-free ``mode="cosine"``
is a second guard (shrinking the norms does not lower it). Every term
is reported both ways (squared error and ``1 − cos``) together with the mean hidden norm, so a run
can see a collapse happen.

Published (design sketch, NumPy only): the target is not detached and the surprise of
:class:`PredictiveCodingLayer` may feed back into the forward pass ("prediction_weight 0.1, weight
of prediction error correction"); that correction is ``correction="published"`` here, default
off (loss only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_objectives._util import check_mask, masked_mean

SurpriseMode = Literal["mse", "cosine"]

#: Defaults of NeuroLlama's ``PredictiveCodingConfig``.
PUBLISHED_PREDICTION_WEIGHT = 0.1
PUBLISHED_ERROR_DECAY = 0.9


def _check_pair(target: torch.Tensor, prediction: torch.Tensor) -> None:
    check_tensor("target", target, floating=True, finite=True)
    check_tensor("prediction", prediction, floating=True, finite=True, device=target.device)
    if target.ndim < 1 or tuple(target.shape) != tuple(prediction.shape):
        raise ValueError(
            f"prediction must have the shape of target {tuple(target.shape)}, "
            f"got {tuple(prediction.shape)}"
        )


def prediction_error(
    target: torch.Tensor,
    prediction: torch.Tensor,
    *,
    mode: SurpriseMode = "mse",
    stop_gradient: bool = True,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean prediction error of one layer.

    ``mse``: ``mean_{b,t} ‖h − ĥ‖² / D``; ``cosine``: ``mean_{b,t} (1 − cos(h, ĥ))``.

    Args:
        target: ``h_l``, ``[..., D]``.
        prediction: ``ĥ_l = f_l(h_{l+1})``, same shape.
        mode: ``"mse"`` (published squared error) or ``"cosine"`` (scale-free).
        stop_gradient: detach ``target`` (default; the collapse guard).
        mask: optional ``[...]`` bool mask over positions (the shape of ``target`` without ``D``).

    Returns:
        scalar, in the dtype of ``target``.
    """
    _check_pair(target, prediction)
    m = check_mask("mask", mask, tuple(target.shape[:-1]), target.device)
    h = target.detach() if stop_gradient else target
    if mode == "mse":
        per_pos = (h - prediction).pow(2).mean(-1)
    elif mode == "cosine":
        per_pos = 1.0 - F.cosine_similarity(h, prediction, dim=-1, eps=1e-8)
    else:
        raise ValueError(f"mode must be 'mse' or 'cosine', got {mode!r}")
    return masked_mean(per_pos, m)


class PredictionHead(nn.Module):
    """Top-down predictor ``f_l(h) = W h (+ b)`` from ``h_{l+1}`` to ``ĥ_l``, ``[..., D] → [..., D]``.

    Args:
        d_model: ``D``.
        bias: add a bias (default False, as the rest of a Llama).
        init: ``"default"`` (``nn.Linear``'s uniform init) or ``"identity"`` (``W = I``: in a
            residual stream the identity is already a good predictor, see the module docstring).
    """

    def __init__(
        self, d_model: int, *, bias: bool = False, init: Literal["default", "identity"] = "default"
    ) -> None:
        super().__init__()
        if int(d_model) < 1:
            raise ValueError(f"d_model must be ≥ 1, got {d_model}")
        self.proj = nn.Linear(int(d_model), int(d_model), bias=bias)
        if init == "identity":
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(int(d_model)))
                if self.proj.bias is not None:
                    self.proj.bias.zero_()
        elif init != "default":
            raise ValueError(f"init must be 'default' or 'identity', got {init!r}")

    def forward(self, h_above: torch.Tensor) -> torch.Tensor:
        check_tensor("h_above", h_above, floating=True)
        if h_above.shape[-1] != self.proj.in_features:
            raise ValueError(
                f"h_above must have last dim {self.proj.in_features}, got {tuple(h_above.shape)}"
            )
        return self.proj(h_above)


class SurpriseLoss(nn.Module):
    """``Σ_l mean e(h_l, f_l(h_{l+1}))`` with one :class:`PredictionHead` per layer pair.

    Args:
        num_layers: number of predicted layers ``L``; ``forward`` takes ``L + 1`` hidden states.
        d_model: ``D``.
        mode: error used for the loss, ``"mse"`` (default, published) or ``"cosine"``.
        stop_gradient: detach each target ``h_l`` (default True, the collapse guard; False is the
            published form).
        head_init: init of every head (see :class:`PredictionHead`).

    ``forward(hidden_states, mask=None)``, with ``hidden_states`` a sequence of ``L + 1`` tensors
    ``[B, T, D]`` (e.g. the embedding output and every block's output) and ``mask`` an optional
    ``[B, T]``, returns ``(loss, report)``: the summed loss, and detached per-layer values
    ``surprise/l{l}`` (the trained term), ``surprise/l{l}/mse``, ``surprise/l{l}/cos``,
    ``surprise/l{l}/norm`` (mean ‖h_l‖, to watch for collapse) and ``surprise``.
    """

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        *,
        mode: SurpriseMode = "mse",
        stop_gradient: bool = True,
        head_init: Literal["default", "identity"] = "default",
    ) -> None:
        super().__init__()
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be ≥ 1, got {num_layers}")
        if mode not in ("mse", "cosine"):
            raise ValueError(f"mode must be 'mse' or 'cosine', got {mode!r}")
        self.mode: SurpriseMode = mode
        self.stop_gradient = bool(stop_gradient)
        self.heads = nn.ModuleList(
            PredictionHead(d_model, init=head_init) for _ in range(int(num_layers))
        )

    def forward(
        self, hidden_states: Sequence[torch.Tensor], mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = len(self.heads)
        if len(hidden_states) != n + 1:
            raise ValueError(
                f"hidden_states must hold num_layers + 1 = {n + 1} tensors, got {len(hidden_states)}"
            )
        report: dict[str, torch.Tensor] = {}
        terms = []
        for layer, head in enumerate(self.heads):
            h, above = hidden_states[layer], hidden_states[layer + 1]
            check_tensor(f"hidden_states[{layer}]", h, ndim=3, floating=True)
            pred = head(above)
            term = prediction_error(
                h, pred, mode=self.mode, stop_gradient=self.stop_gradient, mask=mask
            )
            terms.append(term)
            with torch.no_grad():
                report[f"surprise/l{layer}"] = term.detach()
                report[f"surprise/l{layer}/mse"] = prediction_error(h, pred, mode="mse", mask=mask)
                report[f"surprise/l{layer}/cos"] = prediction_error(
                    h, pred, mode="cosine", mask=mask
                )
                report[f"surprise/l{layer}/norm"] = masked_mean(
                    h.detach().norm(dim=-1), None if mask is None else mask.bool()
                )
        loss = torch.stack(terms).sum()
        report["surprise"] = loss.detach()
        return loss, report

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, stop_gradient={self.stop_gradient}"


def leaky_sequence_sum(errors: torch.Tensor, decay: float) -> torch.Tensor:
    """Causal leaky sum along time, ``s_t = decay · s_{t−1} + e_t`` (``s_{−1} = 0``), ``[B, T]``."""
    check_tensor("errors", errors, ndim=2, floating=True)
    d = check_in_range("decay", decay, 0.0, 1.0)
    out = []
    s = errors.new_zeros(errors.shape[0])
    for t in range(errors.shape[1]):
        s = d * s + errors[:, t]
        out.append(s)
    return torch.stack(out, dim=1)


class PredictiveCodingOutput(NamedTuple):
    """Output of :class:`PredictiveCodingLayer`.

    Attributes:
        output: ``h_{l+1}`` (with the published correction if enabled), ``[B, T, D]``.
        prediction_for_below: ``ĥ_l = f_l(h_{l+1})``, the prediction of this layer's input,
            ``[B, T, D]``; pass it down as the next pass's ``prediction_from_above`` of layer l.
        loss: ``e(x, ĥ_l)``, this layer's surprise-loss term (scalar).
        surprise: ``s_t = decay · s_{t−1} + ‖x_t − p_t‖₂`` against ``prediction_from_above``,
            ``[B, T]``; ``None`` when no prediction was given.
    """

    output: torch.Tensor
    prediction_for_below: torch.Tensor
    loss: torch.Tensor
    surprise: torch.Tensor | None


class PredictiveCodingLayer(nn.Module):
    """Wrap a layer ``h_{l+1} = layer(h_l)`` with a top-down predictor of its input.

    ``forward(x, prediction_from_above=None)`` runs the layer, predicts ``x`` back from the
    output (``prediction_for_below``), and returns that prediction's loss term. A prediction of
    ``x`` coming from above exists only after the layer above ran, i.e. from a previous pass; when
    given, it yields the per-position surprise profile and, with ``correction="published"``, the
    forward correction ``output = layer(x) + w · (x − p)`` (our reading of NeuroLlama's
    undocumented "prediction_weight: weight of prediction error correction", ``w = 0.1``: the
    prediction error is passed upwards). Default ``correction="none"``: the forward pass is the
    wrapped layer's, and predictive coding acts only through the loss.

    Args:
        layer: any module ``[B, T, D] → [B, T, D]``.
        d_model: ``D``.
        correction: ``"none"`` (default) or ``"published"``.
        prediction_weight: ``w`` of the correction (0.1 published).
        error_decay: decay of the surprise accumulator along the sequence (0.9 published).
        mode, stop_gradient: of the loss term (see :func:`prediction_error`).
    """

    def __init__(
        self,
        layer: nn.Module,
        d_model: int,
        *,
        correction: Literal["none", "published"] = "none",
        prediction_weight: float = PUBLISHED_PREDICTION_WEIGHT,
        error_decay: float = PUBLISHED_ERROR_DECAY,
        mode: SurpriseMode = "mse",
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        if correction not in ("none", "published"):
            raise ValueError(f"correction must be 'none' or 'published', got {correction!r}")
        if mode not in ("mse", "cosine"):
            raise ValueError(f"mode must be 'mse' or 'cosine', got {mode!r}")
        self.layer = layer
        self.head = PredictionHead(d_model)
        self.correction = correction
        self.prediction_weight = check_positive(
            "prediction_weight", prediction_weight, allow_zero=True
        )
        self.error_decay = check_in_range("error_decay", error_decay, 0.0, 1.0)
        self.mode: SurpriseMode = mode
        self.stop_gradient = bool(stop_gradient)

    def forward(
        self, x: torch.Tensor, prediction_from_above: torch.Tensor | None = None
    ) -> PredictiveCodingOutput:
        check_tensor("x", x, ndim=3, floating=True)
        out = self.layer(x)
        surprise = None
        if prediction_from_above is not None:
            check_tensor(
                "prediction_from_above",
                prediction_from_above,
                shape=tuple(x.shape),
                floating=True,
                device=x.device,
            )
            err = x - prediction_from_above
            if self.correction == "published":
                out = out + self.prediction_weight * err
            surprise = leaky_sequence_sum(err.norm(dim=-1), self.error_decay)
        pred = self.head(out)
        loss = prediction_error(x, pred, mode=self.mode, stop_gradient=self.stop_gradient)
        return PredictiveCodingOutput(out, pred, loss, surprise)

    def extra_repr(self) -> str:
        return (
            f"correction={self.correction!r}, prediction_weight={self.prediction_weight}, "
            f"error_decay={self.error_decay}"
        )


class ErrorSignalState(NamedTuple):
    """State of :class:`PredictionErrorSignal`.

    Attributes:
        ema: running mean of each layer's error, ``[L]`` (not bias-corrected).
        steps: number of updates so far (0-dim int64).
    """

    ema: torch.Tensor
    steps: torch.Tensor


class PredictionErrorSignal:
    """Per-layer prediction-error accumulator with decay (NeuroLlama ``PredictionErrorSignal``).

    ``update``: ``m_l ← γ m_l + (1 − γ) e_l`` (``γ = decay``, 0.9 published), on detached errors;
    the surprise profile is the bias-corrected ``m̂_l = m_l / (1 − γ^n)`` normalized to sum to 1
    over layers; ``total(errors) = Σ_l w_l e_l`` is the differentiable loss (``w_l = 1`` unless
    given). Pure: the state is returned, never kept on the object.

    Args:
        num_layers: ``L``.
        decay: ``γ`` in [0, 1).
        layer_weights: optional ``w_l``, length ``L``, each ≥ 0.
    """

    def __init__(
        self,
        num_layers: int,
        *,
        decay: float = PUBLISHED_ERROR_DECAY,
        layer_weights: Sequence[float] | None = None,
    ) -> None:
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be ≥ 1, got {num_layers}")
        self.num_layers = int(num_layers)
        self.decay = check_in_range("decay", decay, 0.0, 1.0, high_open=True)
        if layer_weights is None:
            layer_weights = [1.0] * self.num_layers
        if len(layer_weights) != self.num_layers:
            raise ValueError(
                f"layer_weights must have num_layers = {self.num_layers} entries, "
                f"got {len(layer_weights)}"
            )
        self.layer_weights = tuple(
            check_positive(f"layer_weights[{i}]", w, allow_zero=True)
            for i, w in enumerate(layer_weights)
        )

    def init(self, device: torch.device | str | None = None) -> ErrorSignalState:
        return ErrorSignalState(
            torch.zeros(self.num_layers, dtype=torch.float32, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    def _check_errors(self, errors: torch.Tensor) -> None:
        check_tensor("errors", errors, shape=(self.num_layers,), floating=True, finite=True)

    def update(self, state: ErrorSignalState, errors: torch.Tensor) -> ErrorSignalState:
        """Fold one step's per-layer errors ``[L]`` into the running means."""
        self._check_errors(errors)
        e = errors.detach().to(state.ema)
        return ErrorSignalState(self.decay * state.ema + (1 - self.decay) * e, state.steps + 1)

    def total(self, errors: torch.Tensor) -> torch.Tensor:
        """``Σ_l w_l e_l`` (differentiable)."""
        self._check_errors(errors)
        w = torch.tensor(self.layer_weights, dtype=errors.dtype, device=errors.device)
        return (w * errors).sum()

    def running_errors(self, state: ErrorSignalState) -> torch.Tensor:
        """Bias-corrected running mean ``m̂_l``, ``[L]`` (zeros before the first update)."""
        n = int(state.steps)
        if n == 0:
            return torch.zeros_like(state.ema)
        return state.ema / (1 - self.decay**n)

    def profile(self, state: ErrorSignalState) -> torch.Tensor:
        """Surprise profile: ``m̂_l / Σ_k m̂_k``, ``[L]`` (uniform while all are 0)."""
        m = self.running_errors(state)
        s = m.sum()
        if float(s) <= 0:
            return torch.full_like(m, 1.0 / self.num_layers)
        return m / s

    def stats(self, state: ErrorSignalState) -> dict[str, float]:
        """``{"surprise/l{l}": m̂_l, "surprise/peak_layer": argmax, "surprise/mean": mean}``."""
        m = self.running_errors(state)
        out = {f"surprise/l{i}": float(v) for i, v in enumerate(m)}
        out["surprise/peak_layer"] = float(int(torch.argmax(m)))
        out["surprise/mean"] = float(m.mean())
        return out
