"""Encoders (values → spike trains ``[T, B, ...]``) and readouts (spike trains → values).

Encoders: Bernoulli rate coding, Poisson rate coding in Hz, latency (time-to-first-spike) coding,
delta (change) coding, and token ids → a sensory population driven over a presentation window
(HebLLM's ``stimulate_by_token``, reference-systems.md §2.1). Readouts: spike counts,
first-spike times and :class:`CalibratedReadout`, which turns output-population counts into
next-token probabilities (softmax of counts over a temperature fitted on held-out data, or
Laplace smoothing; the two readouts of the HebLLM reproduction protocol, §2.5).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from neuro_core.validation import check_positive, check_tensor


def rate_encode(
    p: torch.Tensor, steps: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bernoulli rate code: ``s_t ~ Bernoulli(p)`` independently per step.

    Args:
        p: ``[B, ...]`` firing probabilities per step in [0, 1].
        steps: T ≥ 1.
        generator: optional RNG for reproducibility.

    Returns:
        ``[T, B, ...]`` spikes in ``p.dtype`` (mean over T → p as T → ∞).
    """
    check_tensor("p", p, floating=True)
    _check_steps(steps)
    if p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError("p must lie in [0, 1]")
    u = torch.rand((steps, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)


def poisson_encode(
    rates_hz: torch.Tensor,
    steps: int,
    *,
    dt_ms: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Poisson rate code: per step a spike with probability ``1 − exp(−r·dt)``.

    Args:
        rates_hz: ``[B, ...]`` non-negative rates in Hz.
        steps: T ≥ 1.
        dt_ms: step in ms.

    Returns:
        ``[T, B, ...]`` spikes (at most one per step).
    """
    check_tensor("rates_hz", rates_hz, floating=True)
    check_positive("dt_ms", dt_ms)
    if rates_hz.numel() and not bool((rates_hz >= 0).all()):
        raise ValueError("rates_hz must be ≥ 0")
    p = -torch.expm1(-rates_hz * (dt_ms / 1000.0))
    return rate_encode(p, steps, generator=generator)


def latency_encode(x: torch.Tensor, steps: int, *, min_value: float = 0.0) -> torch.Tensor:
    """Latency code: one spike at ``t = round((1 − x)·(T − 1))``; stronger inputs fire earlier.

    Args:
        x: ``[B, ...]`` intensities in [0, 1].
        steps: T ≥ 1.
        min_value: inputs ≤ this never fire (default 0: a zero input stays silent).

    Returns:
        ``[T, B, ...]`` with at most one spike per neuron.
    """
    check_tensor("x", x, floating=True)
    _check_steps(steps)
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must lie in [0, 1]")
    t_spike = torch.round((1 - x) * (steps - 1)).long()
    t = torch.arange(steps, device=x.device).view(-1, *([1] * x.ndim))
    return ((t == t_spike) & (x > min_value)).to(x.dtype)


def delta_encode(x: torch.Tensor, *, threshold: float, off_spikes: bool = False) -> torch.Tensor:
    """Delta code: ``+1`` where ``x_t − x_{t−1} ≥ threshold`` (and ``−1`` where it is
    ``≤ −threshold`` if ``off_spikes``); the first step compares with zero.

    Args:
        x: ``[T, B, ...]`` signal.
        threshold: > 0.

    Returns:
        ``[T, B, ...]`` spikes in {0, 1} (or {−1, 0, 1}).
    """
    check_tensor("x", x, floating=True)
    if x.ndim < 2:
        raise ValueError(f"x must be shaped [T, B, ...], got shape {tuple(x.shape)}")
    check_positive("threshold", threshold)
    d = torch.diff(x, dim=0, prepend=torch.zeros_like(x[:1]))
    on = (d >= threshold).to(x.dtype)
    return on - (d <= -threshold).to(x.dtype) if off_spikes else on


def token_encode(
    ids: torch.Tensor,
    vocab_size: int,
    *,
    window_steps: int,
    gap_steps: int = 0,
    neurons_per_token: int = 1,
    p_fire: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token ids → spikes of a sensory population, one token per presentation window.

    Token ``i`` drives neurons ``[i·k, (i+1)·k)`` (``k = neurons_per_token``) for
    ``window_steps`` steps, each step firing with probability ``p_fire``, followed by
    ``gap_steps`` silent steps (HebLLM protocol: 20 ms windows, ~50 ms gaps).

    Args:
        ids: ``[B, L]`` int64 token ids in ``[0, vocab_size)``.

    Returns:
        ``[L·(window_steps + gap_steps), B, vocab_size·k]`` float spikes.
    """
    check_tensor("ids", ids, ndim=2, dtype=torch.int64)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size={vocab_size})")
    _check_steps(window_steps, "window_steps")
    if gap_steps < 0:
        raise ValueError(f"gap_steps must be ≥ 0, got {gap_steps}")
    if neurons_per_token < 1:
        raise ValueError(f"neurons_per_token must be ≥ 1, got {neurons_per_token}")
    if not 0.0 < p_fire <= 1.0:
        raise ValueError(f"p_fire must be in (0, 1], got {p_fire}")
    B, L = ids.shape
    k = neurons_per_token
    onehot = torch.zeros(L, B, vocab_size * k, device=ids.device)
    cols = ids.t().unsqueeze(-1) * k + torch.arange(k, device=ids.device)
    onehot.scatter_(2, cols, 1.0)
    drive = onehot.unsqueeze(1).expand(L, window_steps, B, vocab_size * k)
    if p_fire < 1.0:
        u = torch.rand(drive.shape, generator=generator, device=ids.device)
        drive = drive * (u < p_fire)
    if gap_steps:
        silent = torch.zeros(L, gap_steps, B, vocab_size * k, device=ids.device)
        drive = torch.cat([drive, silent], dim=1)
    return drive.reshape(L * (window_steps + gap_steps), B, vocab_size * k).contiguous()


def spike_count(spikes: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...] → [B, ...]``: spikes summed over time."""
    check_tensor("spikes", spikes)
    if spikes.ndim < 2:
        raise ValueError(f"spikes must be shaped [T, B, ...], got shape {tuple(spikes.shape)}")
    return spikes.sum(0)


def first_spike_time(spikes: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...] → [B, ...]`` int64: index of the first spike, ``T`` where there is none."""
    check_tensor("spikes", spikes)
    if spikes.ndim < 2:
        raise ValueError(f"spikes must be shaped [T, B, ...], got shape {tuple(spikes.shape)}")
    T = spikes.shape[0]
    fired = spikes != 0
    t = torch.arange(T, device=spikes.device).view(-1, *([1] * (spikes.ndim - 1)))
    return (
        torch.where(fired, t, T).amin(0) if T else torch.zeros(spikes.shape[1:], dtype=torch.long)
    )


class CalibratedReadout(nn.Module):
    """Output-population spike counts → next-token probabilities.

    ``method="softmax"``: ``p = softmax(c / τ)`` with ``τ = exp(log_tau)`` learnable (fit it on
    a held-out split with :meth:`fit`). ``method="laplace"``: ``p = (c + α) / (Σc + V·α)``
    (no parameters; α = ``alpha``). ``counts [..., V]`` may sum several neurons per token first.
    """

    def __init__(
        self,
        *,
        method: Literal["softmax", "laplace"] = "softmax",
        temperature: float = 1.0,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        if method not in ("softmax", "laplace"):
            raise ValueError(f"method must be 'softmax' or 'laplace', got {method!r}")
        check_positive("temperature", temperature)
        check_positive("alpha", alpha)
        self.method = method
        self.alpha = alpha
        self.log_tau = nn.Parameter(torch.tensor(float(temperature)).log())

    def log_probs(self, counts: torch.Tensor) -> torch.Tensor:
        """``[..., V]`` counts → ``[..., V]`` log-probabilities."""
        check_tensor("counts", counts, floating=True)
        if self.method == "laplace":
            c = counts + self.alpha
            return c.log() - c.sum(-1, keepdim=True).log()
        return torch.log_softmax(counts / self.log_tau.exp(), dim=-1)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.log_probs(counts).exp()

    def fit(self, counts: torch.Tensor, targets: torch.Tensor, *, max_iter: int = 100) -> float:
        """Fit τ by minimizing held-out NLL (L-BFGS on ``log τ``); returns the final NLL."""
        check_tensor("targets", targets, dtype=torch.int64)
        if self.method != "softmax":
            raise ValueError("fit applies to method='softmax' only")
        opt = torch.optim.LBFGS([self.log_tau], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = nn.functional.nll_loss(
                self.log_probs(counts).reshape(-1, counts.shape[-1]), targets.reshape(-1)
            )
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            return float(
                nn.functional.nll_loss(
                    self.log_probs(counts).reshape(-1, counts.shape[-1]), targets.reshape(-1)
                )
            )


def _check_steps(steps: int, name: str = "steps") -> None:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {steps!r}")


__all__ = [
    "CalibratedReadout",
    "delta_encode",
    "first_spike_time",
    "latency_encode",
    "poisson_encode",
    "rate_encode",
    "spike_count",
    "token_encode",
]
