"""Paired statistics and the one verdict rule every reproduction uses.

Arms are compared *paired by seed*: seed ``s`` fixes the data order (and the initialization seed)
of every arm, so the difference ``d_s = metric(arm) − metric(reference)`` removes the variance
the arms share. With ``n`` seeds::

    mean = (1/n) Σ d_s,   sd = sqrt(Σ (d_s − mean)² / (n − 1)),   se = sd / √n
    95% CI = mean ± t_{0.975, n−1} · se
    MDE = (t_{1−α/2, n−1} + t_{power, n−1}) · sd / √n      (α = 0.05, power = 0.8)

The MDE is the smallest true difference this design detects with the given power (the usual
normal-approximation formula with t quantiles, Cohen 1988); a headline comparison needs
MDE ≤ half the claimed effect (:func:`seeds_needed`).

Student-t quantiles are computed here (no SciPy): the CDF is the regularized incomplete beta
function (continued fraction, Numerical Recipes §6.4) and the quantile is found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Paired",
    "Verdict",
    "paired",
    "seeds_needed",
    "t_cdf",
    "t_quantile",
    "verdict",
]

Direction = Literal["lower", "higher"]
Outcome = Literal["confirmed", "refuted", "inconclusive", "not testable"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    ln += b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    tt = t * t
    # t² ≤ df: x = df / (df + t²) is near 1 and 1 − x cancels; use I_x(a, b) = 1 − I_{1−x}(b, a).
    if tt > df:
        tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + tt))
    else:
        tail = 0.5 - 0.5 * _betainc(0.5, df / 2.0, tt / (df + tt))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_cdf`, absolute error < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Paired:
    """Summary of paired differences ``d_s`` (arm − reference)."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    mde: float
    diffs: tuple[float, ...]

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "diffs": list(self.diffs)}


def paired(
    arm: Sequence[float], reference: Sequence[float], *, alpha: float = 0.05, power: float = 0.8
) -> Paired:
    """Paired differences ``arm[s] − reference[s]`` with a t-based CI and the MDE.

    Args:
        arm, reference: one value per seed, in the same seed order (``n ≥ 2``).
        alpha: two-sided level of the CI (0.05 → 95%).
        power: power of the MDE.
    """
    if len(arm) != len(reference):
        raise ValueError(f"arm and reference must pair up, got {len(arm)} and {len(reference)}")
    n = len(arm)
    if n < 2:
        raise ValueError(f"paired statistics need at least 2 seeds, got {n}")
    d = [float(a) - float(b) for a, b in zip(arm, reference)]
    if not all(math.isfinite(x) for x in d):
        raise ValueError(f"arm and reference must be finite, got differences {d}")
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    t = t_quantile(1.0 - alpha / 2.0, n - 1)
    mde = (t + t_quantile(power, n - 1)) * se
    return Paired(n, mean, sd, mean - t * se, mean + t * se, mde, tuple(d))


def seeds_needed(
    sd: float, effect: float, *, alpha: float = 0.05, power: float = 0.8, limit: int = 1000
) -> int:
    """Smallest ``n ≥ 2`` whose MDE at paired sd ``sd`` is at most ``effect`` (``limit`` if none)."""
    if effect <= 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    for n in range(2, limit):
        q = t_quantile(1.0 - alpha / 2.0, n - 1) + t_quantile(power, n - 1)
        if q * sd / math.sqrt(n) <= effect:
            return n
    return limit


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim and the sentence that explains it."""

    outcome: Outcome
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"outcome": self.outcome, "reason": self.reason}


def verdict(
    stats: Paired | None,
    *,
    claimed: float,
    smallest_of_interest: float,
    direction: Direction = "lower",
    not_testable: str | None = None,
) -> Verdict:
    """The one verdict rule of every reproduction.

    ``stats`` summarizes ``arm − reference``; the claim is that the arm is better by ``claimed``
    (``direction="lower"``: the metric drops, e.g. NLL). With the CI turned into an *improvement*
    interval ``[lo, hi]`` (signs flipped for ``"lower"``):

    - **not testable**: ``not_testable`` gives the reason (e.g. the scale is not informative).
    - **confirmed**: ``lo > 0`` (the CI excludes 0 in the claimed direction); the reason says when
      the effect is also smaller than claimed (``hi < claimed``).
    - **refuted**: ``hi < claimed`` or ``hi < smallest_of_interest``: the CI excludes the claimed
      effect (and any improvement larger than the smallest effect of interest, when that is the
      tighter bound).
    - **inconclusive**: otherwise.

    Args:
        stats: :func:`paired` summary, or ``None`` with ``not_testable``.
        claimed: the claimed improvement (> 0, in the metric's units).
        smallest_of_interest: the smallest improvement that would matter (> 0), from CLAIM.md.
        direction: ``"lower"`` or ``"higher"`` is better.
        not_testable: reason the claim cannot be judged here.
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    if not_testable:
        return Verdict("not testable", not_testable)
    if stats is None:
        raise ValueError("stats must be given unless not_testable is")
    if claimed <= 0 or smallest_of_interest <= 0:
        raise ValueError(
            f"claimed and smallest_of_interest must be > 0, got {claimed} and {smallest_of_interest}"
        )
    sign = -1.0 if direction == "lower" else 1.0
    lo, hi = sorted((sign * stats.ci_low, sign * stats.ci_high))
    ci = f"improvement 95% CI [{lo:+.3f}, {hi:+.3f}] (n = {stats.n})"
    if lo > 0:
        note = f"; smaller than the claimed {claimed:.3g}" if hi < claimed else ""
        return Verdict("confirmed", f"{ci} excludes 0{note}")
    bound = max(claimed, smallest_of_interest) if hi < smallest_of_interest else claimed
    if hi < claimed or hi < smallest_of_interest:
        what = (
            f"the smallest effect of interest {smallest_of_interest:.3g}"
            if hi < smallest_of_interest
            else f"the claimed {bound:.3g}"
        )
        return Verdict("refuted", f"{ci} excludes {what}")
    return Verdict("inconclusive", f"{ci} contains 0 and the claimed {claimed:.3g}")
