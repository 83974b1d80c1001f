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

import ctypes
import math
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from neuro_core.sparse import csr_from_edges
from neuro_core.sparse import gather_ranges as _ranges
from neuro_core.validation import check_int, check_tensor
from neuro_plasticity.ops.event_stdp import native
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


class BlockUpdate(NamedTuple):
    """Result of :meth:`EventPairSTDP.on_block` (which updates the weights in place).

    ``sent``: for each presynaptic spike of the block, in the order given, the weights of its
    synapses (its column, in ascending synapse index) just before its step: what the spike
    transmits. ``state``: the updated traces.
    """

    sent: np.ndarray
    state: EventSTDPState


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
        self.crow = np.ascontiguousarray(topology.crow_indices.numpy(), dtype=np.int64)
        self.col = np.ascontiguousarray(topology.col_indices.numpy(), dtype=np.int64)
        rows = topology.row_indices  # type: ignore[attr-defined]
        self.rows = rows.numpy()
        # CSC (pre-major) index; rows in CSC order let the column side read contiguously
        csc = csr_from_edges(topology.col_indices, rows, topology.n_pre)
        i64 = lambda t: np.ascontiguousarray(t.numpy(), dtype=np.int64)
        self.csc_ptr = i64(csc.crow_indices)
        self.csc_rows = i64(csc.col_indices)
        self.csc_order = i64(csc.order)
        # scratch marks, all False between calls
        self._mark_pre = np.zeros(topology.n_pre, dtype=bool)
        self._mark_post = np.zeros(topology.n_post, dtype=bool)
        self._bounds = [t.params for t in transforms if isinstance(t.params, ClipParams)]
        self._native = _native_plan(transforms)
        self._static_ptrs = [
            _address(a) for a in (self.crow, self.col, self.csc_ptr, self.csc_order, self.csc_rows)
        ]
        self._mark_ptrs = [_address(self._mark_pre), _address(self._mark_post)]
        self._f64 = np.empty(0)
        self._i64 = np.empty(0, dtype=np.int64)
        self._sent = np.empty(0, dtype=np.float32)
        self._params = (
            {f: ctypes.byref(self._kernel_params(f)) for f in (False, True)}
            if self._native is not None
            else {}
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its definition: the indices, scratch buffers and kernel pointers are
        # derived (and pointers do not survive a process)
        return (EventPairSTDP, (self.params, self.transforms, self.topology))

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

    def on_block(
        self,
        step: int,
        k: int,
        pre_t: torch.Tensor,
        pre: torch.Tensor,
        post_t: torch.Tensor,
        post: torch.Tensor,
        state: EventSTDPState,
        weight: torch.Tensor,
        modulator: np.ndarray | float | None = None,
        *,
        floor: bool = False,
        pruned: torch.Tensor | None = None,
        engine: Literal["auto", "native", "numpy"] = "auto",
    ) -> BlockUpdate:
        """Apply the spikes of the ``k`` steps ``step .. step + k − 1`` in one call, updating
        ``weight`` in place: the weights of one :meth:`on_spikes` call per step with spikes,
        each followed by ``max(w, 0)`` (``floor``) and zeroing ``pruned`` synapses, as a
        simulator does between steps (``neuro_spiking.Network``).

        Args:
            step: absolute step of the block's first step (steps only move forward).
            k: number of steps in the block (≥ 1).
            pre_t, pre: the presynaptic spikes as ``(block step, local neuron)`` int64 pairs in
                time order (``pre_t`` in ``[0, k)``, neurons distinct within a step); ``post_t,
                post`` likewise.
            state: updated in place and returned.
            weight: ``[nnz]`` float32 magnitudes, contiguous; updated in place.
            modulator: the third factor of each step, a ``[k]`` float array or a scalar (None
                without a ``modulate`` transform, which then raises).
            floor: clamp every new weight at 0.
            pruned: ``[nnz]`` bool, synapses held at 0 (None: none).
            engine: ``"native"`` the compiled kernel (:mod:`.native`; raises when it is
                unavailable), ``"numpy"`` one :meth:`on_spikes` call per step, ``"auto"`` the
                kernel when it is available, the chain is ``scale``/``modulate`` then at most
                one ``clip`` and ``k > 1`` (for a one-step block the kernel call's fixed cost
                is not repaid: HebLLM, whose blocks are one step, ran no faster through it).

        Returns:
            :class:`BlockUpdate`.

        The kernel does per step what :meth:`on_spikes` does (the columns of the pre spikes,
        the rows of the post spikes, a synapse in both changed once from one weight, then the
        traces), with the same float operations in the same order: the weights are bitwise
        equal to the numpy engine's, except that the trace origin is rebased at a block start
        rather than at a spike step (a rounding of the traces; at most once per
        ``REBASE_EXPONENT·τ/dt`` steps).
        """
        k = check_int("k", k)
        if engine not in ("auto", "native", "numpy"):
            raise ValueError(f"engine must be 'auto', 'native' or 'numpy', got {engine!r}")
        check_tensor("pre_t", pre_t, ndim=1, dtype=torch.int64)
        check_tensor("pre", pre, shape=tuple(pre_t.shape), dtype=torch.int64)
        check_tensor("post_t", post_t, ndim=1, dtype=torch.int64)
        check_tensor("post", post, shape=tuple(post_t.shape), dtype=torch.int64)
        check_tensor("weight", weight, shape=(self.topology.nnz,), dtype=torch.float32)
        if not weight.is_contiguous():
            raise ValueError("weight must be contiguous (it is updated in place)")
        if pruned is not None:
            check_tensor("pruned", pruned, shape=(self.topology.nnz,), dtype=torch.bool)
        q_t, q, p_t, pp = pre_t.numpy(), pre.numpy(), post_t.numpy(), post.numpy()
        for name, idx, n in (
            ("pre", q, self.topology.n_pre),
            ("post", pp, self.topology.n_post),
            ("pre_t", q_t, k),
            ("post_t", p_t, k),
        ):
            if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise ValueError(f"{name} must lie in [0, {n}), got {idx.min()}..{idx.max()}")
        for name, tt in (("pre_t", q_t), ("post_t", p_t)):
            if tt.size > 1 and bool((tt[1:] < tt[:-1]).any()):
                raise ValueError(f"{name} must be in time order (non-decreasing)")
        t0 = int(state.origin[0])
        if int(step) < t0:
            raise ValueError(f"step must be ≥ the state's origin {t0} (steps only move forward)")
        w = weight.detach().numpy()
        if not q.size and not pp.size:
            return BlockUpdate(w[:0].copy(), state)
        use = engine == "native" or (engine == "auto" and k > 1)
        lib = native.load() if use and self._native is not None else None
        if engine == "native" and lib is None:
            why = "the chain is not scale/modulate + clip" if self._native is None else ""
            raise ValueError(f"engine='native' is unavailable: {why or native.status()}")
        prn = None if pruned is None else pruned.numpy()
        q_ptr = np.searchsorted(q_t, np.arange(k + 1))
        p_ptr = np.searchsorted(p_t, np.arange(k + 1))
        if lib is None:
            return self._block_numpy(
                int(step), k, q_ptr, q, p_ptr, pp, state, w, modulator, floor, prn
            )
        if pruned is not None:
            pruned = pruned.contiguous()
        return self._block_native(
            lib,
            int(step),
            k,
            q_ptr,
            pre.contiguous(),
            p_ptr,
            post.contiguous(),
            state,
            weight,
            modulator,
            floor,
            pruned,
        )

    def _block_native(
        self,
        lib: Any,
        step: int,
        k: int,
        q_ptr: np.ndarray,
        pre: torch.Tensor,
        p_ptr: np.ndarray,
        post: torch.Tensor,
        state: EventSTDPState,
        weight: torch.Tensor,
        modulator: np.ndarray | float | None,
        floor: bool,
        pruned: torch.Tensor | None,
    ) -> BlockUpdate:
        """The kernel on one block. Its per-call cost matters (a call per block of ~15 steps):
        the per-step tables and index pointers live in scratch buffers whose addresses are
        taken once, tensors pass their ``data_ptr``."""
        big_x, big_y, origin = state.x_pre.numpy(), state.y_post.numpy(), state.origin.numpy()
        t0 = int(origin[0])
        if (step + k - 1 - t0) * max(self.a_pre, self.a_post) > REBASE_EXPONENT:
            big_x *= math.exp(-(step - t0) * self.a_pre)
            big_y *= math.exp(-(step - t0) * self.a_post)
            origin[0] = t0 = step
        r0 = step - t0
        q = pre.numpy()
        n_col = int((self.csc_ptr[q + 1] - self.csc_ptr[q]).sum())
        f64, f_at, i64, i_at, sent, s_at = self._scratch(k, n_col)
        # per block step: decay to the step, a spike's increment (math.exp, as on_spikes), factor
        a_pre, a_post = self.a_pre, self.a_post
        f64[0:k] = [math.exp(-(r0 + i) * a_pre) for i in range(k)]
        f64[k : 2 * k] = [math.exp(-(r0 + i) * a_post) for i in range(k)]
        f64[2 * k : 3 * k] = [math.exp((r0 + i) * a_pre) for i in range(k)]
        f64[3 * k : 4 * k] = [math.exp((r0 + i) * a_post) for i in range(k)]
        f64[4 * k : 5 * k] = self._step_factor(modulator, k)
        i64[: k + 1] = q_ptr
        i64[k + 1 : 2 * k + 2] = p_ptr
        lib.stdp_block(
            k,
            i_at,
            pre.data_ptr(),
            i_at + 8 * (k + 1),
            post.data_ptr(),
            *self._static_ptrs,
            state.x_pre.data_ptr(),
            state.y_post.data_ptr(),
            *[f_at + 8 * k * i for i in range(5)],
            self._params[bool(floor)],
            weight.data_ptr(),
            None if pruned is None else pruned.data_ptr(),
            *self._mark_ptrs,
            s_at,
        )
        return BlockUpdate(sent[:n_col].copy(), state)

    def _scratch(
        self, k: int, n_sent: int
    ) -> tuple[np.ndarray, int, np.ndarray, int, np.ndarray, int]:
        """Scratch buffers of the kernel (grown on demand) and their addresses:
        ``float64 [5k]`` per-step tables, ``int64 [2(k + 1)]`` spike pointers, ``float32``
        sent values."""
        if self._f64.size < 5 * k:
            self._f64 = np.empty(5 * k)
            self._i64 = np.empty(2 * (k + 1), dtype=np.int64)
        if self._sent.size < n_sent:
            self._sent = np.empty(max(n_sent, 2 * self._sent.size), dtype=np.float32)
        return (
            self._f64,
            _address(self._f64),
            self._i64,
            _address(self._i64),
            self._sent,
            _address(self._sent),
        )

    def _kernel_params(self, floor: bool) -> Any:
        """The kernel's ``stdp_params`` for this rule."""
        plan = self._native
        assert plan is not None
        p, b = self.params, plan.clip
        return native.StdpParams(
            soft=p.bound == "soft",
            nearest=p.pairing != "all_to_all",
            has_md=b is not None and b.max_delta is not None,
            has_lo=b is not None and b.w_min is not None,
            has_hi=b is not None and b.w_max is not None,
            floor=floor,
            c_plus=self.c_plus,
            c_minus=self.c_minus,
            w_min=p.w_min,
            w_max=p.w_max,
            md=0.0 if b is None or b.max_delta is None else b.max_delta,
            lo=0.0 if b is None or b.w_min is None else b.w_min,
            hi=0.0 if b is None or b.w_max is None else b.w_max,
        )

    def _step_factor(self, modulator: np.ndarray | float | None, k: int) -> np.ndarray | float:
        """The transforms' factor (``scale`` × modulator) of each block step, or one float."""
        plan = self._native
        assert plan is not None
        if not plan.modulated:
            return plan.factor
        if modulator is None:
            raise ValueError("modulate: modulator is required (a scalar neuromodulatory signal)")
        m = np.broadcast_to(np.asarray(modulator, dtype=np.float64), (k,))
        if not np.isfinite(m).all():
            raise ValueError("modulator must be finite at every step of the block")
        return plan.factor * m

    def _block_numpy(
        self,
        step: int,
        k: int,
        q_ptr: np.ndarray,
        q: np.ndarray,
        p_ptr: np.ndarray,
        pp: np.ndarray,
        state: EventSTDPState,
        w: np.ndarray,
        modulator: np.ndarray | float | None,
        floor: bool,
        pruned: np.ndarray | None,
    ) -> BlockUpdate:
        """:meth:`on_block` as one :meth:`on_spikes` call per step with spikes."""
        mods = None if modulator is None else np.broadcast_to(np.asarray(modulator, float), (k,))
        sent = []
        weight = torch.from_numpy(w)
        for t in range(k):
            qs, ps = q[q_ptr[t] : q_ptr[t + 1]], pp[p_ptr[t] : p_ptr[t + 1]]
            if not qs.size and not ps.size:
                continue
            if qs.size:
                sent.append(w[self.csc_order[_ranges(self.csc_ptr, qs)]])
            index, value, state = self.on_spikes(
                step + t,
                torch.from_numpy(qs),
                torch.from_numpy(ps),
                state,
                weight,
                None if mods is None else float(mods[t]),
            )
            idx, val = index.numpy(), value.numpy()
            if floor:
                val = np.maximum(val, 0.0)
            if pruned is not None:
                val = np.where(pruned[idx], 0.0, val)
            w[idx] = val
        return BlockUpdate(np.concatenate(sent) if sent else w[:0].copy(), state)


def _address(a: np.ndarray) -> int:
    """The data pointer of a C-contiguous array (for the kernel; ``a.ctypes.data`` costs
    microseconds)."""
    if not a.flags.c_contiguous:
        raise ValueError("kernel arrays must be C-contiguous")
    return int(a.__array_interface__["data"][0])


__all__ = ["REBASE_EXPONENT", "BlockUpdate", "EventPairSTDP", "EventSTDPState"]
