import math
from pathlib import Path

import pytest
import torch

from neuro_core.testing import ContractSpec, check_contract, contract_cases
from neuro_spiking.encoding import (
    CalibratedReadout,
    delta_encode,
    first_spike_time,
    latency_encode,
    poisson_encode,
    rate_encode,
    spike_count,
    token_encode,
)
from neuro_spiking.layers import HybridFFN, SpikingFFN, ffn_parameter_count
from neuro_spiking.monitor import ActivityMonitor


def test_rate_encode_mean_matches_probability() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.0, 0.1, 0.5, 1.0]])
    s = rate_encode(p, 20000, generator=g)
    assert s.shape == (20000, 1, 4)
    torch.testing.assert_close(s.mean(0), p, atol=0.01, rtol=0)
    assert s[:, 0, 0].sum() == 0
    assert s[:, 0, 3].sum() == 20000


def test_poisson_encode_rate_in_hz() -> None:
    g = torch.Generator().manual_seed(1)
    s = poisson_encode(torch.tensor([[40.0]]), 50000, dt_ms=1.0, generator=g)
    # P(spike per 1 ms step) = 1 − exp(−0.04)
    assert s.mean().item() == pytest.approx(1 - math.exp(-0.04), abs=0.003)


def test_latency_encode_stronger_fires_earlier() -> None:
    s = latency_encode(torch.tensor([[1.0, 0.5, 0.0, 0.25]]), 9)
    assert first_spike_time(s).tolist() == [[0, 4, 9, 6]]
    assert spike_count(s).tolist() == [[1.0, 1.0, 0.0, 1.0]]


def test_delta_encode_on_and_off() -> None:
    x = torch.tensor([0.0, 0.5, 0.55, 0.1, 0.2]).reshape(5, 1, 1)
    assert delta_encode(x, threshold=0.3).flatten().tolist() == [0, 1, 0, 0, 0]
    assert delta_encode(x, threshold=0.3, off_spikes=True).flatten().tolist() == [0, 1, 0, -1, 0]


def test_token_encode_drives_the_token_population_in_its_window() -> None:
    ids = torch.tensor([[2, 0], [1, 1]])
    s = token_encode(ids, 3, window_steps=2, gap_steps=1, neurons_per_token=2)
    assert s.shape == (6, 2, 6)
    # batch 0: token 2 (neurons 4, 5) for steps 0-1, silent step 2, token 0 (neurons 0, 1) at 3-4
    assert s[:, 0].nonzero().tolist() == [
        [0, 4],
        [0, 5],
        [1, 4],
        [1, 5],
        [3, 0],
        [3, 1],
        [4, 0],
        [4, 1],
    ]
    assert s[2].sum() == 0
    assert s[5].sum() == 0
    with pytest.raises(ValueError, match="ids"):
        token_encode(torch.tensor([[3]]), 3, window_steps=2)


def test_encoder_validation() -> None:
    with pytest.raises(ValueError, match="p must"):
        rate_encode(torch.tensor([1.5]), 3)
    with pytest.raises(ValueError, match="steps"):
        rate_encode(torch.tensor([0.5]), 0)
    with pytest.raises(ValueError, match="rates_hz"):
        poisson_encode(torch.tensor([-1.0]), 3, dt_ms=1.0)
    with pytest.raises(ValueError, match="threshold"):
        delta_encode(torch.zeros(3, 1), threshold=0.0)


def test_calibrated_readout_fits_temperature_and_laplace() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (400,), generator=g)
    # counts that point at the target with noise: the optimal τ is finite and improves NLL
    counts = torch.poisson(torch.full((400, 5), 2.0), generator=g)
    counts[torch.arange(400), targets] += 3
    ro = CalibratedReadout(temperature=0.1)
    before = torch.nn.functional.nll_loss(ro.log_probs(counts), targets).item()
    after = ro.fit(counts, targets)
    assert after < before
    assert after < math.log(5)
    lap = CalibratedReadout(method="laplace", alpha=1.0)
    torch.testing.assert_close(
        lap(torch.tensor([[0.0, 2.0, 1.0]])), torch.tensor([[1 / 6, 3 / 6, 2 / 6]])
    )


@pytest.mark.parametrize("neuron", ["lif", "gif"])
def test_spiking_ffn_shapes_params_and_gradients(neuron: str) -> None:
    torch.manual_seed(0)
    ffn = SpikingFFN(8, 16, steps=4, neuron=neuron)  # type: ignore[arg-type]
    assert sum(p.numel() for p in ffn.parameters()) == ffn_parameter_count(8, 16)
    x = torch.randn(2, 5, 8) * 3
    y = ffn(x)
    assert y.shape == x.shape
    s = ffn.spikes(x)
    assert s.shape == (4, 2, 5, 16)
    assert s.sum() > 0
    # output is the signed readout of the mean spike counts
    torch.testing.assert_close(y, ffn.fc_out(s.mean(0)))
    y.pow(2).sum().backward()
    assert ffn.fc_in.weight.grad is not None
    assert ffn.fc_in.weight.grad.abs().sum() > 0


def test_hybrid_ffn_is_gate_weighted_mix() -> None:
    torch.manual_seed(0)
    h = HybridFFN(8, 12, steps=3)
    assert sum(p.numel() for p in h.parameters()) == ffn_parameter_count(8, 12, hybrid=True)
    x = torch.randn(3, 8)
    g = torch.sigmoid(torch.tensor(0.5))
    torch.testing.assert_close(h(x), (1 - g) * h.mlp(x) + g * h.snn(x))


def test_monitor_rates_and_stats() -> None:
    mon = ActivityMonitor(dt_ms=0.5)
    s = torch.zeros(400, 3)  # 200 ms
    s[::10, 0] = 1  # every 5 ms → 200 Hz
    s[::40, 1] = 1  # 50 Hz
    mon.record("exc", s[:100])
    mon.record("exc", s[100:])
    rates = mon.firing_rates_hz("exc")
    torch.testing.assert_close(rates, torch.tensor([200.0, 50.0, 0.0]))
    st = mon.stats()["exc"]
    assert st.mean_rate_hz == pytest.approx(250 / 3)
    assert st.fraction_active == pytest.approx(2 / 3)
    assert st.total_spikes == 50
    pop = mon.population_rate_hz("exc", bin_ms=50.0)
    # neuron 1 fires at steps 0, 40, 80 | 120, 160 | 200, 240, 280 | 320, 360 → 3, 2, 3, 2 per bin
    expected = torch.tensor([200 + 60, 200 + 40, 200 + 60, 200 + 40]) / 3
    torch.testing.assert_close(pop, expected)
    with pytest.raises(ValueError, match="spikes"):
        mon.record("exc", torch.zeros(5, 4))
    with pytest.raises(ValueError, match="bin_ms"):
        mon.population_rate_hz("exc", bin_ms=0.7)


def test_monitor_plots_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    mon = ActivityMonitor(dt_ms=1.0)
    mon.record("a", (torch.rand(100, 2, 20) < 0.1).float())
    mon.record("b", (torch.rand(100, 2, 5) < 0.3).float())
    for p in (mon.plot_raster(tmp_path / "r.png"), mon.plot_rates(tmp_path / "q.png", bin_ms=10.0)):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="path"):
        mon.plot_raster(tmp_path / "r.jpg")


FFN_SPECS = [
    ContractSpec(
        name="neuro_spiking.SpikingFFN",
        build=lambda: SpikingFFN(6, 10, steps=3),
        make_input=lambda g, b, t: torch.randn(b, t, 6, generator=g) * 2,
    ),
    ContractSpec(
        name="neuro_spiking.SpikingFFN-gif",
        build=lambda: SpikingFFN(6, 10, steps=3, neuron="gif"),
        make_input=lambda g, b, t: torch.randn(b, t, 6, generator=g) * 2,
    ),
    ContractSpec(
        name="neuro_spiking.HybridFFN",
        build=lambda: HybridFFN(6, 10, steps=3),
        make_input=lambda g, b, t: torch.randn(b, t, 6, generator=g) * 2,
    ),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(FFN_SPECS))
def test_ffn_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)
