"""Our LIF reproduces snnTorch ``Leaky`` and SpikingJelly ``LIFNode`` under matched parameters.

Run by the ``compat_spiking`` nox session, which installs the peers pinned to our torch; the
normal suite skips this module when they are missing.

Matched parameterization (both peers use normalized units, θ = 1, v_reset = 0):

* snnTorch ``Leaky(beta=β, reset_delay=False)`` applies the reset in the same step, which is
  our ``h = β·v + x; s = H(h − θ); v = h − θ·s`` (``reset_mechanism="zero"`` ↔ ``reset="hard"``).
  Its ``reset_delay=True`` default subtracts the reset one step later, a different model. It
  fires on ``h > θ`` where we fire on ``h ≥ θ``; inputs keep ``h`` away from θ (and below 2θ,
  where snnTorch's double-reset guard differs).
* SpikingJelly ``LIFNode(tau=τ, decay_input=False)``: ``H = V − (V − V_reset)/τ + X`` is ours
  with β = 1 − 1/τ (Euler, dt = 1, τ_mem_ms = τ); ``v_reset=None`` is our subtractive reset.
"""

import pytest
import torch

from neuro_spiking import LIFParams, lif_trace

snntorch = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")


def inputs(T: int = 60, B: int = 4, N: int = 50, beta: float = 0.9) -> torch.Tensor:
    """Random inputs with every charged membrane in [0, 2θ) and ≥ 0.01 away from θ."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, B, N, generator=g) * 0.5
    v = torch.zeros(B, N)
    for t in range(T):
        h = beta * v + x[t]
        x[t] = torch.where((h - 1.0).abs() < 0.01, x[t] - 0.03, x[t])
        h = beta * v + x[t]
        v = h - (h >= 1.0).float()
    return x


@pytest.mark.parametrize(("reset", "mechanism"), [("subtract", "subtract"), ("hard", "zero")])
def test_snntorch_leaky_traces_spikes_and_gradients(reset: str, mechanism: str) -> None:
    x = inputs()
    ours_x = x.clone().requires_grad_()
    s, m, _ = lif_trace(ours_x, None, LIFParams(tau_mem_ms=10.0, dt_ms=1.0, reset=reset))  # type: ignore[arg-type]
    peer_x = x.clone().requires_grad_()
    lif = snntorch.Leaky(beta=0.9, threshold=1.0, reset_mechanism=mechanism, reset_delay=False)
    mem = lif.init_leaky()
    spk_p, mem_p = [], []
    for t in range(x.shape[0]):
        sp, mem = lif(peer_x[t], mem)
        spk_p.append(sp)
        mem_p.append(mem)
    assert s.sum() > 100
    assert torch.equal(s, torch.stack(spk_p))
    torch.testing.assert_close(m, torch.stack(mem_p), rtol=0, atol=1e-6)
    up = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (g_ours,) = torch.autograd.grad((s * up).sum(), ours_x)
    (g_peer,) = torch.autograd.grad((torch.stack(spk_p) * up).sum(), peer_x)
    torch.testing.assert_close(g_ours, g_peer, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("reset", "v_reset"), [("subtract", None), ("hard", 0.0)])
def test_spikingjelly_lifnode_traces_spikes_and_gradients(
    reset: str, v_reset: float | None
) -> None:
    x = inputs()
    ours_x = x.clone().requires_grad_()
    s, m, _ = lif_trace(ours_x, None, LIFParams(tau_mem_ms=10.0, dt_ms=1.0, reset=reset))  # type: ignore[arg-type]
    node = sj_neuron.LIFNode(
        tau=10.0,
        decay_input=False,
        v_reset=v_reset,
        step_mode="m",
        store_v_seq=True,
        surrogate_function=sj_surrogate.ATan(alpha=2.0),
    )
    peer_x = x.clone().requires_grad_()
    s_p = node(peer_x)
    assert s.sum() > 100
    assert torch.equal(s, s_p)
    torch.testing.assert_close(m, node.v_seq, rtol=0, atol=1e-6)
    up = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (g_ours,) = torch.autograd.grad((s * up).sum(), ours_x)
    (g_peer,) = torch.autograd.grad((s_p * up).sum(), peer_x)
    torch.testing.assert_close(g_ours, g_peer, rtol=1e-4, atol=1e-5)
