"""The spiking network language model: tokens → sensory spikes → recurrent pools → output
populations → calibrated readout → next-token distribution, learned by local rules only.

Layout (HebLLM, reference-systems.md §2.1 and §2.5; populations from
:func:`neuro_spiking.presets.hebllm_population`):

* **sensory**: a :class:`~neuro_spiking.network.SpikeSource` with one neuron per token id.
  Token t occupies the slot of ``S = (window + gap)/dt`` steps starting at step ``t·S``; its
  sensory neuron spikes every ``sensory_period_ms`` during the first ``window`` of the slot and
  the slot ends with a silent gap.
* **associative** (adaptive threshold) and **inhibitory** pools, recurrently connected
  (Bernoulli connectivity, log-normal weights, delays uniform on the dt grid).
* **output**: ``output_per_token`` neurons per token id. A fixed one-to-one *teacher*
  projection from sensory neuron v to the output group of v makes the group fire when token v
  arrives; the plastic sensory → output and associative → output synapses learn to drive the
  group *before* that, i.e. to predict it (pre before post: STDP potentiates).
* **readout** for the next token after token t: ``c_v`` = spikes of output group v in the
  readout window of slot t (``"gap"``: its silent gap; ``"slot"``: the whole slot, or its steps
  from ``readout_delay_ms`` on), all before
  token t + 1's first spike can arrive, so ``p(x_{t+1} | x_{≤t})`` depends on ``x_{≤t}`` only;
  then ``p = softmax(c/τ)`` or Laplace ``(c + α)/(Σc + Vα)`` (:mod:`.readout`), with the scalar
  fitted on held-out (count, next token) pairs; with ``readout_prior=True`` both are taken
  towards the prior π of the output groups' teacher-spike frequencies (Dirichlet smoothing
  ``(c_v + Vαπ_v)/(Σc + Vα)``; a silent output then predicts the unigram, not 1/V).
* optional **output inhibition** (``output_inhibition > 0``): a small inhibitory pool driven by
  every output spike inhibits all output neurons (winner-take-all among the groups).

Teacher-clamped output learning (``output_learning="teacher"``, :mod:`.teacher`): the plastic
synapses onto the output learn from the *teacher*, not from the output's own spikes. After each
sequence the run's raster is replayed with the output replaced by the teacher raster (group
``x_{t+1}`` spikes at the last step of slot t) through

    Δw_ij = η · m_t · [A₊ (1 − w_ij) x_j T_i − A₋ w_ij s_j]      (teacher_stdp)

whose fixed point makes ``w_ij`` grow with how often j's spikes precede the teacher of i
relative to how often j spikes (≈ P(next = i | j) for a sensory j). The output neurons run free
(their spikes are the predictions counted by the readout) and the one-to-one teacher projection
is silent in every run. This is what makes the network learn at cpu scale: with
``output_learning="free"`` STDP potentiates every output that fires after the current token
(positive feedback), every output group fires on every token and the counts carry no
information about the next token (HebLLM guide, "Why the free network does not learn").

Learning (``rule="stdp"``, ours): event-driven pair STDP on the excitatory projections
(sensory → associative, associative → associative, and, with ``output_learning="free"``,
sensory → output and associative → output),

    Δw_ij = η · m_t · [A₊ x_j s_i − A₋ y_i s_j],   w ∈ [0, 1],

with m_t the activity neuromodulator of :class:`neuro_plasticity.ActivityModulator`
(``m = clip(1.5 + 8·novelty + 3·surprise + 2·reward, 0.1, 5)``, recomputed every step; a
constant with ``neuromodulation=False``), with ``output_learning="free"`` homeostatic synaptic
scaling of the synapses onto the output neurons after each sequence (``ΔW_ij = η_h (r_target − r_i) W_ij``,
:func:`neuro_plasticity.synaptic_scaling`, r_i the neuron's spikes per step over the sequence),
and optionally a sleep phase every ``sleep_every`` sequences (:func:`neuro_spiking.sleep`:
replay of the last sequence, with the teacher raster in teacher mode, at 0.3·m through every
plastic projection's rule, pruning of ``w < 0.01``). ``rule="published"`` uses
:func:`~neuro_models.hebllm.published.published_hebbian_rule` instead (whose weights never
change, as published). Nothing is learned by backpropagation: the weights are buffers, the
model has no ``nn.Parameter``, and every simulation runs under ``torch.no_grad``.

State: the learned weights and alive masks and the readout scalar are buffers; every sequence
(training or evaluation) starts from neurons at rest with nothing in flight and fresh traces
(no dynamic state is carried between sequences, so evaluation windows are independent).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor
from neuro_models.hebllm.published import PublishedRuleParams, published_hebbian_rule
from neuro_models.hebllm.readout import Readout, fit_readout, readout_log_probs
from neuro_models.hebllm.teacher import EventTeacherSTDP, teacher_raster, teacher_stdp
from neuro_plasticity import (
    ActivityModulator,
    ActivityModulatorParams,
    chain,
    clip,
    modulate,
    on_topology,
    pair_stdp,
    synaptic_scaling,
)
from neuro_plasticity.ops.event_stdp import event_driven
from neuro_plasticity.topology import CSR
from neuro_spiking import (
    LogNormalWeights,
    Network,
    NetworkState,
    Population,
    Projection,
    SpikeSource,
    random_projection,
)
from neuro_spiking.presets import hebllm_population
from neuro_spiking.sleep_phase import raster, sleep

__all__ = ["HebLLM", "HebLLMConfig", "LearnStats", "hebllm_local_loss", "sensory_spikes"]

Rule = Literal["stdp", "published"]


@dataclass(frozen=True, kw_only=True)
class HebLLMConfig:
    """Shape, timing, learning and readout of a :class:`HebLLM`.

    Attributes:
        vocab_size: V, one sensory neuron and one output group per token id.
        n_associative, n_inhibitory: pool sizes (published example: 500, 100).
        output_per_token: neurons per output group (counts are summed over the group).
        dt_ms: simulation step (HebLLM: 1 ms).
        window_ms, gap_ms: per token, the stimulus window and the silent gap after it
            (reference-systems.md §2.5 suggests 20 and 50 ms; the defaults are short for CPU).
        sensory_period_ms: a sensory neuron spikes every this many ms during its window.
        p_*: connection probabilities (``p_sensory_output`` = 1: every sensory neuron reaches
            every output neuron).
        delay_ms: delays uniform on the dt grid in this range (published: U(1, 5) ms).
        teacher_weight: weight of the fixed one-to-one sensory → output-group synapses.
        output_weight_mu: μ of the log-normal initial weights of the plastic projections onto
            the output (σ = 0.5, clipped to [0.01, 1]); the default −3 (median 0.05) keeps the
            output silent until learning drives it (published μ = −1.5 for every synapse,
            median 0.22, makes every output neuron fire on every token).
        rule: ``"stdp"`` (ours) or ``"published"`` (the port of 03bbcba's rule).
        stdp_lr, a_plus, a_minus, tau_stdp_ms: pair STDP (``pair_stdp`` defaults for A±, τ).
        neuromodulation: True: m from :class:`~neuro_plasticity.ActivityModulator` every step;
            False: the constant ``constant_modulator``.
        homeostasis_lr, target_rate: synaptic scaling onto the output neurons after each
            sequence (rate in spikes per step; ``homeostasis_lr = 0`` disables it; never with
            ``rule="published"``, whose network had no synaptic scaling).
        sleep_every: a sleep phase after every this many learned sequences (0: never).
        output_learning: ``"free"`` (the output neurons integrate their plastic input while
            learning; pair STDP onto them) or ``"teacher"`` (clamped to the teacher while
            learning, :mod:`neuro_models.hebllm.teacher`: output group ``x_{t+1}`` spikes at the
            last step of slot t, the plastic synapses onto the output learn by
            :func:`~neuro_models.hebllm.teacher.teacher_stdp` on the replayed raster, and at
            evaluation the one-to-one teacher projection is silent, so the output counts are
            predictions only). Homeostatic scaling applies to ``"free"`` only.
        teacher_lr, teacher_a_plus, teacher_a_minus, teacher_tau_ms: η, A₊, A₋, τ of
            :func:`~neuro_models.hebllm.teacher.teacher_stdp`.
        readout, readout_window: see the module docstring.
        output_inhibition, n_output_inhibitory: lateral inhibition among the output groups
            (winner-take-all; 0: none). With I > 0 a pool of ``n_output_inhibitory``
            inhibitory neurons receives every output spike (fixed weight 1, shortest delay) and
            inhibits every output neuron with the fixed weight ``I / n_output_inhibitory`` each
            (×1.2, the inhibitory gain), so the groups driven hardest fire first and silence
            the weaker ones about two steps later.
        readout_delay_ms: with ``readout_window="slot"``, the readout window of slot t starts
            this long after the slot's start (0: the whole slot); the first steps mostly hold
            output spikes driven by the previous token's late arrivals.
        readout_prior: False: uniform prior in the readout; True: the prior π = the frequency of
            each output group's teacher spikes during learning (add-one smoothed; a per-group
            spike count, i.e. the unigram of the training targets), see
            :mod:`neuro_models.hebllm.readout`.
        calibration_tokens: the readout scalar is refitted after each learned sequence on the
            prequential (count, next token) pairs of the last this many training tokens.
        init_scale: the readout scalar before any fit.
        seed: connectivity seed; None draws one from torch's global generator.
    """

    vocab_size: int
    n_associative: int = 200
    n_inhibitory: int = 50
    output_per_token: int = 4
    dt_ms: float = 1.0
    window_ms: float = 4.0
    gap_ms: float = 6.0
    sensory_period_ms: float = 1.0
    p_sensory_associative: float = 0.1
    p_associative_associative: float = 0.05
    p_associative_inhibitory: float = 0.1
    p_inhibitory_associative: float = 0.1
    p_sensory_output: float = 1.0
    p_associative_output: float = 0.1
    p_inhibitory_output: float = 0.1
    delay_ms: tuple[float, float] = (1.0, 5.0)
    teacher_weight: float = 1.0
    output_weight_mu: float = -3.0
    rule: Rule = "stdp"
    stdp_lr: float = 1.0
    a_plus: float = 0.01
    a_minus: float = 0.0105
    tau_stdp_ms: float = 20.0
    neuromodulation: bool = True
    constant_modulator: float = 1.0
    homeostasis_lr: float = 0.5
    target_rate: float = 0.02
    sleep_every: int = 0
    output_learning: Literal["free", "teacher"] = "free"
    teacher_lr: float = 1.0
    teacher_a_plus: float = 0.05
    teacher_a_minus: float = 0.005
    teacher_tau_ms: float = 5.0
    readout: Readout = "softmax"
    readout_window: Literal["gap", "slot"] = "gap"
    readout_delay_ms: float = 0.0
    readout_prior: bool = False
    output_inhibition: float = 0.0
    n_output_inhibitory: int = 4
    calibration_tokens: int = 2048
    init_scale: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_associative", "n_inhibitory", "output_per_token",
                     "n_output_inhibitory"):  # fmt: skip
            check_int(name, getattr(self, name))
        for name in ("dt_ms", "window_ms", "sensory_period_ms", "tau_stdp_ms", "init_scale",
                     "teacher_tau_ms"):  # fmt: skip
            check_positive(name, getattr(self, name))
        for name in ("output_inhibition", "gap_ms", "stdp_lr", "a_plus", "a_minus", "homeostasis_lr", "target_rate",
                     "teacher_lr", "teacher_a_plus", "teacher_a_minus"):  # fmt: skip
            check_positive(name, getattr(self, name), allow_zero=True)
        check_positive("constant_modulator", self.constant_modulator, allow_zero=True)
        for name in (f.name for f in dataclasses.fields(self) if f.name.startswith("p_")):
            check_in_range(name, getattr(self, name), 0.0, 1.0)
        check_positive("readout_delay_ms", self.readout_delay_ms, allow_zero=True)
        if self.readout_delay_ms >= self.window_ms + self.gap_ms:
            raise ValueError(
                f"readout_delay_ms must be < window_ms + gap_ms, got {self.readout_delay_ms}"
            )
        for name in ("window_ms", "gap_ms", "sensory_period_ms", "readout_delay_ms"):
            n = getattr(self, name) / self.dt_ms
            if abs(n - round(n)) > 1e-9:
                raise ValueError(f"{name} must be a multiple of dt_ms={self.dt_ms}")
        lo, hi = self.delay_ms
        if not self.dt_ms <= lo <= hi:
            raise ValueError(f"delay_ms must satisfy dt_ms ≤ low ≤ high, got {self.delay_ms}")
        if self.readout_window == "gap" and self.gap_ms <= 0:
            raise ValueError("readout_window='gap' needs gap_ms > 0")
        if self.rule not in ("stdp", "published"):
            raise ValueError(f"rule must be 'stdp' or 'published', got {self.rule!r}")
        if self.output_learning not in ("free", "teacher"):
            raise ValueError(
                f"output_learning must be 'free' or 'teacher', got {self.output_learning!r}"
            )
        if self.readout not in ("softmax", "laplace"):
            raise ValueError(f"readout must be 'softmax' or 'laplace', got {self.readout!r}")
        if self.readout_window not in ("gap", "slot"):
            raise ValueError(f"readout_window must be 'gap' or 'slot', got {self.readout_window!r}")
        check_int("sleep_every", self.sleep_every, low=0)
        check_int("calibration_tokens", self.calibration_tokens)

    @property
    def window_steps(self) -> int:
        return round(self.window_ms / self.dt_ms)

    @property
    def slot_steps(self) -> int:
        """S, the steps per token."""
        return round((self.window_ms + self.gap_ms) / self.dt_ms)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sensory_spikes(
    tokens: torch.Tensor, vocab_size: int, window_steps: int, slot_steps: int, period_steps: int
) -> torch.Tensor:
    """``[T·S, V]`` bool raster of ``tokens [T]``: neuron ``tokens[t]`` spikes at steps
    ``t·S + k·period`` for ``k·period < window``; nothing else spikes."""
    check_tensor("tokens", tokens, ndim=1, dtype=torch.int64)
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"tokens must lie in [0, vocab_size={vocab_size})")
    T = tokens.numel()
    out = torch.zeros(T, slot_steps, vocab_size, dtype=torch.bool)
    steps = torch.arange(0, window_steps, period_steps)
    out[torch.arange(T)[:, None], steps[None, :], tokens[:, None]] = True
    return out.reshape(T * slot_steps, vocab_size)


class LearnStats(NamedTuple):
    """One call of :meth:`HebLLM.learn`: ``nll`` the prequential mean NLL of its next tokens
    (readout with the scalar before this call's refit), ``tokens``, ``steps`` simulated,
    ``events`` synaptic events, ``seconds`` of wall time, ``synapses`` alive at the end."""

    nll: float
    tokens: int
    steps: int
    events: int
    seconds: float
    synapses: int


class HebLLM(nn.Module):
    """The spiking language model (module docstring). ``forward(tokens [B, T]) -> log p [B, T,
    V]`` (float32 log-probabilities, usable as logits); :meth:`learn` is the training step."""

    def __init__(self, config: HebLLMConfig) -> None:
        super().__init__()
        if not isinstance(config, HebLLMConfig):
            raise ValueError(f"config must be a HebLLMConfig, got {type(config).__name__}")
        self.config = c = config
        seed = c.seed if c.seed is not None else int(torch.randint(2**31 - 1, ()))
        #: the connectivity seed used (``config.seed`` or the one drawn): a HebLLM built with
        #: ``dataclasses.replace(config, seed=model.connectivity_seed)`` has the same synapses
        #: and initial weights
        self.connectivity_seed = seed
        V, k = c.vocab_size, c.output_per_token
        sens = SpikeSource(name="sensory", size=V)
        assoc = hebllm_population("associative", size=c.n_associative, dt_ms=c.dt_ms)
        inh = hebllm_population("inhibitory", size=c.n_inhibitory, dt_ms=c.dt_ms)
        out = hebllm_population("output", size=V * k, dt_ms=c.dt_ms)
        self.populations: list[Population | SpikeSource] = [sens, assoc, inh, out]
        if c.output_inhibition > 0:
            self.populations.append(
                hebllm_population("inhibitory", size=c.n_output_inhibitory,
                                  name="output_inhibitory", dt_ms=c.dt_ms)
            )  # fmt: skip
        lw = LogNormalWeights()
        spec = [
            ("sensory", "associative", c.p_sensory_associative, True),
            ("associative", "associative", c.p_associative_associative, True),
            ("associative", "inhibitory", c.p_associative_inhibitory, False),
            ("inhibitory", "associative", c.p_inhibitory_associative, False),
            ("sensory", "output", c.p_sensory_output, True),
            ("associative", "output", c.p_associative_output, True),
            ("inhibitory", "output", c.p_inhibitory_output, False),
        ]
        pops = {p.name: p for p in self.populations}
        projections: list[Projection] = []
        self.plastic: list[int] = []
        lw_out = LogNormalWeights(mu=c.output_weight_mu)
        for i, (a, b, p, plastic) in enumerate(spec):
            w_init = lw_out if b == "output" and plastic else lw
            pr = random_projection(
                pops[a], pops[b], p=p, weight=w_init, delay_ms=c.delay_ms, dt_ms=c.dt_ms,  # type: ignore[arg-type]
                seed=seed + i,
            )  # fmt: skip
            if plastic:
                self.plastic.append(len(projections))
            projections.append(pr)
        if c.output_inhibition > 0:
            # winner-take-all: every output spike fires the whole output_inhibitory pool one
            # step later (weight 1 > its threshold − rest), which inhibits every output neuron
            n_i, n_o, d = c.n_output_inhibitory, V * k, c.delay_ms[0]
            for a, b, n_a, n_b, w in (
                ("output", "output_inhibitory", n_o, n_i, 1.0),
                ("output_inhibitory", "output", n_i, n_o, c.output_inhibition / n_i),
            ):
                projections.append(
                    Projection.from_edges(
                        a, b, n_post=n_b, pre_index=torch.arange(n_a).repeat(n_b),
                        post_index=torch.arange(n_b).repeat_interleave(n_a), weight=w, delay_ms=d,
                    )
                )  # fmt: skip
        # the teacher: sensory v → every neuron of output group v, fixed, shortest delay
        teacher_post = torch.arange(V * k)
        projections.append(
            Projection.from_edges(
                "sensory",
                "output",
                n_post=V * k,
                pre_index=teacher_post // k,
                post_index=teacher_post,
                weight=c.teacher_weight,
                delay_ms=c.delay_ms[0],
            )
        )
        self.projections = projections
        for i, pr in enumerate(projections):
            self.register_buffer(f"weight_{i}", pr.weight.clone())
            self.register_buffer(f"alive_{i}", torch.ones(pr.nnz, dtype=torch.bool))
        self.scale: torch.Tensor
        self.register_buffer("scale", torch.tensor(float(c.init_scale), dtype=torch.float64))
        # teacher spikes per output group during learning (the readout prior's counts)
        self.target_counts: torch.Tensor
        self.register_buffer("target_counts", torch.zeros(V, dtype=torch.float64))
        self._teacher = len(projections) - 1
        self._static = Network(self.populations, projections, dt_ms=c.dt_ms)

        def net(hooks: list[int]) -> Network:
            return Network(
                self.populations,
                projections,
                dt_ms=c.dt_ms,
                plasticity={i: self._hook(i) for i in hooks},
                neuromodulator=self._modulator(),
            )

        self._plastic_net = net(self.plastic)
        onto_output = [i for i in self.plastic if projections[i].post == "output"]
        if c.output_learning == "teacher":
            self._wake_net = net([i for i in self.plastic if i not in onto_output])
            self._output_net = net(onto_output)
        self._calibration: collections.deque[tuple[torch.Tensor, torch.Tensor]] = (
            collections.deque()
        )
        self.learned_sequences = 0
        self.throughput = {"tokens": 0, "steps": 0, "events": 0, "seconds": 0.0}

    # ------------------------------------------------------------------ construction helpers

    def _hook(self, i: int) -> Any:
        c, pr = self.config, self.projections[i]
        n_pre = next(p.size for p in self.populations if p.name == pr.pre)
        topo = CSR(pr.crow_indices, pr.col_indices, n_pre)
        if c.rule == "published":
            boost = 2.0 if (pr.pre, pr.post) == ("sensory", "output") else 1.0
            params = PublishedRuleParams(boost=boost, dt_ms=c.dt_ms)
            return on_topology(published_hebbian_rule(params), topo)
        if c.output_learning == "teacher" and pr.post == "output":
            teach = teacher_stdp(
                lr=c.teacher_lr, a_plus=c.teacher_a_plus, a_minus=c.teacher_a_minus,
                tau_ms=c.teacher_tau_ms, dt_ms=c.dt_ms,
            )  # fmt: skip
            return EventTeacherSTDP(teach.params, topo)
        rule = chain(
            pair_stdp(
                lr=c.stdp_lr, a_plus=c.a_plus, a_minus=c.a_minus, tau_plus_ms=c.tau_stdp_ms,
                tau_minus_ms=c.tau_stdp_ms, dt_ms=c.dt_ms,
            ),
            modulate(),
            clip(w_min=0.0, w_max=1.0),
        )  # fmt: skip
        return event_driven(rule, topo, backend="events")

    def _modulator(self) -> ActivityModulator | None:
        c = self.config
        if not c.neuromodulation:
            return None
        # published: the modulator only updated at steps with spikes
        decay_on: Literal["every_step", "spiking_steps"] = (
            "spiking_steps" if c.rule == "published" else "every_step"
        )
        return ActivityModulator(ActivityModulatorParams(decay_on=decay_on))

    # ------------------------------------------------------------------ state

    @property
    def weights(self) -> tuple[torch.Tensor, ...]:
        """The current ``[nnz]`` weights of every projection (the learned quantities)."""
        return tuple(getattr(self, f"weight_{i}") for i in range(len(self.projections)))

    @property
    def alive(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f"alive_{i}") for i in range(len(self.projections)))

    @property
    def n_synapses(self) -> int:
        """Synapses alive now (the model's parameter count for iso-parameter comparisons)."""
        return sum(int(a.sum()) for a in self.alive)

    def _state(self, net: Network) -> NetworkState:
        """Rest, nothing in flight, the learned weights; with ``output_learning="teacher"`` the
        one-to-one teacher projection is silent (the output counts are predictions only)."""
        weights = [w.clone() for w in self.weights]
        if self.config.output_learning == "teacher":
            weights[self._teacher].zero_()
        return net.init_state()._replace(weights=tuple(weights), alive=self.alive)

    @property
    def prior(self) -> torch.Tensor | None:
        """The readout prior π (``readout_prior=True``): add-one-smoothed frequencies of the
        output groups' teacher spikes during learning; None (uniform) otherwise."""
        if not self.config.readout_prior:
            return None
        n = self.target_counts + 1.0
        return n / n.sum()

    def _counts(self, out_spikes: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """``[T, V]`` spikes of each output group in each slot's readout window."""
        c = self.config
        s = out_spikes.reshape(n_tokens, c.slot_steps, c.vocab_size, c.output_per_token)
        first = c.window_steps if c.readout_window == "gap" else round(c.readout_delay_ms / c.dt_ms)
        return s[:, first:].sum(dim=(1, 3)).double()

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        check_tensor("tokens", tokens, ndim=2, dtype=torch.int64)
        V = self.config.vocab_size
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
            raise ValueError(f"tokens must lie in [0, vocab_size={V})")
        return tokens.cpu()

    def _raster(self, seq: torch.Tensor) -> torch.Tensor:
        c = self.config
        period = round(c.sensory_period_ms / c.dt_ms)
        return sensory_spikes(seq, c.vocab_size, c.window_steps, c.slot_steps, period)

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def counts(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, V]`` readout counts after each token (frozen weights, each row from rest)."""
        tokens = self._check_tokens(tokens)
        B, T = tokens.shape
        out = torch.zeros(B, T, self.config.vocab_size, dtype=torch.float64)
        for b in range(B):
            _, res = self._static.run(
                T * self.config.slot_steps,
                self._state(self._static),
                source_spikes={"sensory": self._raster(tokens[b])},
                record=["output"],
            )
            out[b] = self._counts(res.spikes["output"], T)
        return out

    @torch.no_grad()
    def record(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``[T·S, size]`` bool spikes of every population while the frozen network reads
        the int64 sequence ``tokens [T]`` (as :meth:`counts` runs it), e.g. for a raster plot."""
        check_tensor("tokens", tokens, ndim=1, dtype=torch.int64)
        seq = self._check_tokens(tokens[None])[0]
        _, res = self._static.run(
            seq.numel() * self.config.slot_steps,
            self._state(self._static),
            source_spikes={"sensory": self._raster(seq)},
        )
        return dict(res.spikes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``log p(x_{t+1} | x_{≤t})`` as ``[B, T, V]`` float32 for int64 ``tokens [B, T]``."""
        c = self.config
        lp = readout_log_probs(self.counts(tokens), float(self.scale), c.readout, self.prior)
        return lp.float()

    @torch.no_grad()
    def calibrate(self, tokens: torch.Tensor) -> float:
        """Fit the readout scalar (τ or α) on the next tokens of ``tokens [B, T]`` (a dev split)
        and store it; returns it."""
        tokens = self._check_tokens(tokens)
        if tokens.shape[1] < 2:
            raise ValueError("tokens must have at least 2 columns (a token and its successor)")
        cnt = self.counts(tokens)[:, :-1].reshape(-1, self.config.vocab_size)
        s = fit_readout(cnt, tokens[:, 1:].reshape(-1), self.config.readout, prior=self.prior)
        self.scale.fill_(s)
        return s

    # ------------------------------------------------------------------ learning

    @torch.no_grad()
    def learn(self, tokens: torch.Tensor) -> LearnStats:
        """Present each row of ``tokens [B, T]`` in turn with plasticity on (rows run one after
        the other, each from rest, on the weights the previous one left), then homeostasis,
        sleep (every ``sleep_every`` rows) and the prequential refit of the readout scalar."""
        tokens = self._check_tokens(tokens)
        c = self.config
        B, T = tokens.shape
        t0 = time.perf_counter()
        nll_sum, n_pred, events = 0.0, 0, 0
        mod = None if c.neuromodulation else c.constant_modulator
        net = self._plastic_net
        teacher = c.output_learning == "teacher"
        for b in range(B):
            wake = self._wake_net if teacher else net
            state, res = wake.run(
                T * c.slot_steps,
                self._state(wake),
                source_spikes={"sensory": self._raster(tokens[b])},
                modulator=mod,
            )
            events += res.n_events
            cnt = self._counts(res.spikes["output"], T)
            if T > 1:
                lp = readout_log_probs(cnt[:-1], float(self.scale), c.readout, self.prior)
                nll_sum -= float(lp.gather(1, tokens[b, 1:, None]).sum())
                n_pred += T - 1
                self._calibration.append((cnt[:-1], tokens[b, 1:].clone()))
                self.target_counts += torch.bincount(tokens[b, 1:], minlength=c.vocab_size)
            spikes = res.spikes
            if teacher:
                # the plastic synapses onto the output learn from the teacher's spikes, not the
                # output's own: replay the run's raster with the output replaced by the teacher
                k = c.output_per_token
                spikes = {
                    **spikes,
                    "output": teacher_raster(tokens[b], c.vocab_size, k, c.slot_steps),
                }
                weights = list(state.weights)
                weights[self._teacher] = self.weights[self._teacher].clone()
                fresh = self._output_net.init_state().hook_states
                state, _ = self._output_net.replay(
                    raster(net, spikes),
                    state._replace(weights=tuple(weights), hook_states=fresh),
                    modulator=mod,
                )
                state = state._replace(hook_states=net.init_state().hook_states)
            weights = list(state.weights)
            if c.homeostasis_lr > 0 and c.rule == "stdp" and not teacher:
                rate = res.spikes["output"].double().mean(0)
                for i in self.plastic:
                    if self.projections[i].post == "output":
                        weights[i] = self._scaled(i, weights[i], rate)
            state = state._replace(weights=tuple(weights))
            self.learned_sequences += 1
            if c.sleep_every and self.learned_sequences % c.sleep_every == 0:
                state, _ = sleep(net, state, raster(net, spikes), modulator=mod)
            for i, (w, a) in enumerate(zip(state.weights, state.alive)):
                getattr(self, f"weight_{i}").copy_(w)
                getattr(self, f"alive_{i}").copy_(a)
        self._refit()
        dt = time.perf_counter() - t0
        steps = B * T * c.slot_steps
        for key, val in (("tokens", B * T), ("steps", steps), ("events", events), ("seconds", dt)):
            self.throughput[key] += val
        nll = nll_sum / n_pred if n_pred else math.nan
        return LearnStats(nll, B * T, steps, events, dt, self.n_synapses)

    def _scaled(self, i: int, w: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """Synaptic scaling of projection i (onto the output): ``ΔW = η (r_target − r) W``."""
        c, pr = self.config, self.projections[i]
        n_pre = next(p.size for p in self.populations if p.name == pr.pre)
        rule = on_topology(
            synaptic_scaling(c.homeostasis_lr, c.target_rate, tau_rate_steps=1.0),
            CSR(pr.crow_indices, pr.col_indices, n_pre),
        )
        ww = w.double()
        pre = torch.zeros(1, n_pre, dtype=torch.float64)
        dw, _ = rule.update(pre, rate[None], rule.init(ww), ww)
        return (ww + dw).clamp(0.0, 1.0).to(w.dtype)

    def _refit(self) -> None:
        """Keep the last ``calibration_tokens`` prequential pairs and refit the scalar on them."""
        cal, limit = self._calibration, self.config.calibration_tokens
        held = sum(t.numel() for _, t in cal)
        while cal and held - cal[0][1].numel() >= limit:
            held -= cal.popleft()[1].numel()
        if not cal:
            return
        cnt = torch.cat([x for x, _ in cal])[-limit:]
        tgt = torch.cat([t for _, t in cal])[-limit:]
        self.scale.fill_(fit_readout(cnt, tgt, self.config.readout, prior=self.prior))


def hebllm_local_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """An ``Arm.loss`` for :mod:`neuro_models.experiment` that trains a :class:`HebLLM` by its
    local rules: ``model.learn`` on the windows ``[inputs, last target]``; returns the
    prequential NLL.

    The training harness calls ``loss.backward()`` on the result, so the NLL (a plain number) is
    returned as ``nll + 0·leaf`` with ``leaf`` a fresh scalar that requires grad and belongs to no
    model: the backward pass touches that leaf only, and the model (no parameters) is unchanged
    by the optimizer.
    """
    if not isinstance(model, HebLLM):
        raise ValueError(f"model must be a HebLLM, got {type(model).__name__}")
    seq = torch.cat([inputs, targets[:, -1:]], dim=1)
    stats = model.learn(seq)
    leaf = torch.zeros((), dtype=torch.float32, requires_grad=True)
    loss = torch.tensor(stats.nll, dtype=torch.float32) + 0.0 * leaf
    metrics = {
        "token_steps_per_s": stats.steps / max(stats.seconds, 1e-9),
        "events_per_s": stats.events / max(stats.seconds, 1e-9),
        "synapses": float(stats.synapses),
        "readout_scale": float(model.scale),
    }
    return loss, metrics
