"""Analytic tests, validation and step/scan contracts of every neuron model."""

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from neuro_core.testing import ContractSpec, check_contract, contract_cases
from neuro_spiking import (
    GIF,
    IF,
    LIF,
    AdaptiveLIF,
    AdaptiveLIFParams,
    GIFParams,
    IFParams,
    Izhikevich,
    IzhikevichParams,
    LIFParams,
    adaptive_lif_init,
    adaptive_lif_scan,
    adaptive_lif_step,
    gif_init,
    gif_scan,
    gif_step,
    izhikevich_init,
    izhikevich_scan,
    izhikevich_step,
    lif_init,
    lif_scan,
    lif_step,
    lif_trace,
)


def spike_steps(s: torch.Tensor) -> list[int]:
    return s.flatten().nonzero().flatten().tolist()


@pytest.mark.parametrize(
    ("ri", "tau", "dt"), [(1.5, 20.0, 0.1), (1.2, 10.0, 0.25), (3.0, 5.0, 1.0)]
)
def test_lif_constant_current_spikes_at_closed_form_period(
    ri: float, tau: float, dt: float
) -> None:
    """Exact discretisation + hard reset: spikes every ceil(τ/dt · ln(RI / (RI − θ))) steps."""
    period_ms = tau * math.log(ri / (ri - 1.0))
    steps_exact = period_ms / dt
    assert abs(steps_exact - round(steps_exact)) > 0.01  # not on a grid boundary
    n = math.ceil(steps_exact)
    p = LIFParams(tau_mem_ms=tau, dt_ms=dt, integrator="exponential", reset="hard")
    x = torch.full((4 * n, 1, 1), (1 - p.beta) * ri, dtype=torch.float64)
    s, _ = lif_scan(x, None, p)
    assert spike_steps(s) == [n - 1, 2 * n - 1, 3 * n - 1, 4 * n - 1]


def test_if_subtract_reset_counts_floor_of_charge() -> None:
    """IF with subtractive reset conserves charge: after k steps of x, floor(k·x/θ) spikes."""
    x = torch.full((40, 1, 1), 0.375)
    s, _ = lif_scan(x, None, IFParams())
    counts = s.flatten().cumsum(0)
    expected = torch.floor(torch.arange(1, 41) * 0.375)
    torch.testing.assert_close(counts, expected)


@pytest.mark.parametrize(
    "run",
    [
        lambda x: lif_scan(x, None, LIFParams())[0],
        lambda x: lif_scan(x, None, IFParams())[0],
        lambda x: lif_scan(x, None, LIFParams(refractory_ms=2.0))[0],
        lambda x: adaptive_lif_scan(x, None, AdaptiveLIFParams())[0],
        lambda x: gif_scan(x, None, GIFParams())[0],
        lambda x: izhikevich_scan(x, None, IzhikevichParams())[0],
    ],
    ids=["lif", "if", "lif-refractory", "alif", "gif", "izhikevich"],
)
def test_zero_input_gives_no_spikes(run: Callable[[torch.Tensor], torch.Tensor]) -> None:
    assert run(torch.zeros(200, 2, 5)).sum() == 0


@pytest.mark.parametrize("refractory_steps", [1, 3, 6])
def test_refractory_period_respected(refractory_steps: int) -> None:
    p = LIFParams(dt_ms=0.5, refractory_ms=0.5 * refractory_steps, reset="hard")
    s, _ = lif_scan(torch.full((30, 1, 1), 5.0), None, p)
    # input is strong enough to fire every step, so the refractory period alone sets the ISI
    assert spike_steps(s) == list(range(0, 30, refractory_steps + 1))


def test_refractory_clamps_membrane_to_reset() -> None:
    p = LIFParams(refractory_ms=3.0, reset="hard", v_reset=-0.2)
    x = torch.tensor([1.5, 0.7, 0.7, 0.7, 0.1]).reshape(5, 1, 1)
    _, m, _ = lif_trace(x, None, p)
    torch.testing.assert_close(m.flatten()[:4], torch.full((4,), -0.2))
    torch.testing.assert_close(m.flatten()[4], torch.tensor(p.beta * -0.2 + 0.1))


def test_adaptive_threshold_slows_firing() -> None:
    p = AdaptiveLIFParams(refractory_ms=0.0)
    s, state = adaptive_lif_scan(torch.full((400, 1, 1), 0.2), None, p)
    isi = torch.diff(torch.tensor(spike_steps(s)))
    assert len(isi) > 5
    assert bool((isi[1:] >= isi[:-1]).all())
    assert isi[-1] > isi[0]
    # a = Σ Δθ·ρ^(T−1−t_k) over the spike times t_k
    rho = 1 - p.dt_ms / p.tau_adapt_ms
    expected = sum(0.1 * rho ** (399 - t) for t in spike_steps(s))
    assert float(state.a) == pytest.approx(expected, rel=1e-5)


def test_gif_multibit_step_by_hand() -> None:
    p = GIFParams(levels=4)
    st = gif_init(torch.zeros(1), p)
    s, st = gif_step(torch.tensor([2.5]), st, p)
    assert s.item() == 2.0
    assert st.v.item() == pytest.approx(0.5)
    assert st.theta.item() == pytest.approx(1.0 + 0.01 * 2)
    # saturates at L levels; membrane is clamped to ±2·L·θ before the spike
    s, st = gif_step(torch.tensor([100.0]), st, p)
    assert s.item() == 4.0
    assert st.v.item() == pytest.approx(2 * 4 * 1.02 - 4 * 1.02, rel=1e-6)


def test_izhikevich_regular_spiking_adapts() -> None:
    s, _ = izhikevich_scan(torch.full((2000, 1, 1), 10.0), None, IzhikevichParams())
    isi = torch.diff(torch.tensor(spike_steps(s)))
    assert len(isi) >= 4
    assert isi[-1] > isi[0]  # spike-frequency adaptation of the RS cell


@pytest.mark.parametrize(
    ("factory", "arg"),
    [
        (lambda: LIFParams(tau_mem_ms=0.0), "tau_mem_ms"),
        (lambda: LIFParams(tau_mem_ms=-5.0), "tau_mem_ms"),
        (lambda: LIFParams(tau_mem_ms=0.5, dt_ms=1.0), "dt_ms"),
        (lambda: LIFParams(v_threshold=0.0, v_reset=0.0), "v_threshold"),
        (lambda: LIFParams(refractory_ms=0.3), "refractory_ms"),
        (lambda: LIFParams(reset="zero"), "reset"),  # type: ignore[arg-type]
        (lambda: AdaptiveLIFParams(tau_adapt_ms=0.5), "dt_ms"),
        (lambda: AdaptiveLIFParams(v_threshold=-0.2), "v_threshold"),
        (lambda: GIFParams(levels=0), "levels"),
        (lambda: GIFParams(tau_mem_ms=-1.0), "tau_mem_ms"),
        (lambda: IzhikevichParams(dt_ms=100.0), "dt_ms"),
        (lambda: IFParams(dt_ms=0.0), "dt_ms"),
    ],
)
def test_bad_params_raise_naming_the_argument(factory: Callable[[], Any], arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        factory()


def test_inputs_not_time_major_are_rejected() -> None:
    for scan, p in [
        (lif_scan, LIFParams()),
        (adaptive_lif_scan, AdaptiveLIFParams()),
        (gif_scan, GIFParams()),
        (izhikevich_scan, IzhikevichParams()),
    ]:
        with pytest.raises(ValueError, match="x must be shaped"):
            scan(torch.zeros(5), None, p)  # type: ignore[operator]
        with pytest.raises(ValueError, match="x must be floating"):
            scan(torch.zeros(5, 2, dtype=torch.long), None, p)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"state\.v"):
        lif_scan(torch.zeros(5, 2, 3), lif_init(torch.zeros(2, 4), LIFParams()), LIFParams())


MODELS = {
    "lif": (LIFParams(tau_mem_ms=5.0), lif_init, lif_step, lif_scan),
    "lif-hard-refractory": (
        LIFParams(reset="hard", refractory_ms=2.0, v_reset=-0.1),
        lif_init,
        lif_step,
        lif_scan,
    ),
    "if": (IFParams(), lif_init, lif_step, lif_scan),
    "alif": (AdaptiveLIFParams(), adaptive_lif_init, adaptive_lif_step, adaptive_lif_scan),
    "alif-no-refractory": (
        AdaptiveLIFParams(refractory_ms=0.0, reset="subtract"),
        adaptive_lif_init,
        adaptive_lif_step,
        adaptive_lif_scan,
    ),
    "gif": (GIFParams(levels=4), gif_init, gif_step, gif_scan),
    "izhikevich": (IzhikevichParams(), izhikevich_init, izhikevich_step, izhikevich_scan),
}
SCALE = {"izhikevich": 12.0, "gif": 2.0}


@pytest.mark.parametrize("name", list(MODELS))
def test_scan_equals_repeated_step_and_state_carries_over(name: str) -> None:
    params, init, step, scan = MODELS[name]
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(23, 3, 6, generator=g, dtype=torch.float64) * 0.9) * SCALE.get(name, 1.0)
    s_scan, st_scan = scan(x, None, params)
    st = init(x[0], params)
    outs = []
    for t in range(x.shape[0]):
        s, st = step(x[t], st, params)
        outs.append(s)
    assert s_scan.sum() > 0
    torch.testing.assert_close(s_scan, torch.stack(outs))
    for a, b in zip(st_scan, st):
        torch.testing.assert_close(a, b)
    s1, mid = scan(x[:9], None, params)
    s2, end = scan(x[9:], mid, params)
    torch.testing.assert_close(torch.cat([s1, s2]), s_scan)
    for a, b in zip(end, st_scan):
        torch.testing.assert_close(a, b)


def _time_major(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x.transpose(0, 1))[0].transpose(0, 1)


def _spec(name: str, build: Callable[[], torch.nn.Module], scale: float = 1.0) -> ContractSpec:
    return ContractSpec(
        name=f"neuro_spiking.{name}",
        build=build,
        make_input=lambda g, b, t: torch.rand(b, t, 5, generator=g) * scale,
        forward=_time_major,
    )


SPECS = [
    _spec("LIF", lambda: LIF(LIFParams(tau_mem_ms=4.0), n_neurons=5, learn_tau=True)),
    _spec("IF", lambda: IF()),
    _spec("AdaptiveLIF", lambda: AdaptiveLIF()),
    _spec("GIF", lambda: GIF(GIFParams(levels=4)), 3.0),
    _spec("Izhikevich", lambda: Izhikevich(), 20.0),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)
