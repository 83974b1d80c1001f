"""Training v3 without global backpropagation: plasticity rules plus layer-local losses.

The published v3 advertises learning "with no backpropagation" but its trainer updates nothing
(§5.2). This trainer does learn without a global backward pass. What each parameter group learns
by, exactly:

* **Readout** ``output_proj`` — the *delta rule* (Widrow–Hoff; softmax regression), written as a
  supervised Hebbian update: :func:`neuro_plasticity.hebbian` with post-synaptic activity
  ``t − p`` (one-hot target minus predicted distribution) and pre-synaptic activity the final
  hidden state h_L::

      ΔW_o = η_o ⟨(t − p) h_Lᵀ⟩,   Δb_o = η_o ⟨t − p⟩

  It equals minus the CE gradient of that one layer; no error travels below it.
* **Stages** — layer-local supervised learning with auxiliary classifiers (Mostafa, Ramesh &
  Cauwenberghs 2018; Nøkland & Eidnes 2019 "pred" loss; Belilovsky et al. 2019 greedy layerwise
  learning). Stage l is repetition l of the model (stage 0 also holds the embedding and the
  consciousness layer); its output h_l feeds an auxiliary linear head A_l (trainer-side, not part
  of the model), and the stage's parameters take one SGD step on the local loss
  ``CE(A_l h_l, y)``. The stage's input is detached, so no error crosses a stage boundary;
  inside the stage (≤ 4 Linears deep) autograd computes the local gradient. The shared STM and
  LTM modules sum the local gradients of the stages that use them. The heads A_l learn by the
  delta rule, like the readout. The model's own loss is never differentiated.
* **Spiking synapses** ``spiking_neurons[l].synaptic_weights.weight`` — three-factor
  (reward-modulated) pair STDP, :func:`neuro_plasticity.three_factor_stdp` (Izhikevich 2007;
  Frémaux & Gerstner 2016): pre-synaptic spikes ``1[h > θ_pre]`` of the layer input, post-synaptic
  spikes of the causal LIF, eligibility traces over the T positions of each sequence, and the
  third factor ``M = −(L_l − L̄_l)``: how much better stage l's local loss did on this batch than
  its running mean (per stage, EMA with ``baseline_decay``). These weights are excluded from the
  local loss.
* **Concept projection** ``long_term_memory.concept_embeddings.weight`` — Oja's subspace rule,
  :func:`neuro_plasticity.oja` ``variant="subspace"`` on ``y = W_c h`` (Oja 1989): the concept
  queries learn the principal subspace of the memory input, unsupervised. Excluded from the
  local loss.

Everything else with a gradient path takes the local-loss step; the published state-like
Parameters (membrane/spike-history initial states, usage statistics, unused weights) do not move.
The trainer needs the causal flags (``V3Config.is_causal``): it uses the per-sequence spikes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_int
from neuro_models.v3.model import LTM_SCALE, SpikingLayer, V3Model
from neuro_models.v3.published import Batch, _check_batch
from neuro_plasticity import hebbian, oja, three_factor_stdp


@dataclass(frozen=True, kw_only=True)
class LocalLearningConfig:
    """Learning rates and switches of :class:`LocalTrainer` (see the module docstring).

    Attributes:
        readout_lr: η_o of the delta rule on the readout and on the auxiliary heads.
        local_lr: SGD step size of the stage-local losses.
        stdp_lr: η of the three-factor STDP on the spiking synapses (0: off, then the synapses
            take the local-loss step instead).
        stdp_tau_e_ms: eligibility time constant τ_e in positions (dt = 1 per position).
        pre_threshold: a layer input above it counts as a pre-synaptic spike.
        oja_lr: η of Oja's subspace rule on the concept projection (0: off, then it takes the
            local-loss step instead).
        baseline_decay: EMA factor of each stage's loss baseline L̄_l.
        head_seed: seed of the auxiliary heads' init U(±1/√d) (trainer-side tensors).

    The default rates come from a 5-epoch probe on a 1 KB byte stream at d = 64, L = 2 (val CE
    5.51 → ≈ 2.4); they are not tuned for any other size: sweep them like any learning rate.
    """

    readout_lr: float = 0.5
    local_lr: float = 0.1
    stdp_lr: float = 1e-3
    stdp_tau_e_ms: float = 20.0
    pre_threshold: float = 1.0
    oja_lr: float = 1e-3
    baseline_decay: float = 0.9
    head_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("readout_lr", "local_lr", "stdp_lr", "oja_lr"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not (math.isfinite(v) and v >= 0)
            ):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {v!r}")
        for name in ("stdp_tau_e_ms", "pre_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")


@dataclass
class LocalStep:
    """What one :meth:`LocalTrainer.step` measured (before its updates were applied).

    Attributes:
        loss: the model's CE on the batch (computed without a graph; never differentiated).
        local_losses: CE of each stage's auxiliary head.
        modulators: the third factor M_l of each stage (0 on the first batch).
        updates: Frobenius norm of the change applied to each parameter, by name.
    """

    loss: float
    local_losses: list[float]
    modulators: list[float]
    updates: dict[str, float] = field(default_factory=dict)


def _delta_rule(
    weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor, y: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ΔW, Δb)`` of the delta rule for logits ``W h + b``; ``h [N, d]``, ``y [N]``."""
    probs = torch.softmax(F.linear(h, weight, bias).float(), dim=-1).to(h.dtype)
    error = F.one_hot(y, weight.shape[0]).to(h.dtype) - probs
    dw, _ = hebbian(lr).update(h, error, (), weight)
    return dw, lr * error.mean(dim=0)


class LocalTrainer:
    """Trains a causal :class:`V3Model` with the local rules of the module docstring.

    Args:
        model: the model (its parameters are updated in place, under ``no_grad``).
        config: learning rates (default :class:`LocalLearningConfig`).

    Raises:
        ValueError: the model does not use the causal flags.
    """

    def __init__(self, model: V3Model, config: LocalLearningConfig | None = None) -> None:
        if not isinstance(model, V3Model):
            raise ValueError(f"model must be a V3Model, got {type(model).__name__}")
        if not model.config.is_causal:
            raise ValueError(
                "model: local learning needs the causal flags (V3Config() defaults); "
                "the published model has no per-sequence spikes"
            )
        self.model = model
        self.config = LocalLearningConfig() if config is None else config
        cfg, d, V = model.config, model.config.dim, model.config.vocab_size
        p = next(model.parameters())
        gen = torch.Generator().manual_seed(self.config.head_seed)
        bound = 1.0 / math.sqrt(d)
        self.heads: list[tuple[torch.Tensor, torch.Tensor]] = [
            (
                ((torch.rand(V, d, generator=gen) * 2 - 1) * bound).to(p),
                ((torch.rand(V, generator=gen) * 2 - 1) * bound).to(p),
            )
            for _ in range(cfg.num_layers)
        ]
        self.baselines: list[float | None] = [None] * cfg.num_layers
        self._stdp = three_factor_stdp(
            tau_e_ms=self.config.stdp_tau_e_ms, lr=self.config.stdp_lr, bound="additive"
        )
        self._oja = oja(self.config.oja_lr, "subspace")

    # ---------------------------------------------------------------- parameter groups

    def _rule_trained(self) -> set[str]:
        names = set()
        if self.config.stdp_lr > 0:
            names |= {
                f"spiking_neurons.{i}.synaptic_weights.weight"
                for i in range(self.model.config.num_layers)
            }
        if self.config.oja_lr > 0:
            names.add("long_term_memory.concept_embeddings.weight")
        return names

    def stage_parameters(self, stage: int) -> dict[str, nn.Parameter]:
        """Parameters that take the local-loss step of ``stage`` (by name)."""
        prefixes = ["short_term_memory.", "long_term_memory.", f"spiking_neurons.{stage}.",
                    f"developmental_plasticity.{stage}."]  # fmt: skip
        if stage == 0:
            prefixes += ["token_embedding.", "consciousness."]
        skip = self._rule_trained()
        return {
            name: p
            for name, p in self.model.named_parameters()
            if any(name.startswith(s) for s in prefixes) and name not in skip
        }

    # ---------------------------------------------------------------- training

    def step(self, x: torch.Tensor, y: torch.Tensor) -> LocalStep:
        """One batch ``x, y [B, T]``: compute every update from the current weights, then apply."""
        _check_batch(x, y)
        model, cfg = self.model, self.config
        model.train()
        yf = y.flatten().long()
        deltas: dict[str, torch.Tensor] = {}
        params = dict(model.named_parameters())

        def add(name: str, delta: torch.Tensor) -> None:
            deltas[name] = deltas[name] + delta if name in deltas else delta

        local_losses, modulators = [], []
        h = None
        for stage in range(model.config.num_layers):
            group = self.stage_parameters(stage)
            names = [n for n, p in group.items() if p.requires_grad]
            with torch.enable_grad():
                h_in = model.embed(x) if h is None else h.detach()
                h1 = model.short_term_memory(h_in)
                h2 = h1 + LTM_SCALE * model.long_term_memory(h1)
                spiking = model.spiking_neurons[stage]
                assert isinstance(spiking, SpikingLayer)
                s, spikes = spiking.run(h2)
                h_out = model.developmental_plasticity[stage](s)
                head_w, head_b = self.heads[stage]
                local = F.cross_entropy(F.linear(h_out, head_w, head_b).flatten(0, 1).float(), yf)
                grads = torch.autograd.grad(local, [group[n] for n in names], allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    add(n, -cfg.local_lr * g)
            h = h_out.detach()
            loss_l = float(local.detach())
            local_losses.append(loss_l)
            # Auxiliary head: delta rule on the stage output.
            dw, db = _delta_rule(head_w, head_b, h.flatten(0, 1), yf, cfg.readout_lr)
            self.heads[stage] = (head_w + dw, head_b + db)
            # Third factor: improvement of this stage's local loss over its running mean.
            base = self.baselines[stage]
            m = 0.0 if base is None else base - loss_l
            modulators.append(m)
            self.baselines[stage] = (
                loss_l
                if base is None
                else cfg.baseline_decay * base + (1 - cfg.baseline_decay) * loss_l
            )
            if cfg.stdp_lr > 0 and m != 0.0:
                name = f"spiking_neurons.{stage}.synaptic_weights.weight"
                add(name, self._stdp_delta(params[name], h2.detach(), spikes, m))
            if cfg.oja_lr > 0:
                name = "long_term_memory.concept_embeddings.weight"
                pre = h1.detach().flatten(0, 1)
                post = pre @ params[name].detach().t()
                add(name, self._oja.update(pre, post, (), params[name].detach())[0])
        assert h is not None
        with torch.no_grad():
            head = model.output_proj
            hL = h.flatten(0, 1)
            loss = float(F.cross_entropy(head(hL).float(), yf))
            dw, db = _delta_rule(head.weight, head.bias, hL, yf, cfg.readout_lr)
            add("output_proj.weight", dw)
            add("output_proj.bias", db)
            for name, delta in deltas.items():
                params[name].add_(delta)
        return LocalStep(
            loss=loss,
            local_losses=local_losses,
            modulators=modulators,
            updates={n: float(d.norm()) for n, d in deltas.items()},
        )

    @torch.no_grad()
    def _stdp_delta(
        self, weight: torch.Tensor, h: torch.Tensor, spikes: torch.Tensor, modulator: float
    ) -> torch.Tensor:
        """Σ_t of the three-factor STDP change over the positions of the batch's sequences."""
        w = weight.detach()
        pre = (h > self.config.pre_threshold).to(w.dtype)
        post = spikes.to(w.dtype)
        state: Any = self._stdp.init(w, batch=h.shape[0])
        total = torch.zeros_like(w)
        for t in range(h.shape[1]):
            dw, state = self._stdp.update(pre[:, t], post[:, t], state, w, modulator)
            total += dw
        return total

    def train(self, batches: Iterable[Batch], *, epochs: int = 1) -> list[LocalStep]:
        """:meth:`step` over ``batches`` for ``epochs`` epochs; one :class:`LocalStep` per batch."""
        check_int("epochs", epochs)
        return [self.step(x, y) for _ in range(epochs) for x, y in batches]


__all__ = ["LocalLearningConfig", "LocalStep", "LocalTrainer"]
