"""Spiking feed-forward layers: drop-in replacements for a transformer MLP.

:class:`SpikingFFN` (after Aura's ``snn_ffn.py``, reference-systems.md §3.2): the input
``x [B, L, d]`` is presented for ``steps`` internal time steps, then

    s = neuron(W₁·x + b₁)  over t = 1..steps        (LIF spikes, or multi-bit GIF counts)
    y = W₂·mean_t(s) + b₂

Parameters: ``2·d·F + F + d`` — the same as a two-layer MLP with hidden width F. What we
changed from Aura and why: Aura adds an extra ``F×F`` Linear inside each GIF neuron and a
second spiking stage (``+F² + d²``, +9.4M at F = 3072), and its output is a non-negative
spike count, so the residual update can never be negative; we read the spikes out through a
signed Linear instead, keeping the parameter count equal to the MLP it replaces. Because the
input is constant over the window, ``W₂·mean_t(s) = mean_t(W₂·s)``; we average first (T× fewer
FLOPs in the readout).

:class:`HybridFFN`: ``y = (1 − σ(g))·MLP(x) + σ(g)·SpikingFFN(x)`` with a learnable scalar
``g`` initialised to 0.5 (Aura). Parameters: ``2·(2·d·F + F + d) + 1``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from neuro_spiking.gif import GIFParams, gif_scan
from neuro_spiking.lif import LIFParams, lif_scan


class SpikingFFN(nn.Module):
    """Spiking MLP over ``steps`` internal steps.

    Args:
        d_model: input/output width d.
        d_hidden: spiking hidden width F.
        steps: internal time steps per token; 4 (Aura).
        neuron: ``"lif"`` (binary spikes, fused op) or ``"gif"`` (multi-bit, Aura).
        lif: LIF parameters; default τ = 2 ms at dt = 1 ms (a fast neuron for a 4-step window).
        gif: GIF parameters; default ``levels = 8`` (Aura's SNN FFN).
        backend: for the LIF op.

    ``forward(x [..., d]) -> [..., d]``.
    """

    def __init__(
        self,
        d_model: int,
        d_hidden: int,
        *,
        steps: int = 4,
        neuron: Literal["lif", "gif"] = "lif",
        lif: LIFParams | None = None,
        gif: GIFParams | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if d_model < 1 or d_hidden < 1:
            raise ValueError(f"d_model and d_hidden must be ≥ 1, got {d_model}, {d_hidden}")
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        if neuron not in ("lif", "gif"):
            raise ValueError(f"neuron must be 'lif' or 'gif', got {neuron!r}")
        if neuron == "lif" and gif is not None:
            raise ValueError("gif params given but neuron='lif'")
        if neuron == "gif" and lif is not None:
            raise ValueError("lif params given but neuron='gif'")
        self.steps = steps
        self.neuron = neuron
        self.lif = lif if lif is not None else LIFParams(tau_mem_ms=2.0)
        self.gif = gif if gif is not None else GIFParams(levels=8)
        self.backend = backend
        self.fc_in = nn.Linear(d_model, d_hidden)
        self.fc_out = nn.Linear(d_hidden, d_model)

    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden spikes ``[steps, ..., F]`` for input ``x [..., d]``."""
        current = self.fc_in(x)
        flat = current.reshape(1, -1, current.shape[-1]).expand(self.steps, -1, -1)
        if self.neuron == "lif":
            s, _ = lif_scan(flat, None, self.lif, backend=self.backend)
        else:
            s, _ = gif_scan(flat, None, self.gif, backend=self.backend)
        return s.reshape(self.steps, *current.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.spikes(x).mean(0))


class HybridFFN(nn.Module):
    """Learned mix of a GELU MLP and a :class:`SpikingFFN` of the same widths (Aura).

    ``forward(x [..., d]) -> (1 − σ(g))·MLP(x) + σ(g)·SNN(x)``; ``g`` starts at 0.5.
    Extra keyword arguments go to :class:`SpikingFFN`.
    """

    def __init__(
        self, d_model: int, d_hidden: int, *, gate_init: float = 0.5, **snn: object
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_model)
        )
        self.snn = SpikingFFN(d_model, d_hidden, **snn)  # type: ignore[arg-type]
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate)
        return (1 - g) * self.mlp(x) + g * self.snn(x)


def ffn_parameter_count(d_model: int, d_hidden: int, *, hybrid: bool = False) -> int:
    """Documented parameter counts: ``2dF + F + d`` (SpikingFFN), twice that + 1 (HybridFFN)."""
    single = 2 * d_model * d_hidden + d_hidden + d_model
    return 2 * single + 1 if hybrid else single


__all__ = ["HybridFFN", "SpikingFFN", "ffn_parameter_count"]
