"""Brain-inspired reward (NeuroLlama ``BrainInspiredReward``, "RLBF") and a REINFORCE helper.

Per generated sample ``i`` (reference-systems §1.9)::

    r_i = 0.25 · pred_acc_i + 0.15 · surprise_ok_i + 0.15 · efficiency_i
        + 0.20 · coherence_i + 0.15 · novelty_i − 0.10 · repetition_i

* ``pred_acc = mean_t cos(ĥ_t, h_t)``: how well the model's predictions matched what happened
  (top-down predictions vs the actual states, or predicted vs actual next-token embeddings);
* ``surprise_ok = 1[s_lo ≤ s ≤ s_hi]``: the sample's surprise (e.g. its mean NLL in nats) lies
  in a band — neither trivially predictable nor noise. The published band is not documented, so
  the band is a required argument;
* ``efficiency = 1 − layers_used / L`` (1 = fewest layers);
* ``coherence = cos(h_T, g)`` to the sample's goal embedding;
* ``novelty``: the fraction of the sample's n-grams (``novelty_n = 2``) absent from its context
  (prompt) when one is given, else the sample's distinct-n ratio (our definitions: the published
  one is not documented);
* ``repetition``: the sample's ``1 − unique / total`` 3-grams (seq-rep-3).

The reward is a training signal for policy gradients, not a differentiable loss:
:func:`reinforce_loss` turns it into ``L = −mean_i (r_i − b_i) Σ_t log π(a_{i,t})`` (Williams
1992) with a baseline ``b`` that keeps the estimator unbiased and lowers its variance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from neuro_core.validation import check_in_range, check_positive, check_tensor
from neuro_objectives._util import check_mask
from neuro_objectives.generation_metrics import (
    TokenSequences,
    as_token_lists,
    ngram_repeat_rates,
    ngrams,
)


@dataclass(frozen=True, kw_only=True)
class RewardWeights:
    """Weights of the reward components (defaults: the published ones; repetition is subtracted)."""

    prediction: float = 0.25
    surprise: float = 0.15
    efficiency: float = 0.15
    coherence: float = 0.20
    novelty: float = 0.15
    repetition: float = 0.10

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            check_positive(f"weights.{name}", value, allow_zero=True)


#: The weights of NeuroLlama's ``BrainInspiredReward``.
PUBLISHED_REWARD_WEIGHTS = RewardWeights()


def _novelty(tokens: list[list[int]], context: list[list[int]] | None, n: int) -> list[float]:
    out = []
    for i, row in enumerate(tokens):
        g = ngrams(row, n)
        if not g:
            out.append(0.0)
        elif context is None:
            out.append(len(set(g)) / len(g))
        else:
            seen = set(ngrams(context[i], n))
            out.append(sum(x not in seen for x in g) / len(g))
    return out


def brain_inspired_reward(
    *,
    predictions: torch.Tensor,
    actuals: torch.Tensor,
    surprise: torch.Tensor,
    surprise_band: tuple[float, float],
    layers_used: torch.Tensor,
    num_layers: int,
    hidden: torch.Tensor,
    goal: torch.Tensor,
    tokens: TokenSequences,
    context_tokens: TokenSequences | None = None,
    mask: torch.Tensor | None = None,
    pad_id: int | None = None,
    novelty_n: int = 2,
    repetition_n: int = 3,
    weights: RewardWeights = PUBLISHED_REWARD_WEIGHTS,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The published weighted reward, one value per generated sample (detached, float64).

    Args:
        predictions, actuals: ``[N, T, D]`` predicted and actual vectors of each sample.
        surprise: ``[N]`` per-sample surprise (e.g. mean NLL in nats).
        surprise_band: ``(s_lo, s_hi)``, the band counted as "surprise ok".
        layers_used: ``[N]`` mean layers used per token of each sample.
        num_layers: ``L``.
        hidden: ``[N, D]`` final hidden state of each sample; goal: ``[N, D]`` or ``[D]``.
        tokens: the ``N`` generated sequences (lists or an int tensor ``[N, T]``).
        context_tokens: optional ``N`` prompts, for novelty against the context.
        mask: optional ``[N, T]`` valid positions of ``predictions``.
        pad_id: trailing padding id stripped from ``tokens`` and ``context_tokens``.
        novelty_n, repetition_n: n-gram orders (2 and 3).
        weights: component weights.

    Returns:
        ``(reward [N], components)``; components holds each term ``[N]`` before weighting.
    """
    check_tensor("predictions", predictions, ndim=3, floating=True, finite=True)
    n = predictions.shape[0]
    dev = predictions.device
    check_tensor("actuals", actuals, shape=tuple(predictions.shape), floating=True, finite=True)
    check_tensor("surprise", surprise, shape=(n,), floating=True, finite=True, device=dev)
    check_tensor("layers_used", layers_used, shape=(n,), floating=True, finite=True, device=dev)
    check_tensor("hidden", hidden, ndim=2, floating=True, finite=True, device=dev)
    check_tensor("goal", goal, ndim=(1, 2), floating=True, finite=True, device=dev)
    if hidden.shape[0] != n or goal.shape[-1] != hidden.shape[1]:
        raise ValueError(
            f"hidden must be [N, D] with N = {n} and goal [N, D] or [D]; "
            f"got hidden {tuple(hidden.shape)}, goal {tuple(goal.shape)}"
        )
    lo, hi = (float(x) for x in surprise_band)
    if not lo <= hi:
        raise ValueError(f"surprise_band must be (low, high) with low ≤ high, got {surprise_band}")
    if int(num_layers) < 1:
        raise ValueError(f"num_layers must be ≥ 1, got {num_layers}")
    if bool(((layers_used < 0) | (layers_used > num_layers)).any()):
        raise ValueError(f"layers_used must lie in [0, num_layers = {num_layers}]")
    m = check_mask("mask", mask, tuple(predictions.shape[:2]), dev)
    toks = as_token_lists(tokens, pad_id=pad_id)
    if len(toks) != n:
        raise ValueError(f"tokens must hold N = {n} sequences, got {len(toks)}")
    ctx = None
    if context_tokens is not None:
        ctx = as_token_lists(context_tokens, pad_id=pad_id)
        if len(ctx) != n:
            raise ValueError(f"context_tokens must hold N = {n} sequences, got {len(ctx)}")
    with torch.no_grad():
        cos = F.cosine_similarity(predictions, actuals, dim=-1, eps=1e-8).double()  # [N, T]
        w = torch.ones_like(cos) if m is None else m.double()
        components = {
            "prediction": (cos * w).sum(1) / w.sum(1).clamp_min(1.0),
            "surprise": ((surprise >= lo) & (surprise <= hi)).double(),
            "efficiency": 1.0 - layers_used.double() / int(num_layers),
            "coherence": F.cosine_similarity(
                hidden, goal.expand_as(hidden), dim=-1, eps=1e-8
            ).double(),
            "novelty": torch.tensor(
                _novelty(toks, ctx, novelty_n), dtype=torch.float64, device=dev
            ),
            "repetition": ngram_repeat_rates(toks, repetition_n).to(dev),
        }
        reward = (
            weights.prediction * components["prediction"]
            + weights.surprise * components["surprise"]
            + weights.efficiency * components["efficiency"]
            + weights.coherence * components["coherence"]
            + weights.novelty * components["novelty"]
            - weights.repetition * components["repetition"]
        )
    return reward, components


class BaselineState(NamedTuple):
    """Running reward baseline: ``value`` (0-dim float64) and ``steps`` (0-dim int64)."""

    value: torch.Tensor
    steps: torch.Tensor


def init_baseline() -> BaselineState:
    return BaselineState(torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.int64))


def update_baseline(
    state: BaselineState, rewards: torch.Tensor, *, decay: float = 0.9
) -> BaselineState:
    """``b ← γ b + (1 − γ) mean(r)``; the first update sets ``b = mean(r)``."""
    check_tensor("rewards", rewards, floating=True, finite=True)
    g = check_in_range("decay", decay, 0.0, 1.0)
    r = rewards.detach().double().mean().cpu()
    value = r if int(state.steps) == 0 else g * state.value + (1 - g) * r
    return BaselineState(value, state.steps + 1)


def reinforce_loss(
    log_probs: torch.Tensor,
    rewards: torch.Tensor,
    *,
    baseline: torch.Tensor | float | Literal["leave_one_out", "mean"] | None = "leave_one_out",
    mask: torch.Tensor | None = None,
    normalize_by_length: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REINFORCE with a baseline: ``L = −mean_i (r_i − b_i) · Σ_t m_{i,t} log π(a_{i,t})``.

    Args:
        log_probs: ``[N, T]`` log-probabilities of the sampled tokens (differentiable).
        rewards: ``[N]`` (no gradient flows through them).
        baseline: ``"leave_one_out"`` (default, ``b_i = mean_{j≠i} r_j``: unbiased and
            independent of sample i), ``"mean"`` (``b = mean_j r_j``, slightly biased),
            a number or ``[N]`` tensor (e.g. :func:`update_baseline`'s value), or ``None``.
        mask: optional ``[N, T]`` valid generated positions.
        normalize_by_length: divide each sample's log-probability sum by its length.

    Returns:
        ``(loss, report)``, report: ``reinforce/reward`` (mean), ``reinforce/advantage_std``.
    """
    check_tensor("log_probs", log_probs, ndim=2, floating=True, finite=True)
    n = log_probs.shape[0]
    check_tensor(
        "rewards", rewards, shape=(n,), floating=True, finite=True, device=log_probs.device
    )
    m = check_mask("mask", mask, tuple(log_probs.shape), log_probs.device)
    r = rewards.detach().to(log_probs.dtype)
    if baseline is None:
        b = torch.zeros_like(r)
    elif isinstance(baseline, str):
        if baseline == "leave_one_out":
            if n < 2:
                raise ValueError("baseline='leave_one_out' needs at least 2 samples")
            b = (r.sum() - r) / (n - 1)
        elif baseline == "mean":
            b = r.mean().expand(n)
        else:
            raise ValueError(
                f"baseline must be 'leave_one_out', 'mean', a number, a tensor or None, got {baseline!r}"
            )
    elif isinstance(baseline, torch.Tensor):
        check_tensor("baseline", baseline, ndim=(0, 1), floating=True, finite=True)
        if baseline.ndim == 1 and baseline.shape[0] != n:
            raise ValueError(f"baseline must be a scalar or [N = {n}], got {tuple(baseline.shape)}")
        b = baseline.detach().to(device=r.device, dtype=r.dtype).expand(n)
    else:
        b = torch.full_like(r, float(baseline))
    w = torch.ones_like(log_probs) if m is None else m.to(log_probs.dtype)
    seq_lp = (log_probs * w).sum(1)
    if normalize_by_length:
        seq_lp = seq_lp / w.sum(1).clamp_min(1.0)
    adv = r - b
    loss = -(adv * seq_lp).mean()
    report = {
        "reinforce/reward": r.mean().detach(),
        "reinforce/advantage_std": adv.std(unbiased=False).detach(),
    }
    return loss, report


def sequence_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log π(a_t)``: log-softmax of ``logits`` ``[N, T, V]`` at ``tokens`` ``[N, T]`` → ``[N, T]``."""
    check_tensor("logits", logits, ndim=3, floating=True)
    check_tensor("tokens", tokens, shape=tuple(logits.shape[:2]), dtype=(torch.int64,))
    return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
