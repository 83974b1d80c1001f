"""Student-t quantiles against printed tables and closed forms, paired statistics against a manual
computation, and the verdict rule against an independent statement of it."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from neuro_models.experiment.stats import (
    Paired,
    paired,
    seeds_needed,
    t_cdf,
    t_quantile,
    verdict,
)

SETTINGS = settings(max_examples=40, deadline=None)

# Student-t upper quantiles as printed in textbook tables (e.g. Montgomery & Runger, Table V).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 10: 2.228, 30: 2.042}
T_80 = {1: 1.376, 2: 1.061, 3: 0.978, 4: 0.941, 5: 0.920, 10: 0.879, 30: 0.854}
T_95 = {1: 6.314, 2: 2.920, 5: 2.015, 10: 1.812, 30: 1.697}
Z_975, Z_80 = 1.959964, 0.841621


# --------------------------------------------------------------------------- t distribution


@pytest.mark.parametrize(("p", "table"), [(0.975, T_975), (0.8, T_80), (0.95, T_95)])
def test_t_quantile_matches_printed_tables(p: float, table: dict[int, float]) -> None:
    for df, t in table.items():
        assert round(t_quantile(p, df), 3) == t, f"df {df}"
        assert t_cdf(t, df) == pytest.approx(p, abs=2e-4), f"df {df}"


def _cdf_closed_form(t: float, df: int) -> float:
    """Closed forms of Student's t CDF for df 1 (Cauchy), 2 and 3."""
    if df == 1:
        return 0.5 + math.atan(t) / math.pi
    if df == 2:
        return 0.5 + t / (2.0 * math.sqrt(2.0 + t * t))
    th = math.atan(t / math.sqrt(3.0))
    return 0.5 + (th + math.sin(th) * math.cos(th)) / math.pi


@SETTINGS
@given(t=st.floats(-50.0, 50.0), df=st.sampled_from([1, 2, 3]))
def test_t_cdf_matches_closed_forms(t: float, df: int) -> None:
    assert t_cdf(t, df) == pytest.approx(_cdf_closed_form(t, df), abs=1e-12)


@SETTINGS
@given(p=st.floats(0.001, 0.999), df=st.sampled_from([1, 2, 3]))
def test_t_quantile_inverts_closed_forms(p: float, df: int) -> None:
    q = t_quantile(p, df)
    assert _cdf_closed_form(q, df) == pytest.approx(p, abs=1e-9)


@SETTINGS
@given(t=st.floats(0.0, 30.0), df=st.floats(0.5, 500.0))
def test_t_cdf_is_symmetric(t: float, df: float) -> None:
    assert t_cdf(t, df) + t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(p=st.floats(0.001, 0.999), df=st.floats(0.5, 500.0))
def test_t_quantile_is_odd_around_one_half(p: float, df: float) -> None:
    assert t_quantile(p, df) == pytest.approx(-t_quantile(1.0 - p, df), abs=1e-9)


@SETTINGS
@given(a=st.floats(-20.0, 20.0), b=st.floats(-20.0, 20.0), df=st.floats(0.5, 200.0))
def test_t_cdf_is_monotone_in_t(a: float, b: float, df: float) -> None:
    lo, hi = sorted((a, b))
    assert t_cdf(lo, df) <= t_cdf(hi, df) + 1e-15


def test_t_quantile_monotone_in_p_and_heavier_tails_at_small_df() -> None:
    ps = [0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999]
    for df in (1, 2, 5, 30):
        qs = [t_quantile(p, df) for p in ps]
        assert qs == sorted(qs)
        assert len(set(qs)) == len(qs)
    # Fewer degrees of freedom, heavier tails: the upper quantile falls as df grows.
    dfs = [1, 2, 3, 5, 10, 30, 100, 1000]
    qs = [t_quantile(0.975, df) for df in dfs]
    assert all(x > y for x, y in itertools.pairwise(qs))


@pytest.mark.parametrize("df", [1e4, 1e5, 1e6])
def test_t_quantile_tends_to_the_normal_quantile(df: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(Z_975, abs=3e-4 * 1e4 / df + 1e-6)
    assert t_quantile(0.8, df) == pytest.approx(Z_80, abs=3e-4 * 1e4 / df + 1e-6)


def test_t_median_is_zero() -> None:
    assert t_cdf(0.0, 3) == 0.5
    assert abs(t_quantile(0.5, 7)) < 1e-10


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_t_quantile_rejects_p_outside_open_unit_interval(p: float) -> None:
    with pytest.raises(ValueError, match="p must be in"):
        t_quantile(p, 3)


@pytest.mark.parametrize("df", [0, -1])
def test_t_rejects_non_positive_df(df: float) -> None:
    with pytest.raises(ValueError, match="df must be > 0"):
        t_cdf(1.0, df)
    with pytest.raises(ValueError, match="df must be > 0"):
        t_quantile(0.9, df)


# --------------------------------------------------------------------------- paired


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 11, 31])
def test_paired_matches_manual_computation_with_table_t(n: int) -> None:
    ref = [3.0 + 0.37 * ((7 * s) % 5) for s in range(n)]
    arm = [r - 0.1 + 0.05 * ((3 * s) % 4) for s, r in enumerate(ref)]
    d = [a - r for a, r in zip(arm, ref)]
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    t, t_pow = T_975[n - 1], T_80[n - 1]
    got = paired(arm, ref)
    assert got.n == n
    assert got.diffs == pytest.approx(d)
    assert got.mean == pytest.approx(mean, rel=1e-12)
    assert got.sd == pytest.approx(sd, rel=1e-12)
    # Tables have 3 decimals: the CI half-width agrees to half a unit in the third decimal of t.
    assert got.ci_low == pytest.approx(mean - t * se, abs=5e-4 * se + 1e-12)
    assert got.ci_high == pytest.approx(mean + t * se, abs=5e-4 * se + 1e-12)
    assert got.mde == pytest.approx((t + t_pow) * se, abs=1e-3 * se + 1e-12)


def test_pairing_removes_the_variance_the_arms_share() -> None:
    # Seeds differ a lot (±1 nat), the arm is better by ~0.05 on every seed.
    ref = [4.0, 5.0, 3.0, 4.5, 3.5]
    arm = [r - 0.05 + e for r, e in zip(ref, [0.01, -0.01, 0.0, 0.005, -0.005])]
    got = paired(arm, ref)
    t = T_975[4]
    se_paired = statistics.stdev(a - r for a, r in zip(arm, ref)) / math.sqrt(5)
    se_unpaired = math.sqrt(statistics.variance(arm) / 5 + statistics.variance(ref) / 5)
    assert se_unpaired > 50 * se_paired
    assert got.ci_high - got.ci_low == pytest.approx(2 * t * se_paired, rel=1e-3)
    # Paired, the CI excludes 0; an unpaired interval of the same mean would not.
    assert got.ci_high < 0
    assert got.mean + t * se_unpaired > 0


def test_paired_order_matters_only_through_pairs() -> None:
    arm, ref = [1.0, 2.0, 4.0], [0.5, 2.5, 3.0]
    a = paired(arm, ref)
    b = paired(arm[::-1], ref[::-1])
    assert (a.mean, a.sd, a.ci_low, a.ci_high, a.mde) == pytest.approx(
        (b.mean, b.sd, b.ci_low, b.ci_high, b.mde)
    )
    # Shuffling one side only breaks the pairs and changes the answer.
    c = paired(arm, [ref[1], ref[2], ref[0]])
    assert c.sd != pytest.approx(a.sd)


def test_paired_alpha_and_power_change_the_quantiles() -> None:
    arm, ref = [1.0, 1.3, 0.8, 1.1, 0.9, 1.2], [0.0] * 6
    d = paired(arm, ref, alpha=0.10, power=0.8)
    se = statistics.stdev(arm) / math.sqrt(6)
    # alpha 0.10 → two-sided uses t_0.95 (table: df 5 → 2.015).
    assert (d.ci_high - d.mean) / se == pytest.approx(T_95[5], abs=5e-4)
    assert d.mde / se == pytest.approx(T_95[5] + T_80[5], abs=1e-3)


@pytest.mark.parametrize(
    ("arm", "ref", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "must pair up"),
        ([1.0], [2.0], "at least 2 seeds"),
        ([], [], "at least 2 seeds"),
        ([1.0, float("nan"), 2.0], [1.0, 1.0, 1.0], "must be finite"),
        ([1.0, 2.0], [float("inf"), 1.0], "must be finite"),
    ],
)
def test_paired_errors(arm: list[float], ref: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired(arm, ref)


def _diffs_with_sd(n: int, sd: float) -> list[float]:
    """``n`` values with sample sd (ddof 1) exactly ``sd`` and mean 0."""
    m = (n - 1) / 2
    s = math.sqrt(sum((i - m) ** 2 for i in range(n)) / (n - 1))
    return [(i - m) / s * sd for i in range(n)]


def test_mde_shrinks_like_one_over_root_n() -> None:
    mdes = {n: paired(_diffs_with_sd(n, 1.0), [0.0] * n).mde for n in (3, 5, 10, 50, 100, 400)}
    scaled = [mdes[n] * math.sqrt(n) for n in sorted(mdes)]
    # mde·√n = (t_0.975 + t_0.8)·sd: falls with n (lighter t tails), towards the normal 2.8016.
    assert all(x > y for x, y in itertools.pairwise(scaled))
    assert scaled[-1] == pytest.approx(Z_975 + Z_80, rel=5e-3)
    assert mdes[400] / mdes[100] == pytest.approx(0.5, rel=0.01)
    assert mdes[3] * math.sqrt(3) == pytest.approx(T_975[2] + T_80[2], abs=1e-3)


@SETTINGS
@given(sd=st.floats(0.01, 1.0), ratio=st.floats(0.25, 3.0))
def test_seeds_needed_is_the_smallest_n_with_mde_at_most_effect(sd: float, ratio: float) -> None:
    effect = ratio * sd
    n = seeds_needed(sd, effect)
    assert 2 <= n < 1000

    def mde(k: int) -> float:
        return paired(_diffs_with_sd(k, sd), [0.0] * k).mde

    assume(abs(mde(n) - effect) > 1e-9 * effect)
    assert mde(n) <= effect
    if n > 2:
        assert mde(n - 1) > effect


def test_seeds_needed_edges() -> None:
    assert seeds_needed(0.0, 0.1) == 2
    # Unreachable within the limit: the limit comes back.
    assert seeds_needed(1.0, 1e-3, limit=20) == 20
    for effect in (0.0, -1.0):
        with pytest.raises(ValueError, match="effect must be > 0"):
            seeds_needed(1.0, effect)


# --------------------------------------------------------------------------- verdict


def _stats(ci_low: float, ci_high: float, n: int = 5) -> Paired:
    mid = 0.5 * (ci_low + ci_high)
    return Paired(n=n, mean=mid, sd=1.0, ci_low=ci_low, ci_high=ci_high, mde=0.1, diffs=())


def expected_outcome(ci_low: float, ci_high: float, claimed: float, soi: float, direction: str):
    """The rule as CLAIM.md readers see it, on the improvement interval."""
    lo, hi = (-ci_high, -ci_low) if direction == "lower" else (ci_low, ci_high)
    if lo > 0:
        return "confirmed"
    if hi < claimed or hi < soi:
        return "refuted"
    return "inconclusive"


effects = st.floats(0.01, 1.0)
bounds = st.floats(-2.0, 2.0)


@settings(max_examples=200, deadline=None)
@given(
    a=bounds, b=bounds, claimed=effects, soi=effects, direction=st.sampled_from(["lower", "higher"])
)
def test_verdict_follows_the_rule(a, b, claimed, soi, direction) -> None:
    lo, hi = sorted((a, b))
    v = verdict(_stats(lo, hi), claimed=claimed, smallest_of_interest=soi, direction=direction)
    assert v.outcome == expected_outcome(lo, hi, claimed, soi, direction)
    assert v.as_dict() == {"outcome": v.outcome, "reason": v.reason}


@settings(max_examples=100, deadline=None)
@given(a=bounds, b=bounds, claimed=effects, soi=effects)
def test_verdict_direction_flip_is_a_sign_flip(a, b, claimed, soi) -> None:
    lo, hi = sorted((a, b))
    low = verdict(_stats(lo, hi), claimed=claimed, smallest_of_interest=soi, direction="lower")
    high = verdict(_stats(-hi, -lo), claimed=claimed, smallest_of_interest=soi, direction="higher")
    assert low == high


@settings(max_examples=50, deadline=None)
@given(a=bounds, b=bounds, claimed=effects, soi=effects, reason=st.text(min_size=1, max_size=20))
def test_verdict_not_testable_whenever_a_reason_is_given(a, b, claimed, soi, reason) -> None:
    lo, hi = sorted((a, b))
    for stats in (_stats(lo, hi), None):
        v = verdict(stats, claimed=claimed, smallest_of_interest=soi, not_testable=reason)
        assert (v.outcome, v.reason) == ("not testable", reason)


# Hand-made improvement intervals (direction "higher"), one per branch; claimed 0.2, soi 0.05.
BRANCHES = [
    ((0.1, 0.5), "confirmed", "excludes 0"),
    ((0.01, 0.1), "confirmed", "smaller than the claimed"),
    ((-0.3, 0.04), "refuted", "smallest effect of interest"),
    ((-0.3, 0.15), "refuted", "the claimed 0.2"),
    ((-0.1, 0.3), "inconclusive", "contains 0"),
    ((-0.5, -0.1), "refuted", "smallest effect of interest"),
    ((0.0, 0.3), "inconclusive", "contains 0"),
]


@pytest.mark.parametrize(("ci", "outcome", "says"), BRANCHES)
@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_verdict_every_branch_by_hand(ci, outcome, says, direction) -> None:
    lo, hi = ci if direction == "higher" else (-ci[1], -ci[0])
    v = verdict(_stats(lo, hi), claimed=0.2, smallest_of_interest=0.05, direction=direction)
    assert v.outcome == outcome
    assert says in v.reason
    if outcome == "confirmed" and "smaller" not in says:
        assert "smaller" not in v.reason


def test_verdict_on_real_paired_stats() -> None:
    # NLL drops by ~0.1 on every seed: confirmed for "lower", refuted for "higher".
    ref = [3.0, 3.2, 2.9, 3.1]
    arm = [r - 0.1 + e for r, e in zip(ref, [0.01, -0.01, 0.02, -0.02])]
    st_ = paired(arm, ref)
    assert verdict(st_, claimed=0.05, smallest_of_interest=0.02).outcome == "confirmed"
    assert (
        verdict(st_, claimed=0.05, smallest_of_interest=0.02, direction="higher").outcome
        == "refuted"
    )


def test_verdict_errors() -> None:
    s = _stats(-0.1, 0.1)
    with pytest.raises(ValueError, match="direction"):
        verdict(s, claimed=0.1, smallest_of_interest=0.1, direction="down")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        verdict(None, claimed=0.1, smallest_of_interest=0.1, direction="up", not_testable="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stats must be given"):
        verdict(None, claimed=0.1, smallest_of_interest=0.1)
    for claimed, soi in ((0.0, 0.1), (-0.1, 0.1), (0.1, 0.0), (0.1, -1.0)):
        with pytest.raises(ValueError, match="must be > 0"):
            verdict(s, claimed=claimed, smallest_of_interest=soi)
