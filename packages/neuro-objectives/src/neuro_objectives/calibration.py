"""Calibration of confidences (NeuroLlama ``CalibrationLoss``; early-exit confidence heads).

Expected calibration error with ``M`` equal-width bins ``B_m = ((m−1)/M, m/M]`` (Naeini et al.
2015; Guo et al. 2017)::

    ECE = Σ_m (|B_m| / N) · |acc(B_m) − conf(B_m)|  ∈ [0, 1]

with ``acc`` the fraction correct and ``conf`` the mean confidence in the bin. It is a metric:
the bin assignment has no gradient. Two differentiable surrogates:

* ``"squared_gap"`` (NeuroLlama's design variant): ``Σ_m (conf(B_m) − acc(B_m))²`` over the
  non-empty bins, hard bins, gradient through the confidences only. Published as written: the
  bins are not weighted by their size, so a bin with one sample counts as much as a full one.
* ``"soft_binning"`` (default; Karandikar et al. 2021, soft-binned ECE): sample ``i`` belongs to
  bin ``m`` with weight ``u_im = softmax_m(−(c_i − ξ_m)² / τ)`` (``ξ_m`` the bin centres), and
  ``SECE = Σ_m (n_m / N) |acc_m − conf_m|`` with soft counts ``n_m = Σ_i u_im`` and soft means.
  As ``τ → 0`` it tends to the ECE of bins around the centres, i.e. the ECE above.

Post-hoc fits on a dev split: :func:`fit_temperature` (``softmax(z / T)``, Guo et al. 2017) for
logits and :func:`fit_platt` (``σ(a s + b)``, Platt 1999) for a scalar exit score/confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from neuro_core.validation import check_positive, check_tensor, finite_checks_enabled
from neuro_objectives._util import check_mask

#: Number of bins of NeuroLlama's ``CalibrationLoss`` (and the common ECE default).
PUBLISHED_NUM_BINS = 10
#: Default soft-binning temperature τ: a tenth of the squared bin width of 10 bins.
DEFAULT_SOFT_BIN_TEMPERATURE = 1e-3


def _lbfgs(param: torch.Tensor, max_iter: int) -> torch.optim.LBFGS:
    # tight tolerances: float64 fits of one or two scalars converge well below the defaults
    return torch.optim.LBFGS(
        [param],
        lr=1.0,
        max_iter=int(max_iter),
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )


def _check_inputs(
    confidence: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("confidence", confidence, floating=True, finite=True)
    check_tensor("correct", correct, device=confidence.device)
    if tuple(correct.shape) != tuple(confidence.shape):
        raise ValueError(
            f"correct must have the shape of confidence {tuple(confidence.shape)}, "
            f"got {tuple(correct.shape)}"
        )
    if finite_checks_enabled() and bool(((confidence < 0) | (confidence > 1)).any()):
        raise ValueError("confidence must lie in [0, 1]")
    if correct.dtype != torch.bool and not bool(((correct == 0) | (correct == 1)).all()):
        raise ValueError("correct must hold 0/1 or bool values")
    m = check_mask("mask", mask, tuple(confidence.shape), confidence.device)
    c = confidence.reshape(-1)
    a = correct.reshape(-1).to(confidence.dtype)
    if m is not None:
        keep = m.reshape(-1)
        c, a = c[keep], a[keep]
    if c.numel() == 0:
        raise ValueError("confidence must hold at least one (unmasked) sample")
    return c, a


def _bin_index(c: torch.Tensor, num_bins: int) -> torch.Tensor:
    # bins ((m−1)/M, m/M]; a confidence of exactly 0 goes to the first bin
    return (torch.ceil(c * num_bins) - 1).clamp(0, num_bins - 1).long()


def _check_bins(num_bins: int) -> int:
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be ≥ 1, got {num_bins}")
    return int(num_bins)


def expected_calibration_error(
    confidence: torch.Tensor,
    correct: torch.Tensor,
    *,
    num_bins: int = PUBLISHED_NUM_BINS,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ECE with ``num_bins`` equal-width bins (a metric, returned detached), in ``[0, 1]``.

    Args:
        confidence: predicted probability of the chosen answer, any shape, values in [0, 1].
        correct: same shape, bool or 0/1: whether the chosen answer was right.
        num_bins: ``M`` (10).
        mask: optional bool mask of the same shape; false entries are left out.
    """
    m = _check_bins(num_bins)
    c, a = _check_inputs(confidence, correct, mask)
    c, a = c.detach(), a.detach()
    idx = _bin_index(c, m)
    count = torch.zeros(m, dtype=c.dtype, device=c.device).index_add_(0, idx, torch.ones_like(c))
    conf = torch.zeros_like(count).index_add_(0, idx, c)
    acc = torch.zeros_like(count).index_add_(0, idx, a)
    return (acc - conf).abs().sum() / c.numel()


def calibration_loss(
    confidence: torch.Tensor,
    correct: torch.Tensor,
    *,
    num_bins: int = PUBLISHED_NUM_BINS,
    method: Literal["soft_binning", "squared_gap"] = "soft_binning",
    temperature: float = DEFAULT_SOFT_BIN_TEMPERATURE,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable calibration surrogate (see the module docstring).

    Args:
        confidence, correct, num_bins, mask: as in :func:`expected_calibration_error`.
        method: ``"soft_binning"`` (default, in [0, 1]) or ``"squared_gap"`` (published, in
            ``[0, number of non-empty bins]``).
        temperature: ``τ > 0`` of the soft bins.

    Returns:
        scalar, differentiable with respect to ``confidence``.
    """
    m = _check_bins(num_bins)
    c, a = _check_inputs(confidence, correct, mask)
    if method == "squared_gap":
        idx = _bin_index(c.detach(), m)
        count = torch.zeros(m, dtype=c.dtype, device=c.device).index_add_(
            0, idx, torch.ones_like(c)
        )
        conf = torch.zeros_like(count).index_add(0, idx, c)
        acc = torch.zeros_like(count).index_add_(0, idx, a)
        full = count > 0
        gap = (conf[full] - acc[full]) / count[full]
        return gap.pow(2).sum()
    if method == "soft_binning":
        tau = check_positive("temperature", temperature)
        centres = (torch.arange(m, dtype=c.dtype, device=c.device) + 0.5) / m
        u = torch.softmax(-(c[:, None] - centres[None, :]).pow(2) / tau, dim=1)  # [N, M]
        conf = (u * c[:, None]).sum(0)
        acc = (u * a[:, None]).sum(0)
        # Σ_m (n_m/N) |acc_m/n_m − conf_m/n_m| = Σ_m |Σ_i u_im (a_i − c_i)| / N
        return (acc - conf).abs().sum() / c.numel()
    raise ValueError(f"method must be 'soft_binning' or 'squared_gap', got {method!r}")


def confidence_and_correct(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-softmax confidence and correctness of the argmax: ``[..., V], [...] → [...], [...]``."""
    check_tensor("logits", logits, floating=True, finite=True)
    check_tensor("labels", labels, dtype=(torch.int64, torch.int32), device=logits.device)
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels must have shape {tuple(logits.shape[:-1])} (logits without V), "
            f"got {tuple(labels.shape)}"
        )
    probs = logits.softmax(-1)
    conf, pred = probs.max(-1)
    return conf, pred == labels


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    max_iter: int = 200,
) -> float:
    """Temperature ``T > 0`` minimizing the dev NLL of ``softmax(z / T)`` (Guo et al. 2017).

    Args:
        logits: ``[N, V]`` dev-split logits (e.g. an exit head's).
        labels: ``[N]`` int64 targets.
        max_iter: L-BFGS iterations on ``log T`` (float64).

    Returns:
        ``T``; divide logits by it at inference.
    """
    check_tensor("logits", logits, ndim=2, floating=True, finite=True)
    check_tensor("labels", labels, ndim=1, dtype=(torch.int64,), device=logits.device)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have N = {logits.shape[0]} entries, got {labels.shape[0]}")
    z = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, device=z.device, requires_grad=True)
    opt = _lbfgs(log_t, max_iter)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


@dataclass(frozen=True, kw_only=True)
class PlattScaling:
    """``p = σ(a · s + b)``: a calibrated probability from a raw score ``s`` (Platt 1999)."""

    a: float
    b: float

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        check_tensor("scores", scores, floating=True)
        return torch.sigmoid(self.a * scores + self.b)


def fit_platt(
    scores: torch.Tensor,
    correct: torch.Tensor,
    *,
    max_iter: int = 200,
) -> PlattScaling:
    """Fit ``σ(a s + b)`` to dev-split outcomes by minimizing the binary cross-entropy.

    Args:
        scores: ``[N]`` raw scores (e.g. an exit's confidence, or its logit).
        correct: ``[N]`` bool/0-1 outcomes.
        max_iter: L-BFGS iterations (float64).
    """
    check_tensor("scores", scores, ndim=1, floating=True, finite=True)
    check_tensor("correct", correct, shape=(scores.shape[0],), device=scores.device)
    y = correct.detach().double()
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("correct must hold 0/1 or bool values")
    s = scores.detach().double()
    ab = torch.zeros(2, dtype=torch.float64, device=s.device, requires_grad=True)
    opt = _lbfgs(ab, max_iter)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(ab[0] * s + ab[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = ab.detach().tolist()
    return PlattScaling(a=float(a), b=float(b))
