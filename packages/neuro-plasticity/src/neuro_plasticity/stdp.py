"""Spike-timing-dependent plasticity in trace form: pair-based, triplet, and three-factor.

Time is discrete with step ``dt_ms``; ``pre`` and ``post`` are the spikes (0/1) of one step.
Each step (Morrison, Diesmann & Gerstner 2008, "Phenomenological models of synaptic plasticity
based on spike timing", §4):

1. traces decay: x ← x · exp(−dt/τ);
2. the weight change is computed from the decayed traces (so a pre and a post spike in the same
   step do not pair: the lag must be ≥ 1 step);
3. traces are incremented by this step's spikes: ``x ← x + s`` (all-to-all pairing) or
   ``x ← 1 where s else x`` (nearest-neighbour pairing).

A pre spike at step 0 and a post spike at step k > 0 thus give Δw = η A₊ exp(−k·dt/τ₊), and the
reverse order Δw = −η A₋ exp(−k·dt/τ₋): the exponential window of Bi & Poo (1998).

What differs from HebLLM (reference-systems §2.2): there, LTP and LTD both used the product
pre·post, so the sign did not depend on spike order, and the pre trace was never incremented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch

from neuro_core.validation import check_positive
from neuro_plasticity.rule import Modulator, Rule, chain, eligibility, recipe
from neuro_plasticity.topology import Topology

Bound = Literal["additive", "soft"]
Pairing = Literal["all_to_all", "nearest"]


class PairTraces(NamedTuple):
    x_pre: torch.Tensor  # [B, n_pre]
    y_post: torch.Tensor  # [B, n_post]


class TripletTraces(NamedTuple):
    r1: torch.Tensor  # [B, n_pre], τ₊
    r2: torch.Tensor  # [B, n_pre], τ_x
    o1: torch.Tensor  # [B, n_post], τ₋
    o2: torch.Tensor  # [B, n_post], τ_y


@dataclass(frozen=True, kw_only=True)
class PairSTDPParams:
    """The parameters of a :func:`pair_stdp` rule (see there), kept on ``Rule.params``."""

    lr: float
    a_plus: float
    a_minus: float
    tau_plus_ms: float
    tau_minus_ms: float
    dt_ms: float
    bound: Bound
    pairing: Pairing
    w_min: float
    w_max: float


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _bump(trace: torch.Tensor, spikes: torch.Tensor, pairing: str) -> torch.Tensor:
    if pairing == "all_to_all":
        return trace + spikes
    return torch.where(spikes > 0, torch.ones_like(trace), trace)


@recipe
def pair_stdp(
    *,
    lr: float = 1.0,
    a_plus: float = 0.01,
    a_minus: float = 0.0105,
    tau_plus_ms: float = 20.0,
    tau_minus_ms: float = 20.0,
    dt_ms: float = 1.0,
    bound: Bound = "additive",
    pairing: Pairing = "all_to_all",
    w_min: float = 0.0,
    w_max: float = 1.0,
) -> Rule:
    """Pair-based STDP (Bi & Poo 1998; Song, Miller & Abbott 2000) with pre trace x, post trace y.

        Δw_ij = η [A₊ · f₊(w_ij) · x_j · s_i^post − A₋ · f₋(w_ij) · y_i · s_j^pre]

    additive: f₊ = f₋ = 1 (Song et al. 2000); soft (multiplicative, van Rossum et al. 2000;
    Gütig et al. 2003 with μ = 1): f₊ = w_max − w, f₋ = w − w_min, which keeps w in
    [w_min, w_max] as long as η(A₊x + A₋y) ≤ 1 (traces are ≤ 1 with nearest pairing and
    ≤ 1/(1 − exp(−dt/τ)) with all-to-all pairing).

    Defaults: τ± = 20 ms, A₋ slightly above A₊ for stability (reference-systems §2.4; Song et al.
    2000 use A₋/A₊ = 1.05). ``w_min``/``w_max`` are used only by ``bound="soft"``; with additive
    bounds use :func:`~neuro_plasticity.rule.clip`.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    check_positive("a_plus", a_plus, allow_zero=True)
    check_positive("a_minus", a_minus, allow_zero=True)
    dec_p = math.exp(-check_positive("dt_ms", dt_ms) / check_positive("tau_plus_ms", tau_plus_ms))
    dec_m = math.exp(-dt_ms / check_positive("tau_minus_ms", tau_minus_ms))
    _check_choice("bound", bound, ("additive", "soft"))
    _check_choice("pairing", pairing, ("all_to_all", "nearest"))
    if bound == "soft" and not w_min < w_max:
        raise ValueError(f"w_min must be < w_max, got {w_min} and {w_max}")

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> PairTraces:
        z = weight.new_zeros
        return PairTraces(z(batch, topo.n_pre), z(batch, topo.n_post))

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        tr: PairTraces,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, PairTraces]:
        x = tr.x_pre * dec_p
        y = tr.y_post * dec_m
        ltp = topo.outer(post, x)
        ltd = topo.outer(y, pre)
        if bound == "soft":
            dw = (lr * a_plus) * (w_max - w) * ltp - (lr * a_minus) * (w - w_min) * ltd
        else:
            dw = ltp.mul_(lr * a_plus).sub_(ltd, alpha=lr * a_minus)
        return dw, PairTraces(_bump(x, pre, pairing), _bump(y, post, pairing))

    params = PairSTDPParams(
        lr=lr,
        a_plus=a_plus,
        a_minus=a_minus,
        tau_plus_ms=tau_plus_ms,
        tau_minus_ms=tau_minus_ms,
        dt_ms=dt_ms,
        bound=bound,
        pairing=pairing,
        w_min=w_min,
        w_max=w_max,
    )
    return Rule(f"pair_stdp({bound}, {pairing})", init_fn, update_fn, params=params)


@recipe
def triplet_stdp(
    *,
    lr: float = 1.0,
    a2_plus: float = 5e-10,
    a3_plus: float = 6.2e-3,
    a2_minus: float = 7e-3,
    a3_minus: float = 2.3e-4,
    tau_plus_ms: float = 16.8,
    tau_minus_ms: float = 33.7,
    tau_x_ms: float = 101.0,
    tau_y_ms: float = 125.0,
    dt_ms: float = 1.0,
    pairing: Pairing = "all_to_all",
) -> Rule:
    """Triplet STDP (Pfister & Gerstner 2006, "Triplets of spikes in a model of STDP", eq. 3).

        on a post spike:  Δw_ij = +η r1_j (A2₊ + A3₊ o2_i(t−ε))
        on a pre spike:   Δw_ij = −η o1_i (A2₋ + A3₋ r2_j(t−ε))

    with pre traces r1 (τ₊), r2 (τ_x) and post traces o1 (τ₋), o2 (τ_y). "t−ε" means the value
    before this step's increment, which the trace ordering of this module gives for free.
    Defaults: the all-to-all visual-cortex fit of Pfister & Gerstner 2006, Table 4.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    for name, v in (
        ("a2_plus", a2_plus),
        ("a3_plus", a3_plus),
        ("a2_minus", a2_minus),
        ("a3_minus", a3_minus),
    ):
        check_positive(name, v, allow_zero=True)
    dt = check_positive("dt_ms", dt_ms)
    decays = [
        math.exp(-dt / check_positive(n, t))
        for n, t in (
            ("tau_plus_ms", tau_plus_ms),
            ("tau_x_ms", tau_x_ms),
            ("tau_minus_ms", tau_minus_ms),
            ("tau_y_ms", tau_y_ms),
        )
    ]
    _check_choice("pairing", pairing, ("all_to_all", "nearest"))

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> TripletTraces:
        z = weight.new_zeros
        return TripletTraces(
            z(batch, topo.n_pre), z(batch, topo.n_pre), z(batch, topo.n_post), z(batch, topo.n_post)
        )

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        tr: TripletTraces,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, TripletTraces]:
        r1, r2, o1, o2 = (t * d for t, d in zip(tr, decays))
        ltp = topo.outer(post * (a2_plus + a3_plus * o2), r1)
        ltd = topo.outer(o1, pre * (a2_minus + a3_minus * r2))
        new = TripletTraces(
            _bump(r1, pre, pairing),
            _bump(r2, pre, pairing),
            _bump(o1, post, pairing),
            _bump(o2, post, pairing),
        )
        return lr * (ltp - ltd), new

    return Rule(f"triplet_stdp({pairing})", init_fn, update_fn)


@recipe
def three_factor_stdp(
    *, tau_e_ms: float = 1000.0, lr: float = 1.0, dt_ms: float = 1.0, **stdp: Any
) -> Rule:
    """Neuromodulated STDP (Frémaux & Gerstner 2016; Izhikevich 2007).

        e ← e · exp(−dt/τ_e) + STDP_pair(pre, post, w),       Δw = η · M · e

    The pair-STDP term (:func:`pair_stdp`, with its own parameters) is not applied; it only
    charges the eligibility trace e, and the weight moves when the neuromodulator M (reward,
    novelty or surprise; required ``modulator``) is nonzero. τ_e = 1 s is the order of magnitude
    used by Izhikevich 2007 to bridge the delay to a reward.

    Args:
        tau_e_ms: eligibility time constant τ_e.
        lr: η, applied to the eligibility (the pair term runs at ``lr=1``).
        dt_ms: the step, shared by the pair term and the eligibility trace.
        **stdp: the other keyword arguments of :func:`pair_stdp` (``a_plus``, ``a_minus``,
            ``tau_plus_ms``, ``tau_minus_ms``, ``bound``, ``pairing``, ``w_min``, ``w_max``),
            with its defaults.
    """
    if "lr" in stdp or "dt_ms" in stdp:
        raise ValueError("stdp: lr and dt_ms are arguments of three_factor_stdp itself")
    return chain(pair_stdp(dt_ms=dt_ms, **stdp), eligibility(tau_e_ms, dt_ms, lr))


__all__ = [
    "Bound",
    "PairSTDPParams",
    "PairTraces",
    "Pairing",
    "TripletTraces",
    "pair_stdp",
    "three_factor_stdp",
    "triplet_stdp",
]
