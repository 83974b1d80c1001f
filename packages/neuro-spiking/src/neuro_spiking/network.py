"""Recurrent spiking network simulator: populations, sparse delayed synapses, plasticity hooks.

Clock-driven LIF dynamics at ``dt_ms`` with event-driven propagation:

* **Populations** (:class:`Population`) of LIF or adaptive-threshold neurons (the model follows
  the parameter type), each excitatory or inhibitory, with delta or exponential current-based
  synapses (``tau_syn_ms``); :class:`SpikeSource` populations spike as told. Dale's law:
  synaptic weights are stored as magnitudes ``w ≥ 0`` and every synapse of an inhibitory
  presynaptic population delivers ``−weight_gain·w`` (HebLLM's inhibitory sign and 1.2 gain,
  reference-systems.md §2.1; HEAD 84fe9b2 lost the sign).
* **Projections** (:class:`Projection`): CSR connectivity with rows = postsynaptic neurons and
  columns = presynaptic neurons (the layout of ``neuro_plasticity.topology.CSR``), one weight
  and one delay per synapse. A presynaptic spike at step t adds ``±w`` to the postsynaptic
  membrane at step ``t + delay/dt`` exactly (delays ≥ dt; HebLLM stored delays but ignored them).
* **Ring buffer**: arrivals are accumulated in ``[L, N]`` slots indexed by arrival step mod L.
* **Blocks**: no spike can arrive earlier than the shortest delay, so the neurons advance
  ``K = min_delay/dt`` steps at a time on inputs already in the buffer, then all spikes of the
  block are propagated at once. Only synapses of neurons that spiked are touched (a pre-major
  index over the CSR); the work per block is proportional to the number of synaptic events.
* **Plasticity hooks**, two protocols declared once in ``neuro_core.protocols`` (this package
  does not import ``neuro_plasticity``, which implements them) and re-exported here:

  - :class:`PlasticityHook` (dense, one call per step): ``hook.init(weight) -> state`` and
    ``hook(pre, post, state, weight, modulator) -> (delta_w, state)`` with ``pre [1, n_pre]``,
    ``post [1, n_post]`` the spikes of one step and ``weight`` the projection's ``[nnz]`` CSR
    magnitudes; the rules of ``neuro_plasticity`` implement it.
  - :class:`EventPlasticityHook` (event-driven, called only at steps where the projection's pre
    or post population spiked): ``hook.on_spikes(step, pre_index, post_index, state, weight,
    modulator) -> (index, value, state)``, meaning ``weight[index] = value``; the cost is
    proportional to the spikes and the synapses they touch
    (``neuro_plasticity.ops.event_stdp.event_driven`` builds one from a dense STDP rule).

  **Plasticity is exact for any block length K**: inside a block the rules are applied step by
  step, each step seeing the weights left by the previous one, and every update is followed by
  ``w ← max(w, 0)`` (Dale's law). A spike emitted at step t carries the weight its synapse has at
  step t, before that step's plasticity update. The result equals a step-by-step (K = 1)
  simulation of the same network (tests replay it for K = 1, 5, 15). An earlier version called
  the rules K times with the block-start weight and summed the changes, so with
  ``clip(w_min=0, w_max=1)`` a synapse driven to 1 could end at 0 and soft bounds overshot.
* **Pure**: :meth:`Network.run` never modifies the state it is given: it copies the ring buffer,
  and the weights and hook states when the network is plastic (a static network never writes its
  weights, which the returned state then shares); running twice from one state gives the same
  result.

LIF update per step and neuron (as :mod:`neuro_spiking.lif`, hard reset, absolute refractory):
``v ← β·v + ((I_syn + (1 − β)·v_rest) + I_ext)`` (the same value as ``v_rest + β·(v − v_rest) +
I``, evaluated in this order in the network's dtype with separate roundings), where ``I_syn`` is
the input arriving at this step (delta synapses) or ``I ← α·I + arrivals`` (exponential
synapses, α = exp(−dt/τ_syn)); spike if ``v ≥ θ + a`` and not refractory (``a ≡ 0`` for LIF,
``a ← ρ·a + Δθ·s`` after the step for adaptive neurons, as :mod:`neuro_spiking.adaptive_lif`);
then ``v ← v_reset`` and the neuron is clamped for ``refractory_ms``. A neuron that is
refractory is held at ``v_reset``.

A **neuromodulator** (:class:`NeuromodulatorHook`) recomputes the third factor of the hooks at
every step from that step's spikes; :meth:`Network.replay` plays a stored raster through the
hooks (the offline replay of ``neuro_spiking.sleep_phase.sleep``), and pruned synapses
(``NetworkState.alive`` False) are held at weight 0.

Speed: each block computes every neuron's free trajectory at once and steps only the few
candidates (see ``_lif_block``); Poisson input draws only its events. On the issue's 10,000-neuron,
~1M-synapse network this runs 1 s of biological time in 0.51× Brian2's wall time (median of 7
one-second spans per side, one thread: ``benchmarks/results/spiking-2026-11-30/network_brian2.txt``,
``benchmarks/RESULTS.md``). With event-driven STDP the hooks take whole blocks (``on_block``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from neuro_core.protocols import EventPlasticityHook, NeuromodulatorHook, PlasticityHook
from neuro_core.sparse import csr_from_edges
from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor
from neuro_spiking._common import decay, steps
from neuro_spiking.adaptive_lif import AdaptiveLIFParams
from neuro_spiking.lif import LIFParams, lif_update


@dataclass(frozen=True, kw_only=True)
class Population:
    """A named group of integrate-and-fire neurons.

    Attributes:
        name: unique name.
        size: number of neurons (≥ 1).
        lif: neuron parameters; ``dt_ms`` must equal the network's and ``reset`` must be
            ``"hard"``. The type picks the neuron model: :class:`~neuro_spiking.lif.LIFParams`
            (fixed threshold θ) or :class:`~neuro_spiking.adaptive_lif.AdaptiveLIFParams`
            (HebLLM's associative neuron: threshold ``θ₀ + a`` with ``a ← ρ·a + Δθ·s``).
        kind: ``"excitatory"`` (outgoing weights +w) or ``"inhibitory"`` (−w).
        tau_syn_ms: synaptic time constant of the synapses *onto* this population. 0 (default):
            delta synapses, an arriving weight is added to the membrane once. > 0: exponential
            current-based synapses, ``I ← α·I + arrivals`` with ``α = exp(−dt/τ_syn)`` and the
            membrane receiving ``I`` every step (a weight w arriving at step t adds ``w·α^n`` at
            step t + n, ``w/(1 − α)`` in total; α = 0 is the delta synapse exactly).
        weight_gain: every outgoing synapse delivers ``sign · weight_gain · w`` (HebLLM's
            inhibitory neurons use 1.2; reference-systems.md §2.1). The plasticity hooks see
            the magnitudes ``w``.
    """

    name: str
    size: int
    lif: LIFParams | AdaptiveLIFParams = field(default_factory=lambda: LIFParams(reset="hard"))
    kind: Literal["excitatory", "inhibitory"] = "excitatory"
    tau_syn_ms: float = 0.0
    weight_gain: float = 1.0

    def __post_init__(self) -> None:
        _check_size_kind(self.size, self.kind, self.weight_gain)
        if not isinstance(self.lif, LIFParams | AdaptiveLIFParams):
            raise ValueError(
                f"lif must be LIFParams or AdaptiveLIFParams, got {type(self.lif).__name__}"
            )
        if self.lif.reset != "hard":
            raise ValueError("lif.reset must be 'hard' in the network simulator")
        check_positive("tau_syn_ms", self.tau_syn_ms, allow_zero=True)

    @property
    def model(self) -> Literal["lif", "adaptive_lif"]:
        """``"adaptive_lif"`` when ``lif`` is :class:`AdaptiveLIFParams`, else ``"lif"``."""
        return "adaptive_lif" if isinstance(self.lif, AdaptiveLIFParams) else "lif"


@dataclass(frozen=True, kw_only=True)
class SpikeSource:
    """A population of external spike sources: its neurons have no membrane and spike exactly
    when told (``Network.run(source_spikes={name: [T, size] bool})``), e.g. the sensory neurons
    driven by tokens. Its spikes propagate through its projections (with their delays) and are
    seen by the plasticity hooks like any other; no projection may target it.

    Attributes:
        name, size, kind, weight_gain: as in :class:`Population`.
    """

    name: str
    size: int
    kind: Literal["excitatory", "inhibitory"] = "excitatory"
    weight_gain: float = 1.0

    def __post_init__(self) -> None:
        _check_size_kind(self.size, self.kind, self.weight_gain)


def _check_size_kind(size: int, kind: str, weight_gain: float) -> None:
    if int(size) != size or size < 1:
        raise ValueError(f"size must be an integer ≥ 1, got {size!r}")
    if kind not in ("excitatory", "inhibitory"):
        raise ValueError(f"kind must be 'excitatory' or 'inhibitory', got {kind!r}")
    check_positive("weight_gain", weight_gain)


AnyPopulation = Population | SpikeSource


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from population ``pre`` to ``post`` in CSR form (rows = post, cols = pre).

    Attributes:
        pre, post: population names.
        crow_indices: ``[n_post + 1]`` int64 row pointers.
        col_indices: ``[nnz]`` int64 presynaptic indices (within ``pre``).
        weight: ``[nnz]`` magnitudes ≥ 0 (the sign comes from the presynaptic population).
        delay_ms: ``[nnz]`` delays in ms, each a multiple of dt and ≥ dt (checked by the
            network).
    """

    pre: str
    post: str
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    weight: torch.Tensor
    delay_ms: torch.Tensor

    def __post_init__(self) -> None:
        check_tensor("crow_indices", self.crow_indices, ndim=1, dtype=torch.int64)
        check_tensor("col_indices", self.col_indices, ndim=1, dtype=torch.int64)
        nnz = self.col_indices.numel()
        check_tensor("weight", self.weight, shape=(nnz,), floating=True, finite=True)
        check_tensor("delay_ms", self.delay_ms, shape=(nnz,), floating=True, finite=True)
        if self.crow_indices.numel() < 1 or int(self.crow_indices[-1]) != nnz:
            raise ValueError("crow_indices must start a CSR whose last entry is nnz")
        if int(self.crow_indices[0]) != 0 or bool((self.crow_indices.diff() < 0).any()):
            raise ValueError("crow_indices must start at 0 and be non-decreasing")
        if nnz and bool((self.weight < 0).any()):
            raise ValueError("weight must be ≥ 0 (magnitudes; Dale's law gives the sign)")

    @classmethod
    def from_edges(
        cls,
        pre: str,
        post: str,
        *,
        n_post: int,
        pre_index: list[int] | torch.Tensor,
        post_index: list[int] | torch.Tensor,
        weight: float | list[float] | torch.Tensor,
        delay_ms: float | list[float] | torch.Tensor,
    ) -> Projection:
        """Build from an edge list ``pre_index[e] → post_index[e]`` (any order; the synapses of
        one postsynaptic neuron keep their edge-list order)."""
        pre_i = torch.as_tensor(pre_index, dtype=torch.int64).flatten()
        post_i = torch.as_tensor(post_index, dtype=torch.int64).flatten()
        if pre_i.shape != post_i.shape:
            raise ValueError("pre_index and post_index must have the same length")
        if post_i.numel() and (int(post_i.min()) < 0 or int(post_i.max()) >= n_post):
            raise ValueError(f"post_index must lie in [0, n_post={n_post})")
        nnz = pre_i.numel()
        w = torch.as_tensor(weight, dtype=torch.float32).expand(nnz).clone()
        d = torch.as_tensor(delay_ms, dtype=torch.float32).expand(nnz).clone()
        crow, col, order = csr_from_edges(post_i, pre_i, n_post)
        return cls(pre, post, crow, col, w[order], d[order])

    @property
    def n_post(self) -> int:
        return self.crow_indices.numel() - 1

    @property
    def nnz(self) -> int:
        return self.col_indices.numel()

    @property
    def row_indices(self) -> torch.Tensor:
        """``[nnz]`` postsynaptic index of every synapse."""
        return torch.repeat_interleave(
            torch.arange(self.n_post, device=self.crow_indices.device), self.crow_indices.diff()
        )


@dataclass(frozen=True, kw_only=True)
class LogNormalWeights:
    """Log-normal synaptic weights: ``w = clip(exp(μ + σ·z), w_min, w_max)``, ``z ~ N(0, 1)``.

    Defaults are HebLLM's initialisation (reference-systems.md §2.1): μ = −1.5, σ = 0.5,
    clipped to [0.01, 1] (median e^−1.5 ≈ 0.22).
    """

    mu: float = -1.5
    sigma: float = 0.5
    w_min: float = 0.01
    w_max: float = 1.0

    def __post_init__(self) -> None:
        check_positive("sigma", self.sigma, allow_zero=True)
        check_positive("w_min", self.w_min, allow_zero=True)
        if not self.w_min < self.w_max:
            raise ValueError(f"w_min must be < w_max, got {self.w_min} and {self.w_max}")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[n]`` float32 weights drawn with ``generator``."""
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        w = (self.mu + self.sigma * z).exp().clamp(self.w_min, self.w_max)
        return w.float()


def random_projection(
    pre: AnyPopulation,
    post: Population,
    *,
    p: float,
    weight: float | LogNormalWeights,
    delay_ms: float | tuple[float, float],
    dt_ms: float,
    seed: int,
    allow_autapses: bool = False,
) -> Projection:
    """Bernoulli(p) connectivity for every (post, pre) pair, seeded.

    Args:
        p: connection probability in [0, 1].
        weight: magnitude of every synapse (≥ 0), or a :class:`LogNormalWeights` to draw them
            (after the connectivity and delays, from the same seeded generator).
        delay_ms: one delay, or ``(low, high)`` for delays uniform on the dt grid in [low, high].
        dt_ms: the network step (delays are rounded to it).
        seed: RNG seed; the same seed gives the same synapses.
        allow_autapses: keep i → i synapses when ``pre is post`` (default False).
    """
    check_in_range("p", p, 0.0, 1.0)
    if not isinstance(weight, LogNormalWeights):
        check_positive("weight", weight, allow_zero=True)
    g = torch.Generator().manual_seed(seed)
    rows, cols = [], []
    chunk = max(1, 2**24 // max(1, pre.size))
    for start in range(0, post.size, chunk):
        n = min(chunk, post.size - start)
        mask = torch.rand(n, pre.size, generator=g) < p
        if pre is post and not allow_autapses:
            idx = torch.arange(n)
            keep = (start + idx) < pre.size
            mask[idx[keep], (start + idx)[keep]] = False
        r, c = mask.nonzero(as_tuple=True)
        rows.append(r + start)
        cols.append(c)
    # rows come out of nonzero() sorted, so the builder keeps this order
    crow, col, _ = csr_from_edges(torch.cat(rows), torch.cat(cols), post.size)
    nnz = col.numel()
    if isinstance(delay_ms, tuple):
        lo, hi = (round(d / dt_ms) for d in delay_ms)
        d = torch.randint(lo, hi + 1, (nnz,), generator=g).double() * dt_ms
    else:
        d = torch.full((nnz,), float(delay_ms), dtype=torch.float64)
    if isinstance(weight, LogNormalWeights):
        w = weight.sample(nnz, g)
    else:
        w = torch.full((nnz,), float(weight))
    return Projection(pre.name, post.name, crow, col, w, d.float())


class NetworkState(NamedTuple):
    """The whole simulation state (carries over exactly between runs).

    Attributes:
        v: ``[N]`` membranes. refractory: ``[N]`` steps left.
        buffer: ``[L, N]`` pending synaptic input by arrival step mod L.
        step: the number of steps simulated.
        weights: the current ``[nnz]`` magnitudes per projection.
        hook_states: per plastic projection (``None`` elsewhere).
        i_syn: ``[N]`` synaptic currents of exponential synapses (0 where ``tau_syn_ms = 0``).
        adaptation: ``[N]`` threshold adaptation ``a`` of adaptive neurons (0 elsewhere).
        spike_count: ``[N]`` int64 spikes emitted since step 0 (a synapse's activations are its
            presynaptic neuron's count: every spike is transmitted by all its synapses).
        alive: ``[nnz]`` bool per projection; False for pruned synapses (weight held at 0).
        modulation_state: the neuromodulator's state (``None`` without one).
    """

    v: torch.Tensor
    refractory: torch.Tensor
    buffer: torch.Tensor
    step: int
    weights: tuple[torch.Tensor, ...]
    hook_states: tuple[Any, ...]
    i_syn: torch.Tensor
    adaptation: torch.Tensor
    spike_count: torch.Tensor
    alive: tuple[torch.Tensor, ...]
    modulation_state: Any


class RunResult(NamedTuple):
    """``spikes``: name → ``[T, n]`` bool; ``n_events``: synaptic events propagated;
    ``v``: name → ``[T, n]`` membrane after each step (after reset; the populations of
    ``record_v``); ``modulation``: ``[T]`` float64, the third factor handed to the plasticity
    hooks at each step (NaN where none)."""

    spikes: dict[str, torch.Tensor]
    n_events: int
    v: dict[str, torch.Tensor]
    modulation: torch.Tensor


Injector = Callable[[int, int], torch.Tensor]


class PoissonInput:
    """External Poisson drive: each neuron of the targets receives ``n_sources`` independent
    Poisson trains at ``rate_hz``, each spike adding ``weight`` to the membrane.

    The number of input spikes of one neuron in one step is Poisson(λ), λ = n_sources·rate·dt
    (the sum of independent Poisson sources). Call ``(start_step, k) -> [k, N]`` with N the
    network size. Three exact samplers, picked by λ:

    * λ ≤ 1 (the usual case, e.g. 100 sources at 10 Hz and dt = 0.1 ms give λ = 0.1): the total
      count of the ``k × M`` cells is drawn once, Poisson(λ·k·M), and each event is placed in a
      uniformly random cell. By the splitting property of the Poisson process the cell counts are
      then independent Poisson(λ); the work is proportional to the number of input *events*
      (about λ per cell) instead of one random number per cell.
    * 1 < λ ≤ 10: one uniform per cell through the inverse CDF (a small table).
    * λ > 10: ``torch.poisson``.
    """

    def __init__(
        self,
        network: Network,
        *,
        rate_hz: float,
        n_sources: int,
        weight: float,
        targets: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("rate_hz", rate_hz, allow_zero=True)
        if n_sources < 0:
            raise ValueError(f"n_sources must be ≥ 0, got {n_sources}")
        self.lam = n_sources * rate_hz * network.dt_ms / 1000.0
        self.weight = float(weight)
        mask = torch.zeros(network.size, dtype=torch.bool)
        for name in targets if targets is not None else list(network.offsets):
            sl = network.slice(name)
            mask[sl] = True
        self.mask = mask
        self.size = network.size
        self.target_index = mask.nonzero().flatten()
        self._all_targets = self.target_index.numel() == network.size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, start: int, k: int) -> torch.Tensor:
        if self.lam > _INVERSE_CDF_MAX_MEAN:
            lam = torch.where(self.mask, self.lam, 0.0).expand(k, -1).contiguous()
            return torch.poisson(lam, generator=self.generator) * self.weight
        if self.lam > _SPLITTING_MAX_MEAN:
            u = torch.rand(k, self.mask.numel(), generator=self.generator)
            return torch.searchsorted(self._cdf, u, right=True).to(u.dtype) * self._scale
        cells = k * self.target_index.numel()
        total = torch.poisson(
            torch.tensor([self.lam * cells], dtype=torch.float64), generator=self.generator
        )
        n = int(total)
        where = torch.randint(max(cells, 1), (n,), generator=self.generator)
        counts = torch.zeros(cells).scatter_add_(0, where, torch.full((n,), self.weight))
        if self._all_targets:
            return counts.view(k, self.size)
        out = torch.zeros(k, self.size)
        out[:, self.target_index] = counts.view(k, -1)
        return out

    @property
    def _scale(self) -> torch.Tensor:
        return self.mask.to(torch.float32) * self.weight

    @property
    def _cdf(self) -> torch.Tensor:
        # P(N ≤ j), j = 0..; the inverse CDF of one uniform is an exact Poisson sample
        if not hasattr(self, "_cdf_table"):
            self._cdf_table = _poisson_cdf(self.lam)
        return self._cdf_table


#: Up to this mean count per step, :class:`PoissonInput` draws the events and scatters them.
_SPLITTING_MAX_MEAN = 1.0
#: Above this mean count per step, :class:`PoissonInput` samples with ``torch.poisson``.
_INVERSE_CDF_MAX_MEAN = 10.0


def _poisson_cdf(lam: float) -> torch.Tensor:
    """``[J]`` float32 table of P(N ≤ j) for N ~ Poisson(lam), up to where it rounds to 1."""
    terms, p, cdf, j = [], math.exp(-lam), 0.0, 0
    while True:
        cdf += p
        terms.append(min(cdf, 1.0))
        j += 1
        p *= lam / j
        if cdf >= 1.0 - 1e-12 or j > 1000:
            break
    table = torch.tensor(terms, dtype=torch.float64)
    # a uniform u < 1 then always lands inside the table
    table[-1] = 1.0
    return table.to(torch.float32)


class Network:
    """A recurrent network of neuron populations connected by sparse delayed projections.

    Args:
        populations: :class:`Population` (LIF or adaptive LIF) and :class:`SpikeSource`
            entries with distinct names; neurons are numbered population by population.
        projections: synapses between them (none may target a :class:`SpikeSource`).
        dt_ms: simulation step; every population's ``lif.dt_ms`` must equal it.
        plasticity: projection index → :class:`PlasticityHook` or :class:`EventPlasticityHook`.
        neuromodulator: a :class:`NeuromodulatorHook` computing the third factor of the
            plasticity hooks from the spikes of every step (then ``run``'s ``modulator`` must
            be None).
        dtype: float dtype of membranes, currents and weights (float32 default; float64 for
            references).
    """

    def __init__(
        self,
        populations: Sequence[AnyPopulation],
        projections: list[Projection],
        *,
        dt_ms: float,
        plasticity: dict[int, PlasticityHook | EventPlasticityHook] | None = None,
        neuromodulator: NeuromodulatorHook | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        check_positive("dt_ms", dt_ms)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dt_ms = dt_ms
        self.dtype = dtype
        self.populations = list(populations)
        self.projections = list(projections)
        self.offsets: dict[str, int] = {}
        n = 0
        for pop in self.populations:
            if not isinstance(pop, Population | SpikeSource):
                raise ValueError(
                    f"populations must be Population or SpikeSource, got {type(pop).__name__}"
                )
            if pop.name in self.offsets:
                raise ValueError(f"populations must have distinct names; {pop.name!r} repeats")
            if isinstance(pop, Population) and abs(pop.lif.dt_ms - dt_ms) > 1e-12:
                raise ValueError(
                    f"population {pop.name!r}: lif.dt_ms={pop.lif.dt_ms} differs from dt_ms={dt_ms}"
                )
            self.offsets[pop.name] = n
            n += pop.size
        self.size = n
        self.pops = {p.name: p for p in self.populations}
        cols: dict[str, list[float]] = {
            k: [] for k in ("beta", "v_rest", "thr", "v_reset", "ref", "alpha", "rho", "inc")
        }
        src: list[bool] = []
        for pop in self.populations:
            if isinstance(pop, SpikeSource):
                # no membrane: never reaches an infinite threshold, spikes only when told
                vals = (0.0, 0.0, math.inf, 0.0, 0.0, 0.0, 0.0, 0.0)
            else:
                lp = pop.lif
                rho, inc = 0.0, 0.0
                if isinstance(lp, AdaptiveLIFParams):
                    rho = decay(lp.tau_adapt_ms, lp.dt_ms, lp.integrator)
                    inc = lp.adapt_increment
                vals = (
                    decay(lp.tau_mem_ms, lp.dt_ms, lp.integrator),
                    lp.v_rest,
                    lp.v_threshold,
                    lp.v_reset,
                    float(steps("refractory_ms", lp.refractory_ms, lp.dt_ms)),
                    math.exp(-dt_ms / pop.tau_syn_ms) if pop.tau_syn_ms > 0 else 0.0,
                    rho,
                    inc,
                )
            for key, val in zip(cols, vals):
                cols[key].extend([val] * pop.size)
            src.extend([isinstance(pop, SpikeSource)] * pop.size)
        f = lambda key: torch.tensor(cols[key], dtype=dtype)
        self.beta, self.v_rest, self.threshold, self.v_reset = (
            f(k) for k in ("beta", "v_rest", "thr", "v_reset")
        )
        self.refractory_steps = f("ref").to(torch.int64)
        self.leak_bias = (1 - self.beta) * self.v_rest
        self.is_source = torch.tensor(src, dtype=torch.bool)
        self._source_names = [p.name for p in self.populations if isinstance(p, SpikeSource)]
        self._alpha = f("alpha")
        self._syn_idx = (self._alpha > 0).nonzero().flatten().numpy()
        self._adaptive = bool(
            any(isinstance(p, Population) and p.model == "adaptive_lif" for p in self.populations)
        )
        self._np_params = _NeuronArrays(
            self.beta.numpy(),
            self.threshold.numpy(),
            self.v_reset.numpy(),
            self.refractory_steps.numpy(),
            f("rho").numpy(),
            f("inc").numpy(),
        )
        self._build_synapses()
        self.plasticity = dict(plasticity or {})
        for idx, hook in self.plasticity.items():
            if not 0 <= idx < len(self.projections):
                raise ValueError(f"plasticity key {idx} is not a projection index")
            if not hasattr(hook, "init") or not (callable(hook) or hasattr(hook, "on_spikes")):
                raise ValueError(
                    f"plasticity[{idx}] must follow the PlasticityHook or EventPlasticityHook "
                    "protocol (init plus __call__ or on_spikes)"
                )
        if neuromodulator is not None and not (
            hasattr(neuromodulator, "init") and hasattr(neuromodulator, "update")
        ):
            raise ValueError("neuromodulator must follow the NeuromodulatorHook protocol")
        self.neuromodulator = neuromodulator

    def slice(self, name: str) -> slice:
        """Global neuron indices of population ``name``."""
        if name not in self.offsets:
            raise ValueError(f"name must be one of {list(self.offsets)}, got {name!r}")
        o = self.offsets[name]
        return slice(o, o + self.pops[name].size)

    def _build_synapses(self) -> None:
        delays, pre_g, post_g, sign, proj_id = [], [], [], [], []
        for k, pr in enumerate(self.projections):
            for side, name in (("pre", pr.pre), ("post", pr.post)):
                if name not in self.offsets:
                    raise ValueError(f"projection {k}: {side} population {name!r} does not exist")
            pre, post = self.pops[pr.pre], self.pops[pr.post]
            if isinstance(post, SpikeSource):
                raise ValueError(
                    f"projection {k}: post population {post.name!r} is a SpikeSource (it has no "
                    "membrane to receive synapses)"
                )
            if pr.n_post != post.size:
                raise ValueError(
                    f"projection {k}: crow_indices must have {post.size} + 1 entries "
                    f"(post population {post.name!r}), got {pr.crow_indices.numel()}"
                )
            if pr.nnz and (int(pr.col_indices.min()) < 0 or int(pr.col_indices.max()) >= pre.size):
                raise ValueError(
                    f"projection {k}: col_indices out of range for pre population "
                    f"{pre.name!r} of size {pre.size}"
                )
            d = pr.delay_ms.double() / self.dt_ms
            d_steps = torch.round(d)
            if pr.nnz and bool((pr.delay_ms < self.dt_ms - 1e-9).any()):
                raise ValueError(
                    f"projection {k}: delay_ms must be ≥ dt_ms={self.dt_ms} (a spike cannot "
                    "arrive within the step that emitted it)"
                )
            if pr.nnz and bool(((d - d_steps).abs() > 1e-6).any()):
                raise ValueError(
                    f"projection {k}: delay_ms must be multiples of dt_ms={self.dt_ms}"
                )
            delays.append(d_steps.long())
            pre_g.append(pr.col_indices + self.offsets[pr.pre])
            post_g.append(pr.row_indices + self.offsets[pr.post])
            gain = (-1.0 if pre.kind == "inhibitory" else 1.0) * pre.weight_gain
            sign.append(torch.full((pr.nnz,), gain, dtype=self.dtype))
            proj_id.append(torch.full((pr.nnz,), k, dtype=torch.long))
        cat = lambda xs, dt: torch.cat(xs) if xs else torch.zeros(0, dtype=dt)
        self.syn_delay = cat(delays, torch.long)
        self.syn_pre = cat(pre_g, torch.long)
        self.syn_post = cat(post_g, torch.long)
        self.syn_sign = cat(sign, self.dtype)
        self.proj_bounds = [0]
        for pr in self.projections:
            self.proj_bounds.append(self.proj_bounds[-1] + pr.nnz)
        # pre-major index: synapse ids sorted by global presynaptic neuron (a CSC)
        self.pre_ptr, self.pm_post, order = csr_from_edges(self.syn_pre, self.syn_post, self.size)
        self.pre_order = order
        self.pm_delay = self.syn_delay[order]
        counts = self.pre_ptr.diff()
        self.min_delay = int(self.syn_delay.min()) if self.syn_delay.numel() else 1
        self.max_delay = int(self.syn_delay.max()) if self.syn_delay.numel() else 1
        # a multiple of the block length, so that a block's slots never wrap around
        self.ring = -(-(self.max_delay + self.min_delay) // self.min_delay) * self.min_delay
        # flat ring-buffer offset of every synapse: delay·N + post (pre-major order)
        self.pm_offset = self.pm_delay * self.size + self.pm_post
        self.pre_start = self.pre_ptr[:-1].clone()
        self.pre_count = counts
        # for plastic runs: the weight of pre-major synapse s is w_flat[pre_order[s]] · pm_sign[s]
        self.pm_sign = self.syn_sign[order]
        # for block hooks, per projection: each pre neuron's synapse count in it, the offset of
        # its synapses in the neuron's pre-major list (projections in index order), and the
        # sign/gain of its weights
        self._pm_count: list[np.ndarray] = []
        self._pm_first: list[np.ndarray] = []
        self._gain: list[float] = []
        before: dict[str, np.ndarray] = {}
        for pr in self.projections:
            n_pre = self.pops[pr.pre].size
            cnt = np.bincount(pr.col_indices.numpy(), minlength=n_pre).astype(np.int64)
            first = before.get(pr.pre, np.zeros(n_pre, dtype=np.int64))
            self._pm_count.append(cnt)
            self._pm_first.append(first)
            before[pr.pre] = first + cnt
            pre_pop = self.pops[pr.pre]
            self._gain.append((-1.0 if pre_pop.kind == "inhibitory" else 1.0) * pre_pop.weight_gain)

    def init_state(self) -> NetworkState:
        """All neurons at rest, nothing in flight, initial weights and hook states, every
        synapse alive, the neuromodulator's initial state."""
        weights = tuple(pr.weight.to(self.dtype, copy=True) for pr in self.projections)
        hooks = tuple(
            self.plasticity[k].init(weights[k], 1) if k in self.plasticity else None
            for k in range(len(self.projections))
        )
        mod = self.neuromodulator.init(self.size) if self.neuromodulator is not None else None
        return NetworkState(
            v=self.v_rest.clone(),
            refractory=torch.zeros(self.size, dtype=torch.int32),
            buffer=torch.zeros(self.ring, self.size, dtype=self.dtype),
            step=0,
            weights=weights,
            hook_states=hooks,
            i_syn=torch.zeros(self.size, dtype=self.dtype),
            adaptation=torch.zeros(self.size, dtype=self.dtype),
            spike_count=torch.zeros(self.size, dtype=torch.int64),
            alive=tuple(torch.ones(pr.nnz, dtype=torch.bool) for pr in self.projections),
            modulation_state=mod,
        )

    def run(
        self,
        n_steps: int,
        state: NetworkState | None = None,
        *,
        inject: Injector | torch.Tensor | None = None,
        record: list[str] | None = None,
        modulator: float | torch.Tensor | None = None,
        source_spikes: Mapping[str, torch.Tensor] | None = None,
        record_v: list[str] | None = None,
        modulator_inputs: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[NetworkState, RunResult]:
        """Simulate ``n_steps`` steps.

        Args:
            n_steps: number of dt steps (≥ 0).
            state: from :meth:`init_state` or a previous run (carries over exactly).
            inject: external input: a ``[n_steps, N]`` tensor of membrane increments, or a
                callable ``(start_step, k) -> [k, N]`` (e.g. :class:`PoissonInput`). Input to a
                :class:`SpikeSource` has no effect (a tensor with any there raises).
            record: population names whose spikes are returned (default all).
            modulator: a constant third factor passed to the plasticity hooks (only without a
                network ``neuromodulator``).
            source_spikes: :class:`SpikeSource` name → ``[n_steps, size]`` bool spikes (missing
                sources stay silent).
            record_v: population names whose membrane is returned after every step (default
                none; not for spike sources).
            modulator_inputs: name → ``[n_steps, ...]`` tensors whose row t the neuromodulator
                receives at step t (see :class:`NeuromodulatorHook`).

        Returns:
            ``(final state, RunResult)``. ``state`` itself is left unchanged.
        """
        n_steps = check_int("n_steps", n_steps, low=0)
        state = state if state is not None else self.init_state()
        if isinstance(inject, torch.Tensor):
            check_tensor("inject", inject, shape=(n_steps, self.size), floating=True, finite=True)
            if bool(self.is_source.any()) and bool(inject[:, self.is_source].any()):
                raise ValueError(
                    "inject must be zero on SpikeSource neurons (they have no membrane)"
                )
        names = record if record is not None else list(self.offsets)
        for name in names:
            self.slice(name)
        v_names = list(record_v or [])
        for name in v_names:
            self.slice(name)
            if isinstance(self.pops[name], SpikeSource):
                raise ValueError(f"record_v: {name!r} is a SpikeSource (it has no membrane)")
        sources = self._check_sources(source_spikes, n_steps)
        mod_inputs = self._check_modulation(modulator, modulator_inputs, n_steps)
        v, refr, step = state.v, state.refractory, state.step
        # run is pure: everything written in place below is a copy
        buf = state.buffer.clone()
        i_syn, adapt = state.i_syn.clone(), state.adaptation.clone()
        spike_count = state.spike_count.clone()
        mod_state = state.modulation_state
        plastic = bool(self.plasticity)
        dead = _dead(state.alive)
        signed: torch.Tensor | None = None
        if plastic:
            w_flat = torch.cat(state.weights) if state.weights else torch.zeros(0, dtype=self.dtype)
            weights = list(w_flat.split([pr.nnz for pr in self.projections]))
            hook_states = [_clone_tree(h) for h in state.hook_states]
            if (
                self.min_delay > 1
                and self.dtype == torch.float32
                and all(hasattr(h, "on_block") for h in self.plasticity.values())
            ):
                # block hooks replace their events' values with what they sent: the other
                # events read these run-start weights (their projections do not change)
                signed = self._signed(weights)
        else:
            weights = list(state.weights)
            hook_states = list(state.hook_states)
            signed = self._signed(weights)
        out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        out_v: dict[str, list[torch.Tensor]] = {n: [] for n in v_names}
        mods: list[np.ndarray] = []
        n_events = 0
        done = 0
        while done < n_steps:
            # a block ends before any spike emitted in it can arrive
            k = min(self.min_delay - (step % self.min_delay), n_steps - done)
            s0 = step % self.ring  # slots s0 .. s0+k-1, contiguous (ring % min_delay == 0)
            if self._syn_idx.size:
                x = buf[s0 : s0 + k].clone()
                _filter_currents(x.numpy(), i_syn.numpy(), self._alpha.numpy(), self._syn_idx)
                x += self.leak_bias
            else:
                x = buf[s0 : s0 + k].add(self.leak_bias)
            buf[s0 : s0 + k] = 0.0
            if inject is not None:
                x += (
                    inject[done : done + k] if isinstance(inject, torch.Tensor) else inject(step, k)
                )
            (t_idx, pre), v, refr, a_new, v_trace = _lif_block(
                x, v, refr, adapt if self._adaptive else None, self._np_params, bool(v_names)
            )
            if a_new is not None:
                adapt = a_new
            if sources:
                t_idx, pre = self._merge_sources(t_idx, pre, sources, done, k)
            if pre.numel():
                spike_count.index_add_(0, pre, torch.ones_like(pre))
            m_block, mod_state = self._modulation(
                k, step, done, t_idx, pre, mod_state, mod_inputs, modulator
            )
            mods.append(m_block)
            syn, flat, count = self._events(t_idx, pre, step, buf.numel())
            if plastic:
                values = self._plastic_block(
                    k,
                    step,
                    t_idx,
                    pre,
                    syn,
                    count,
                    w_flat,
                    weights,
                    hook_states,
                    m_block,
                    dead,
                    signed,
                )
            else:
                assert signed is not None
                values = signed.index_select(0, syn)
            if syn.numel():
                buf.view(-1).scatter_add_(0, flat, values)
            n_events += syn.numel()
            if names:
                spikes = torch.zeros(k, self.size, dtype=torch.bool)
                spikes[t_idx, pre] = True
            for name in names:
                out[name].append(spikes[:, self.slice(name)])
            for name in v_names:
                out_v[name].append(v_trace[:, self.slice(name)])  # type: ignore[index]
            step += k
            done += k
        result = {
            n: torch.cat(c) if c else torch.zeros(0, self.pops[n].size, dtype=torch.bool)
            for n, c in out.items()
        }
        v_result = {
            n: torch.cat(c) if c else torch.zeros(0, self.pops[n].size, dtype=self.dtype)
            for n, c in out_v.items()
        }
        new_state = NetworkState(
            v,
            refr,
            buf,
            step,
            tuple(weights),
            tuple(hook_states),
            i_syn,
            adapt,
            spike_count,
            state.alive,
            mod_state,
        )
        modulation = torch.from_numpy(np.concatenate(mods) if mods else np.zeros(0))
        return new_state, RunResult(result, n_events, v_result, modulation)

    def replay(
        self,
        spikes: torch.Tensor,
        state: NetworkState | None = None,
        *,
        modulation_scale: float = 1.0,
        modulator: float | torch.Tensor | None = None,
        modulator_inputs: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[NetworkState, RunResult]:
        """Apply the plasticity hooks (and the neuromodulator) to a stored spike raster, as if
        the network had emitted it: the offline replay of sleep.

        Every neuron spikes exactly as in ``spikes [T, N]`` (bool); nothing is integrated or
        transmitted. At step t the hooks receive ``modulation_scale · m_t`` with m_t the
        network neuromodulator's value on the replayed spikes (or the constant ``modulator``).
        The neurons' own dynamics are paused: ``v``, ``refractory``, currents, adaptation and
        spike counts are unchanged, the in-flight input is kept for after the replay (the ring
        buffer turns with the step counter, which advances by T so that the hooks' traces decay
        over the replay). ``state`` itself is left unchanged.

        Returns:
            ``(state, RunResult)`` with the replayed spikes and the modulation per step.
        """
        check_tensor("spikes", spikes, ndim=2, dtype=torch.bool)
        if spikes.shape[1] != self.size:
            raise ValueError(f"spikes must be [T, N={self.size}], got {tuple(spikes.shape)}")
        check_positive("modulation_scale", modulation_scale, allow_zero=True)
        n_steps = spikes.shape[0]
        state = state if state is not None else self.init_state()
        mod_inputs = self._check_modulation(modulator, modulator_inputs, n_steps)
        step, mod_state = state.step, state.modulation_state
        w_flat = torch.cat(state.weights) if state.weights else torch.zeros(0, dtype=self.dtype)
        weights = list(w_flat.split([pr.nnz for pr in self.projections]))
        hook_states = [_clone_tree(h) for h in state.hook_states]
        empty = torch.zeros(0, dtype=torch.long)
        dead = _dead(state.alive)
        mods: list[np.ndarray] = []
        done = 0
        block = max(1, self.min_delay)
        while done < n_steps:
            k = min(block, n_steps - done)
            t_idx, pre = spikes[done : done + k].nonzero(as_tuple=True)
            m_block, mod_state = self._modulation(
                k, step, done, t_idx, pre, mod_state, mod_inputs, modulator
            )
            m_block = m_block * modulation_scale
            mods.append(m_block)
            if self.plasticity:
                self._plastic_block(
                    k,
                    step,
                    t_idx,
                    pre,
                    empty,
                    torch.zeros_like(pre),
                    w_flat,
                    weights,
                    hook_states,
                    m_block,
                    dead,
                    None,
                )
            step += k
            done += k
        buf = torch.roll(state.buffer, n_steps % self.ring, dims=0)
        new_state = state._replace(
            buffer=buf,
            step=step,
            weights=tuple(weights),
            hook_states=tuple(hook_states),
            modulation_state=mod_state,
        )
        names = list(self.offsets)
        result = {n: spikes[:, self.slice(n)].clone() for n in names}
        modulation = torch.from_numpy(np.concatenate(mods) if mods else np.zeros(0))
        return new_state, RunResult(result, 0, {}, modulation)

    def _check_sources(
        self, source_spikes: Mapping[str, torch.Tensor] | None, n_steps: int
    ) -> list[tuple[int, np.ndarray]]:
        """``(offset, [n_steps, size] bool array)`` per source with spikes."""
        out = []
        for name, s in (source_spikes or {}).items():
            if name not in self._source_names:
                raise ValueError(
                    f"source_spikes: {name!r} is not a SpikeSource (sources: {self._source_names})"
                )
            check_tensor(
                f"source_spikes[{name!r}]",
                s,
                shape=(n_steps, self.pops[name].size),
                dtype=torch.bool,
            )
            out.append((self.offsets[name], s.numpy()))
        return out

    def _merge_sources(
        self,
        t_idx: torch.Tensor,
        pre: torch.Tensor,
        sources: list[tuple[int, np.ndarray]],
        done: int,
        k: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's spikes with the sources' added, time-major and ascending within a step."""
        ts, ns = [t_idx.numpy()], [pre.numpy()]
        for offset, s in sources:
            t, j = np.nonzero(s[done : done + k])
            ts.append(t)
            ns.append(j + offset)
        t_all, n_all = np.concatenate(ts), np.concatenate(ns)
        order = np.argsort(t_all * self.size + n_all, kind="stable")
        return torch.from_numpy(t_all[order]), torch.from_numpy(n_all[order])

    def _check_modulation(
        self,
        modulator: float | torch.Tensor | None,
        modulator_inputs: Mapping[str, torch.Tensor] | None,
        n_steps: int,
    ) -> dict[str, torch.Tensor]:
        if self.neuromodulator is None:
            if modulator_inputs:
                raise ValueError("modulator_inputs needs a network neuromodulator")
            return {}
        if modulator is not None:
            raise ValueError(
                "modulator must be None: this network computes it with its neuromodulator"
            )
        inputs = dict(modulator_inputs or {})
        for name, t in inputs.items():
            check_tensor(f"modulator_inputs[{name!r}]", t, ndim=None)
            if t.ndim < 1 or t.shape[0] != n_steps:
                raise ValueError(
                    f"modulator_inputs[{name!r}] must have n_steps={n_steps} rows, "
                    f"got shape {tuple(t.shape)}"
                )
        return inputs

    def _modulation(
        self,
        k: int,
        step: int,
        done: int,
        t_idx: torch.Tensor,
        pre: torch.Tensor,
        mod_state: Any,
        inputs: dict[str, torch.Tensor],
        modulator: float | torch.Tensor | None,
    ) -> tuple[np.ndarray, Any]:
        """``[k]`` third factor of the block's steps (the neuromodulator stepped on each step's
        spikes, or the constant ``modulator``; NaN for None)."""
        hook = self.neuromodulator
        if hook is None:
            value = math.nan if modulator is None else float(modulator)
            return np.full(k, value), mod_state
        m = np.empty(k)
        sp = np.searchsorted(t_idx.numpy(), np.arange(k + 1))
        for t in range(k):
            row = {name: x[done + t] for name, x in inputs.items()}
            m[t], mod_state = hook.update(step + t, pre[sp[t] : sp[t + 1]], mod_state, row)
        return m, mod_state

    def _signed(self, weights: list[torch.Tensor]) -> torch.Tensor:
        """Signed weights in pre-major synapse order."""
        if not weights:
            return torch.zeros(0, dtype=self.dtype)
        return (torch.cat(weights) * self.syn_sign)[self.pre_order]

    def _events(
        self, t_idx: torch.Tensor, pre: torch.Tensor, step: int, buf_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The synaptic events of the spikes ``(t_idx[j], pre[j])`` of the block starting at
        ``step``: ``(syn, flat, count)`` with ``syn`` their pre-major synapse ids and ``flat``
        their ring-buffer offsets, in spike order (time-major), and ``count [n_spikes]`` the
        events per spike."""
        count = self.pre_count.index_select(0, pre)
        total = int(count.sum()) if pre.numel() else 0
        if total == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty, count
        # the pre-major synapse ids of every spike, without a Python loop over spikes:
        # spike j owns events ends[j]-count[j] .. ends[j]-1 and synapses pre_start[pre[j]] ..
        seg = torch.repeat_interleave(count, output_size=total)
        first = self.pre_start.index_select(0, pre) - (count.cumsum(0) - count)
        syn = torch.arange(total).add_(first.index_select(0, seg))
        when = (t_idx + step).mul_(self.size).index_select(0, seg)
        flat = self.pm_offset.index_select(0, syn).add_(when).remainder_(buf_size)
        return syn, flat, count

    def _plastic_block(
        self,
        k: int,
        step: int,
        t_idx: torch.Tensor,
        pre: torch.Tensor,
        syn: torch.Tensor,
        count: torch.Tensor,
        w_flat: torch.Tensor,
        weights: list[torch.Tensor],
        hook_states: list[Any],
        modulation: np.ndarray,
        dead: list[torch.Tensor | None],
        signed: torch.Tensor | None,
    ) -> torch.Tensor:
        """Apply the plasticity hooks over one block, updating ``w_flat`` (whose per-projection
        views are ``weights``) and ``hook_states`` in place; returns the signed value of every
        event in ``syn``, read at the step of its spike before that step's update.
        ``modulation [k]`` is the third factor of each step (NaN: None); pruned synapses
        (``dead[i]``: the complement of projection i's ``alive`` mask, None when every synapse
        is alive) are held at 0.

        In blocks of more than one step, hooks with an ``on_block`` method (the block form of
        :class:`EventPlasticityHook`, e.g. ``neuro_plasticity``'s event-driven STDP) take the
        whole block in one call, updating their weights in place, and return what each
        presynaptic spike transmits (``sent``: its synapses' weights at its step, in ascending
        synapse index, which is their pre-major order here); those values replace the
        block-start weights the events read. The other hooks are called step by step (with every
        event read at its step). Both give the weights and spikes of the rule applied at every
        step (tests compare them bitwise)."""
        t_np, pre_np, syn_np = t_idx.numpy(), pre.numpy(), syn.numpy()
        w_np = w_flat.numpy()
        # spikes of block step t: pre_np[sp[t]:sp[t+1]] (ascending); their events ev[t]:ev[t+1]
        sp = np.searchsorted(t_np, np.arange(k + 1))
        spike_ev = np.concatenate([[0], np.cumsum(count.numpy())])
        ev = spike_ev[sp]
        per_step: list[tuple[Any, ...]] = []
        per_block: list[tuple[Any, ...]] = []
        for i, hook in self.plasticity.items():
            pr = self.projections[i]
            pre_sl, post_sl = self.slice(pr.pre), self.slice(pr.post)
            bounds = np.array([pre_sl.start, pre_sl.stop, post_sl.start, post_sl.stop])
            entry = (i, hook, pre_sl, post_sl, bounds, hasattr(hook, "on_spikes"), dead[i])
            # a one-step block gains nothing from the block form (its fixed cost is higher)
            block = k > 1 and hasattr(hook, "on_block") and self.dtype == torch.float32
            (per_block if block else per_step).append(entry)
        if not per_step and signed is not None:
            # static projections' events from the run-start weights (block hooks overwrite theirs)
            values = signed.index_select(0, syn).numpy()
        elif not per_step:
            # every event at the block-start weight (torch gathers: a few times numpy's speed)
            g = self.pre_order.index_select(0, syn)
            values = w_flat.index_select(0, g).mul_(self.pm_sign.index_select(0, syn)).numpy()
        else:
            values = np.empty(syn_np.shape[0], dtype=w_np.dtype)
            self._plastic_steps(
                k,
                step,
                t_np,
                pre_np,
                syn_np,
                sp,
                ev,
                values,
                per_step,
                weights,
                hook_states,
                modulation,
                w_np,
            )
        m = None if bool(np.isnan(modulation).all()) else modulation
        for i, hook, _, _, bounds, _, pruned in per_block:
            in_pre = (pre_np >= bounds[0]) & (pre_np < bounds[1])
            in_post = (pre_np >= bounds[2]) & (pre_np < bounds[3])
            if not in_pre.any() and not in_post.any():
                continue
            w = weights[i]
            upd = hook.on_block(  # type: ignore[union-attr]
                step,
                k,
                torch.from_numpy(t_np[in_pre]),
                torch.from_numpy(pre_np[in_pre] - bounds[0]),
                torch.from_numpy(t_np[in_post]),
                torch.from_numpy(pre_np[in_post] - bounds[2]),
                hook_states[i],
                w,
                m,
                floor=True,
                pruned=pruned,
            )
            hook_states[i] = upd.state
            if upd.sent.size:
                self._place_sent(
                    i, upd.sent, np.flatnonzero(in_pre), pre_np, bounds, spike_ev, values
                )
        return torch.from_numpy(values)

    def _plastic_steps(
        self,
        k: int,
        step: int,
        t_np: np.ndarray,
        pre_np: np.ndarray,
        syn_np: np.ndarray,
        sp: np.ndarray,
        ev: np.ndarray,
        values: np.ndarray,
        hooks: list[tuple[Any, ...]],
        weights: list[torch.Tensor],
        hook_states: list[Any],
        modulation: np.ndarray,
        w_np: np.ndarray,
    ) -> None:
        """The step-by-step part of :meth:`_plastic_block`: the values of every event at its
        step, and the hooks without a block form (dense ``__call__`` or ``on_spikes``)."""
        glob, sign = self.pre_order.numpy(), self.pm_sign.numpy()
        if not all(h[5] for h in hooks):
            s = torch.zeros(k, self.size, dtype=self.dtype)
            s[torch.from_numpy(t_np), torch.from_numpy(pre_np)] = 1.0
        for t in range(k):
            e0, e1 = ev[t], ev[t + 1]
            if e1 > e0:
                ids = syn_np[e0:e1]
                np.multiply(w_np[glob[ids]], sign[ids], out=values[e0:e1])
            fired = pre_np[sp[t] : sp[t + 1]]
            m = None if math.isnan(modulation[t]) else float(modulation[t])
            for i, hook, pre_sl, post_sl, bounds, event, pruned in hooks:
                w = weights[i]
                if not event:
                    dw, hook_states[i] = hook(
                        s[t : t + 1, pre_sl], s[t : t + 1, post_sl], hook_states[i], w, m
                    )
                    torch.add(w, dw, out=w).clamp_min_(0.0)
                    if pruned is not None:
                        w.masked_fill_(pruned, 0.0)
                    continue
                a, b, c, d = np.searchsorted(fired, bounds)
                if a == b and c == d:
                    continue
                index, value, hook_states[i] = hook.on_spikes(
                    step + t,
                    torch.from_numpy(fired[a:b] - bounds[0]),
                    torch.from_numpy(fired[c:d] - bounds[2]),
                    hook_states[i],
                    w,
                    m,
                )
                idx_np = index.numpy()
                w.numpy()[idx_np] = _settle(idx_np, value.numpy(), pruned)

    def _place_sent(
        self,
        i: int,
        sent: np.ndarray,
        spikes: np.ndarray,
        pre_np: np.ndarray,
        bounds: np.ndarray,
        spike_ev: np.ndarray,
        values: np.ndarray,
    ) -> None:
        """Write a block hook's ``sent`` (projection ``i``; per presynaptic spike, the weights
        its synapses transmit) into ``values``: spike ``spikes[m]`` (its index in the block)
        owns the events ``spike_ev[spike] + first[J] ..`` (``+ count[J]``) of its neuron ``J``'s
        pre-major list, projection ``i``'s part of it."""
        j = pre_np[spikes] - bounds[0]
        count = self._pm_count[i][j]
        start = spike_ev[spikes] + self._pm_first[i][j]
        if int(count.sum()) != sent.size:
            raise ValueError(
                f"plasticity[{i}].on_block returned {sent.size} sent values for "
                f"{int(count.sum())} synapses of the block's presynaptic spikes"
            )
        ends = np.cumsum(count)
        pos = np.arange(sent.size) + np.repeat(start - (ends - count), count)
        gain = self._gain[i]
        values[pos] = sent if gain == 1.0 else sent * np.float32(gain)


def _settle(index: np.ndarray, value: np.ndarray, pruned: torch.Tensor | None) -> np.ndarray:
    """The simulator's post-processing of a hook's new weights ``value`` at ``index``:
    ``max(w, 0)``, and 0 on pruned synapses."""
    new = np.maximum(value, 0.0)
    if pruned is not None:
        new = np.where(pruned.numpy()[index], 0.0, new)
    return new


def _dead(alive: tuple[torch.Tensor, ...]) -> list[torch.Tensor | None]:
    """Per projection: the pruned synapses (``~alive``), or None when none is."""
    return [None if bool(a.all()) else ~a for a in alive]


def _clone_tree(x: Any) -> Any:
    """A copy of ``x`` in which every tensor or array of (nested) tuples is cloned."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        items = [_clone_tree(i) for i in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    return x


def _filter_currents(x: np.ndarray, i_syn: np.ndarray, alpha: np.ndarray, idx: np.ndarray) -> None:
    """Exponential synapses on the neurons ``idx``, in place: ``I ← α·I + arrivals`` per step,
    and the block input ``x [K, N]`` becomes ``I`` there (``i_syn`` is left at the last step)."""
    a = alpha[idx]
    cur = i_syn[idx]
    for t in range(x.shape[0]):
        cur = a * cur + x[t, idx]
        x[t, idx] = cur
    i_syn[idx] = cur


class _NeuronArrays(NamedTuple):
    """Per-neuron constants as numpy arrays (views of the network's tensors); ``rho`` and
    ``inc`` are the threshold adaptation's decay and increment (0 for non-adaptive neurons)."""

    beta: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    refractory_steps: np.ndarray
    rho: np.ndarray
    inc: np.ndarray

    def take(self, idx: np.ndarray) -> _NeuronArrays:
        return _NeuronArrays(*(a[idx] for a in self))


def _lif_block(
    xb: torch.Tensor,
    v: torch.Tensor,
    refr: torch.Tensor,
    adapt: torch.Tensor | None,
    params: _NeuronArrays,
    record_v: bool,
) -> tuple[
    tuple[torch.Tensor, torch.Tensor],
    torch.Tensor,
    torch.Tensor,
    torch.Tensor | None,
    torch.Tensor | None,
]:
    """Advance the neurons over ``xb [K, N]`` (input plus leak bias ``(1 − β)·v_rest``).

    Returns ``((t_idx, neuron), v, refractory, adaptation, v_trace)``: the spikes as index pairs
    (time-major order), the new state (adaptation None when ``adapt`` is), and ``[K, N]`` membranes after every step when
    ``record_v`` (else None). The update is ``h = β·v + x`` rounded after the product and after
    the sum (no fused multiply-add), then threshold ``θ + a``, reset and refractory clamp as in
    :func:`_lif_exact`. ``adapt`` is None when no neuron adapts (then a ≡ 0).

    In a block the input is known in advance, so most neurons need no per-step logic: their
    free trajectory (no reset; with adaptation, ``a`` decaying freely) is computed for all
    neurons at once, and only the *candidates* (refractory at the start of the block, or
    reaching the threshold somewhere on the free trajectory) are simulated step by step on a
    gathered subset. For every other neuron the exact update reduces to the free trajectory,
    with the same floating-point operations, so the result is bit-identical to simulating every
    neuron step by step (a test pins this). The arithmetic runs in numpy on views of the
    tensors: on vectors of a few hundred neurons its per-call overhead is a fraction of torch's,
    and that overhead is what the step loop costs (``python benchmarks/scripts/cpu_op_costs.py``).
    """
    x, v0, r0 = xb.numpy(), v.numpy(), refr.numpy()
    K, N = x.shape
    traj = np.empty_like(x)
    h = v0
    if adapt is None:
        for t in range(K):
            h = np.multiply(params.beta, h, out=traj[t])
            h += x[t]
        cand = traj.max(0) >= params.threshold
        a0 = a_new = None
    else:
        a0 = adapt.numpy()
        a = a0
        cand = np.zeros(N, dtype=bool)
        for t in range(K):
            h = np.multiply(params.beta, h, out=traj[t])
            h += x[t]
            cand |= h >= params.threshold + a
            a = params.rho * a
        a_new = a.copy()
    cand |= r0 > 0
    idx = np.flatnonzero(cand)
    v_new = traj[K - 1].copy()
    refr_new = np.zeros(N, dtype=r0.dtype)
    sub = params.take(idx)
    s, v_new[idx], refr_new[idx], a_sub, v_sub = _lif_exact(
        x[:, idx], v0[idx], r0[idx], None if a0 is None else a0[idx], sub, record_v
    )
    if a_new is not None:
        a_new[idx] = a_sub
    v_trace = None
    if record_v:
        traj[:, idx] = v_sub
        v_trace = torch.from_numpy(traj)
    t_idx, j = np.nonzero(s)
    n_idx = idx[j]
    as_t = torch.from_numpy
    a_out = None if a_new is None else as_t(a_new)
    return (as_t(t_idx), as_t(n_idx)), as_t(v_new), as_t(refr_new), a_out, v_trace


def _lif_exact(
    x: np.ndarray,
    v: np.ndarray,
    refr: np.ndarray,
    a: np.ndarray | None,
    params: _NeuronArrays,
    record_v: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The step-by-step update over ``x [K, n]``: ``(spikes [K, n] bool, v, refractory, a,
    v_trace [K, n] or None)``.

    Per step, :func:`~neuro_spiking.ops.lif_scan.reference.lif_update` on numpy arrays (hard
    reset, ``v_rest`` already folded into ``x`` as the leak bias): ``h = β·v + x``; a neuron that
    is not refractory spikes if ``h ≥ θ + a`` and is reset to ``v_reset``; one that is
    refractory is held at ``v_reset``; then ``a ← ρ·a + Δθ·s`` (``a`` None: no adaptation).
    ``refr`` counts the steps each neuron stays clamped; inside the block it becomes the block
    step at which the neuron is free again (one comparison per step)."""
    K = x.shape[0]
    free_at = refr.astype(np.int64)
    spikes = np.empty(x.shape, dtype=bool)
    v_trace = np.empty_like(x) if record_v else None
    for t in range(K):
        # θ + a as one threshold: h < θ + a, exactly as before (not (h − θ) − a < 0)
        s_f, v = lif_update(
            v,
            x[t],
            beta=params.beta,
            threshold=params.threshold if a is None else params.threshold + a,
            v_reset=params.v_reset,
            reset="hard",
            active=free_at <= t,
        )
        s = np.not_equal(s_f, 0, out=spikes[t])
        free_at = np.where(s, params.refractory_steps + (t + 1), free_at)
        if a is not None:
            a = params.rho * a + params.inc * s
        if v_trace is not None:
            v_trace[t] = v
    refr_out = np.maximum(free_at - K, 0).astype(refr.dtype)
    return spikes, v, refr_out, a, v_trace


def brunel_like(
    *,
    n_exc: int = 8000,
    n_inh: int = 2000,
    p: float = 0.01,
    dt_ms: float = 0.1,
    delay_ms: float = 1.5,
    w_exc: float = 0.5,
    g: float = 4.0,
    seed: int = 0,
) -> Network:
    """The benchmark network of the issue: excitatory/inhibitory LIF populations, Bernoulli(p)
    connectivity between all population pairs, one delay (Brunel 2000 style, mV units:
    τ = 20 ms, θ = 20 mV, reset 10 mV, refractory 2 ms; inhibitory weight ``g·w_exc``)."""
    lif = LIFParams(
        tau_mem_ms=20.0,
        dt_ms=dt_ms,
        v_threshold=20.0,
        v_reset=10.0,
        v_rest=0.0,
        reset="hard",
        refractory_ms=2.0,
    )
    exc = Population(name="exc", size=n_exc, lif=lif)
    inh = Population(name="inh", size=n_inh, lif=lif, kind="inhibitory")
    projections = []
    for i, (a, b) in enumerate([(exc, exc), (exc, inh), (inh, exc), (inh, inh)]):
        w = w_exc if a.kind == "excitatory" else g * w_exc
        projections.append(
            random_projection(a, b, p=p, weight=w, delay_ms=delay_ms, dt_ms=dt_ms, seed=seed + i)
        )
    return Network([exc, inh], projections, dt_ms=dt_ms)


__all__ = [
    "AnyPopulation",
    "EventPlasticityHook",
    "LogNormalWeights",
    "Network",
    "NetworkState",
    "NeuromodulatorHook",
    "PlasticityHook",
    "PoissonInput",
    "Population",
    "Projection",
    "RunResult",
    "SpikeSource",
    "brunel_like",
    "random_projection",
]
