"""Event-driven pair STDP: lazy traces, weights touched only on pre/post spikes (as Brian2).

The dense rule (:func:`~neuro_plasticity.stdp.pair_stdp`, spec in :mod:`.reference`) decays
every trace and computes a change for every synapse at every step. Here nothing happens at a
step without spikes, and a step with spikes touches only the synapses of the neurons that
spiked:

* **Traces in scaled form.** With ``a = dt/τ``, the all-to-all pre trace of neuron j just before
  step t is ``x_j(t⁻) = Σ_{s < t} exp(−(t − s)·a) = X_j · exp(−(t − t₀)·a)`` with
  ``X_j = Σ_s exp((s − t₀)·a)`` over j's spikes ``s``: a spike adds ``exp((t − t₀)·a)`` to
  ``X_j`` (nearest pairing sets it) and reading a trace is one multiplication. ``t₀`` (the
  state's ``origin``) moves forward, rescaling ``X``, when ``(t − t₀)·a`` exceeds
  ``REBASE_EXPONENT``, so nothing overflows; this costs ``n`` once per ~``REBASE_EXPONENT·τ/dt``
  steps. Traces are float64.
* **Weights.** At a step with post spikes P and pre spikes Q, the synapses of the rows of P
  (postsynaptic, contiguous in CSR) get ``Δw = η A₊ f₊(w) x_j(t⁻)`` and those of the columns of
  Q (through a CSC permutation) ``Δw = −η A₋ f₋(w) y_i(t⁻)``; a synapse in both gets the sum,
  computed from the same weight, exactly as the dense rule's single change per step. The
  sparse-safe transforms of the chain (``scale``, ``modulate``, ``clip``) are then applied to
  the touched synapses only, with their own ``update_fn``.

Work per step: O(|P| + |Q| + synapses of P and Q), independent of the number of synapses and
neurons that stay silent. The result equals the dense rule up to float rounding of the traces
(the dense rule multiplies by ``exp(−dt/τ)`` every step; the event rule evaluates the
exponential once).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from neuro_core.validation import check_tensor
from neuro_plasticity.rule import ClipParams, ModulateParams, Modulator, ScaleParams, Transform
from neuro_plasticity.stdp import PairSTDPParams
from neuro_plasticity.topology import CSR

#: Rescale the traces when the exponent (t − t₀)·dt/τ exceeds this (exp(100) ≈ 2.7e43, far from
#: float64 overflow even summed over many spikes).
REBASE_EXPONENT = 100.0


class EventSTDPState(NamedTuple):
    """``x_pre [n_pre]`` and ``y_post [n_post]``: traces in scaled form (float64, see the module
    docstring); ``origin [1]`` int64: the step t₀ they refer to. Updated in place."""

    x_pre: torch.Tensor
    y_post: torch.Tensor
    origin: torch.Tensor


class _NativePlan(NamedTuple):
    """``Δw ← factor · (modulator if modulated) · Δw``, then ``clip``: the common chains
    (``scale``/``modulate`` followed by at most one ``clip``), evaluated in numpy."""

    factor: float
    modulated: bool
    clip: ClipParams | None


def _native_plan(transforms: tuple[Transform, ...]) -> _NativePlan | None:
    factor, modulated, bound = 1.0, False, None
    for i, tr in enumerate(transforms):
        if isinstance(tr.params, ClipParams) and i == len(transforms) - 1:
            bound = tr.params
        elif isinstance(tr.params, ScaleParams):
            factor *= tr.params.factor
        elif isinstance(tr.params, ModulateParams):
            modulated = True
        else:
            return None
    return _NativePlan(factor, modulated, bound)


def _ranges(ptr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(ptr[i], ptr[i + 1])`` for ``i`` in ``idx``, without a loop."""
    starts = ptr[idx]
    counts = ptr[idx + 1] - starts
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return np.arange(total) + np.repeat(starts - (ends - counts), counts)


class EventPairSTDP:
    """Pair STDP plus sparse-safe transforms on a CSR topology, event-driven.

    Built by :func:`~neuro_plasticity.ops.event_stdp.event_driven`; implements the event protocol
    ``init(weight, batch=1) -> state`` and ``on_spikes(step, pre, post, state, weight,
    modulator) -> (index, value, state)`` (set ``weight[index] = value``), the
    ``EventPlasticityHook`` of ``neuro_spiking.network``.
    """

    def __init__(
        self, params: PairSTDPParams, transforms: tuple[Transform, ...], topology: CSR
    ) -> None:
        self.params = params
        self.transforms = transforms
        self.topology = topology
        self.a_pre = params.dt_ms / params.tau_plus_ms
        self.a_post = params.dt_ms / params.tau_minus_ms
        self.c_plus = params.lr * params.a_plus
        self.c_minus = params.lr * params.a_minus
        self.crow = topology.crow_indices.numpy()
        self.col = topology.col_indices.numpy()
        self.rows = topology.row_indices.numpy()  # type: ignore[attr-defined]
        order = np.argsort(self.col, kind="stable")
        counts = np.bincount(self.col, minlength=topology.n_pre)
        self.csc_order = order
        # rows in CSC order: the column side then reads it contiguously (no cache misses)
        self.csc_rows = self.rows[order]
        self.csc_ptr = np.concatenate([[0], np.cumsum(counts)])
        # scratch marks, all False between calls
        self._mark_pre = np.zeros(topology.n_pre, dtype=bool)
        self._mark_post = np.zeros(topology.n_post, dtype=bool)
        self._bounds = [t.params for t in transforms if isinstance(t.params, ClipParams)]
        self._native = _native_plan(transforms)

    def init(self, weight: torch.Tensor, batch: int = 1) -> EventSTDPState:
        """Traces at zero. ``weight [nnz]`` must lie inside every clip bound of the chain (the
        dense rule would move an out-of-bound weight at its first step, spike or not)."""
        if int(batch) != 1:
            raise ValueError(f"batch must be 1 for event-driven STDP, got {batch}")
        self.topology.check_weight(weight)
        for b in self._bounds:
            if b.w_min is not None and bool((weight < b.w_min).any()):
                raise ValueError(f"weight must be ≥ w_min={b.w_min} of the chain's clip")
            if b.w_max is not None and bool((weight > b.w_max).any()):
                raise ValueError(f"weight must be ≤ w_max={b.w_max} of the chain's clip")
        z = torch.zeros
        return EventSTDPState(
            z(self.topology.n_pre, dtype=torch.float64),
            z(self.topology.n_post, dtype=torch.float64),
            z(1, dtype=torch.int64),
        )

    def on_spikes(
        self,
        step: int,
        pre: torch.Tensor,
        post: torch.Tensor,
        state: EventSTDPState,
        weight: torch.Tensor,
        modulator: Modulator = None,
    ) -> tuple[torch.Tensor, torch.Tensor, EventSTDPState]:
        """Apply the spikes of ``step``: ``pre [p]`` / ``post [q]`` distinct int64 indices.

        Returns ``(index, value, state)``: the touched synapses and their new weights (``weight``
        is not modified; ``state`` is updated in place and returned). Steps must not go back.
        """
        check_tensor("pre", pre, ndim=1, dtype=torch.int64)
        check_tensor("post", post, ndim=1, dtype=torch.int64)
        q_idx, p_idx = pre.numpy(), post.numpy()
        for name, idx, n in (
            ("pre", q_idx, self.topology.n_pre),
            ("post", p_idx, self.topology.n_post),
        ):
            if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise ValueError(
                    f"{name} indices must lie in [0, {n}), got {idx.min()}..{idx.max()}"
                )
        big_x, big_y, origin = state.x_pre.numpy(), state.y_post.numpy(), state.origin.numpy()
        t, t0 = int(step), int(origin[0])
        if t < t0:
            raise ValueError(f"step must be ≥ the state's origin {t0} (steps only move forward)")
        if (t - t0) * max(self.a_pre, self.a_post) > REBASE_EXPONENT:
            big_x *= math.exp(-(t - t0) * self.a_pre)
            big_y *= math.exp(-(t - t0) * self.a_post)
            origin[0] = t0 = t
        d_pre = math.exp(-(t - t0) * self.a_pre)
        d_post = math.exp(-(t - t0) * self.a_post)
        p = self.params
        soft = p.bound == "soft"
        w = weight.detach().numpy()
        index, old, delta = [], [], []
        if p_idx.size:
            ids = _ranges(self.crow, p_idx)
            cols = self.col[ids]
            w_r = w[ids]
            x = big_x[cols] * d_pre
            d_r = self.c_plus * (p.w_max - w_r) * x if soft else x * self.c_plus
            if q_idx.size:
                self._mark_pre[q_idx] = True
                both = self._mark_pre[cols]
                self._mark_pre[q_idx] = False
                if both.any():
                    y = big_y[self.rows[ids[both]]] * d_post
                    ltd = self.c_minus * (w_r[both] - p.w_min) * y if soft else y * self.c_minus
                    d_r[both] -= ltd
            index.append(ids)
            old.append(w_r)
            delta.append(d_r)
        if q_idx.size:
            r = _ranges(self.csc_ptr, q_idx)
            ids, rows = self.csc_order[r], self.csc_rows[r]
            if p_idx.size:
                # synapses whose post neuron also spiked were handled with the rows above
                self._mark_post[p_idx] = True
                keep = ~self._mark_post[rows]
                self._mark_post[p_idx] = False
                ids, rows = ids[keep], rows[keep]
            w_c = w[ids]
            y = big_y[rows] * d_post
            d_c = -(self.c_minus * (w_c - p.w_min) * y) if soft else -(y * self.c_minus)
            index.append(ids)
            old.append(w_c)
            delta.append(d_c)
        # traces after the weight change (a pre and a post spike in one step do not pair)
        if q_idx.size:
            e = math.exp((t - t0) * self.a_pre)
            if p.pairing == "all_to_all":
                big_x[q_idx] += e
            else:
                big_x[q_idx] = e
        if p_idx.size:
            e = math.exp((t - t0) * self.a_post)
            if p.pairing == "all_to_all":
                big_y[p_idx] += e
            else:
                big_y[p_idx] = e
        if not index:
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, weight.new_zeros(0), state
        cat = np.concatenate if len(index) > 1 else (lambda xs: xs[0])
        w_old, dw = cat(old), cat(delta)
        plan = self._native
        if plan is None:
            w_t, dw_t = torch.from_numpy(w_old), torch.from_numpy(dw)
            for tr in self.transforms:
                dw_t, _ = tr.update_fn(self.topology, dw_t, (), w_t, modulator)
            return torch.from_numpy(cat(index)), (w_t + dw_t).to(weight.dtype), state
        factor = plan.factor
        if plan.modulated:
            if modulator is None:
                raise ValueError(
                    "modulate: modulator is required (a scalar neuromodulatory signal)"
                )
            factor *= float(modulator)
        if factor != 1.0:
            dw *= factor
        b = plan.clip
        if b is not None and b.max_delta is not None:
            np.clip(dw, -b.max_delta, b.max_delta, out=dw)
        value = w_old + dw
        if b is not None and (b.w_min is not None or b.w_max is not None):
            np.clip(value, b.w_min, b.w_max, out=value)
        value = value.astype(w.dtype, copy=False)
        return torch.from_numpy(cat(index)), torch.from_numpy(value), state


__all__ = ["REBASE_EXPONENT", "EventPairSTDP", "EventSTDPState"]
