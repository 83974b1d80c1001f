"""Supervised-by-teacher local learning of the synapses onto HebLLM's output populations.

In HebLLM's design the *next* token's sensory input arrives after the current token, and its
output population fires. With ``HebLLMConfig(output_learning="teacher")`` that arrival is the
teacher of the output: for the plasticity of the synapses onto the output, the postsynaptic
spikes are *clamped* to the teacher: output group ``x_{t+1}`` (all its ``k`` neurons) spikes
once, at the last step of slot t, ``(t + 1)·S − 1`` (:func:`teacher_raster`), and nothing else
in the output spikes. The plastic synapses onto the output learn from those teacher spikes by
the local rule of :func:`teacher_stdp` (the run's raster, with the output replaced by the
teacher raster, is replayed through it after each sequence). The output neurons themselves run
free, driven by the learned synapses only (the one-to-one teacher projection is silent): their
spikes are the predictions the readout counts.

Without the clamp (``output_learning="free"``) the output neurons fire from their own plastic
input, and pair STDP potentiates every output that fires after the current token's sensory
spikes whether or not it was the next token (a positive feedback loop): at cpu scale every output
group fires on every token and the counts carry no information about the next character (the
HebLLM guide gives the measurement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from neuro_core.sparse import csr_from_edges, gather_ranges
from neuro_core.validation import check_int, check_positive, check_tensor
from neuro_plasticity import Rule
from neuro_plasticity.rule import Modulator, modulator_value, recipe
from neuro_plasticity.topology import CSR, Topology

__all__ = [
    "EventTeacherSTDP",
    "EventTeacherState",
    "TeacherSTDPParams",
    "TeacherTrace",
    "teacher_raster",
    "teacher_stdp",
]


class TeacherTrace(NamedTuple):
    x_pre: torch.Tensor  # [B, n_pre]


@dataclass(frozen=True, kw_only=True)
class TeacherSTDPParams:
    """Parameters of :func:`teacher_stdp` (see there)."""

    lr: float
    a_plus: float
    a_minus: float
    tau_ms: float
    dt_ms: float
    w_max: float


@recipe
def teacher_stdp(
    *,
    lr: float = 1.0,
    a_plus: float = 0.05,
    a_minus: float = 0.005,
    tau_ms: float = 5.0,
    dt_ms: float = 1.0,
    w_max: float = 1.0,
) -> Rule:
    """Three-factor STDP onto a clamped (teacher-driven) population.

    With ``x_j`` the presynaptic trace (``x_j ← e^{−dt/τ} x_j + s_j``, read before this step's
    increment), ``T_i`` the postsynaptic (teacher) spike and ``m`` the neuromodulator:

        Δw_ij = η · m · [A₊ (w_max − w_ij) x_j T_i − A₋ w_ij s_j]

    Potentiation is pre-before-post with a soft upper bound; depression is presynaptically
    gated and multiplicative (every presynaptic spike shrinks all its outgoing weights by the
    fraction η m A₋; it does not depend on the postsynaptic side). For small weights the expected
    change vanishes at

        w_ij / (w_max − w_ij) = (A₊ / A₋) · E[x_j at T_i] / E[s_j],

    i.e. ``w_ij`` grows with how often a spike of j is followed (within ~τ) by the teacher of i,
    *relative to how often j spikes*: for the sensory neuron of token a and the output of token b
    this is ``P(next = b | a)`` times the trace a teacher spike S − 1 steps after the window sees
    (a count-based, Bayes-like estimate; cf. Nessler et al. 2013, where STDP onto a
    winner-take-all population learns log conditional probabilities). The weights stay in
    ``[0, w_max]`` as long as ``η m (A₊ x + A₋) ≤ 1``.
    """
    lr = check_positive("lr", lr, allow_zero=True)
    check_positive("a_plus", a_plus, allow_zero=True)
    check_positive("a_minus", a_minus, allow_zero=True)
    check_positive("w_max", w_max)
    decay = math.exp(-check_positive("dt_ms", dt_ms) / check_positive("tau_ms", tau_ms))
    params = TeacherSTDPParams(
        lr=lr, a_plus=a_plus, a_minus=a_minus, tau_ms=tau_ms, dt_ms=dt_ms, w_max=w_max
    )

    def init_fn(topo: Topology, weight: torch.Tensor, batch: int) -> TeacherTrace:
        return TeacherTrace(weight.new_zeros(batch, topo.n_pre))

    def update_fn(
        topo: Topology,
        pre: torch.Tensor,
        post: torch.Tensor,
        tr: TeacherTrace,
        w: torch.Tensor,
        m: Modulator,
    ) -> tuple[torch.Tensor, TeacherTrace]:
        mod = modulator_value(m, w, rule="teacher_stdp")
        x = tr.x_pre * decay
        ltp = topo.outer(post, x)
        ltd = topo.outer(torch.ones_like(post), pre)
        dw = (lr * a_plus) * (w_max - w) * ltp - (lr * a_minus) * w * ltd
        return dw * mod, TeacherTrace(x + pre)

    return Rule("teacher_stdp", init_fn, update_fn, params=params)


class EventTeacherState(NamedTuple):
    """Lazy presynaptic traces: ``x[j]`` is the trace right after step ``last[j]``."""

    x: np.ndarray  # [n_pre] float64
    last: np.ndarray  # [n_pre] int64


class EventTeacherSTDP:
    """:func:`teacher_stdp` chained with ``clip(0, w_max)`` as an event-driven hook of
    :class:`neuro_spiking.Network` (``on_spikes``): the weights are touched only on the synapses
    of the neurons that spike, and the traces decay lazily (``x_j(t) = x_j(t₀) e^{−(t−t₀)dt/τ}``),
    so the cost is proportional to spikes, not to synapses × steps. Equal to the dense rule
    step by step (tested)."""

    def __init__(self, params: TeacherSTDPParams, topology: CSR) -> None:
        if not isinstance(topology, CSR):
            raise ValueError(f"topology must be a CSR topology, got {type(topology).__name__}")
        self.params = params
        self.decay = math.exp(-params.dt_ms / params.tau_ms)
        crow = topology.crow_indices.numpy()
        col = topology.col_indices.numpy()
        self.n_pre = topology.n_pre
        self.crow = crow
        self.col = col
        # synapse ids grouped by presynaptic neuron (the CSC index of the projection)
        csc = csr_from_edges(topology.col_indices, topology.row_indices, self.n_pre)  # type: ignore[attr-defined]
        self.by_pre = csc.order.numpy()
        self.pre_start = csc.crow_indices.numpy()

    def init(self, weight: torch.Tensor, batch: int = 1) -> EventTeacherState:
        if batch != 1:
            raise ValueError(f"batch must be 1 for the event-driven rule, got {batch}")
        return EventTeacherState(np.zeros(self.n_pre), np.zeros(self.n_pre, dtype=np.int64))

    def on_spikes(
        self,
        step: int,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: EventTeacherState,
        weight: torch.Tensor,
        modulator: float | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, EventTeacherState]:
        p = self.params
        if modulator is None:
            raise ValueError(
                "teacher_stdp: modulator is required (a scalar neuromodulatory signal)"
            )
        m = float(modulator)
        pre_np, post_np = pre.numpy(), post.numpy()
        x, last = state.x, state.last
        ltp_ids = gather_ranges(self.crow, post_np)
        ltd_ids = self.by_pre[gather_ranges(self.pre_start, pre_np)]
        ids = np.union1d(ltp_ids, ltd_ids)
        w = weight.numpy()[ids].astype(np.float64)
        dw = np.zeros_like(w)
        if ltp_ids.size:
            j = self.col[ltp_ids]
            xj = x[j] * self.decay ** (step - last[j]).astype(np.float64)  # before this step's bump
            at = np.searchsorted(ids, ltp_ids)
            dw[at] += (p.lr * p.a_plus) * (p.w_max - w[at]) * xj
        if ltd_ids.size:
            at = np.searchsorted(ids, ltd_ids)
            dw[at] -= (p.lr * p.a_minus) * w[at]
        value = np.clip(w + m * dw, 0.0, p.w_max)
        if pre_np.size:  # bump the traces of this step's presynaptic spikes
            x[pre_np] = x[pre_np] * self.decay ** (step - last[pre_np]).astype(np.float64) + 1.0
            last[pre_np] = step
        return (
            torch.from_numpy(ids),
            torch.from_numpy(value.astype(w.dtype)).to(weight.dtype),
            state,
        )


def teacher_raster(
    tokens: torch.Tensor, vocab_size: int, per_token: int, slot_steps: int
) -> torch.Tensor:
    """``[T·S, V·k]`` bool: the k neurons of output group ``tokens[t + 1]`` spike at step
    ``(t + 1)·S − 1`` (the last step of slot t) for ``t < T − 1``; nothing else."""
    check_tensor("tokens", tokens, ndim=1, dtype=torch.int64)
    check_int("slot_steps", slot_steps)
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"tokens must lie in [0, vocab_size={vocab_size})")
    T = tokens.numel()
    out = torch.zeros(T * slot_steps, vocab_size * per_token, dtype=torch.bool)
    if T > 1:
        steps = torch.arange(1, T) * slot_steps - 1
        cols = tokens[1:, None] * per_token + torch.arange(per_token)[None, :]
        out[steps[:, None].expand_as(cols), cols] = True
    return out
