"""NeuroLlama on the one decoder: the published mechanisms as parts, exit heads, prediction heads.

    blocks:   x_{l+1} = Block_l(x_l)   with mixer "neuro_attention" (synaptic modulation, lateral
              inhibition between columns, habituation, population voting) or "hebbian"
    exits:    p_l(· | x_{≤t}) = softmax(W RMSNorm_l(x_{l+1,t}) / τ_l)  at l ∈ exit_layers,
              sharing the tied/untied output matrix W; τ_l fitted on a dev split
    training: L = CE_final + Σ_l γ^{L−1−l} CE_exit,l + w_pred · Σ_l mean_{b,t,i} (x_l − f_l(x_{l+1}))²

(the last term is neuro-objectives' ``SurpriseLoss`` over the L + 1 residual streams, with a
stop-gradient target, the guard against the collapse of the raw form). Per-token early exit at
inference is :func:`neuro_models.neurollama.early_exit.early_exit_decode`; the published
sequence-level exit (``exit_mode="sequence"``) is in :meth:`NeuroLlama.forward`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neuro_core.ops import RMSNorm
from neuro_core.validation import check_tensor
from neuro_models.decoder import Decoder
from neuro_models.decoder.functional import LOSS_CHUNK, _LinearCrossEntropy
from neuro_models.neurollama.config import NeuroLlamaConfig


def _fused_ce(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    device = h.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
    out: torch.Tensor = _LinearCrossEntropy.apply(
        h.flatten(0, 1), weight, targets.flatten().long(), LOSS_CHUNK, dtype
    )
    return out


class NeuroLlama(Decoder):
    """The NeuroLlama LM: ``tokens [B, T] -> logits [B, T, V]`` plus exit and prediction heads.

    ``config`` is the :class:`NeuroLlamaConfig`; ``spec`` the decoder configuration built from
    it. ``exit_norms[i]`` is the RMSNorm of exit ``config.exit_layers[i]``; ``exit_temperature``
    its calibration temperature (1 until :func:`~neuro_models.neurollama.early_exit.calibrate_exits`
    fits it on a dev split). ``surprise`` holds the prediction heads (None without predictive
    coding).
    """

    exit_temperature: torch.Tensor

    def __init__(self, config: NeuroLlamaConfig) -> None:
        if not isinstance(config, NeuroLlamaConfig):
            raise ValueError(f"config must be a NeuroLlamaConfig, got {type(config).__name__}")
        super().__init__(config.decoder_config())
        self.config = config
        d, eps = config.hidden_dim, config.norm_eps
        exits = config.exit_layers if config.early_exit else ()
        self.exit_norms = nn.ModuleList(RMSNorm(d, eps) for _ in exits)
        self.register_buffer("exit_temperature", torch.ones(len(exits)))
        self.surprise: nn.Module | None = None
        if config.predictive_coding:
            from neuro_objectives import SurpriseLoss

            self.surprise = SurpriseLoss(config.num_layers, d, stop_gradient=True)

    @property
    def exits(self) -> tuple[int, ...]:
        """The exit layers in use (empty without early exit)."""
        return self.config.exit_layers if self.config.early_exit else ()

    def exit_logits(self, h: torch.Tensor, index: int, *, calibrated: bool = True) -> torch.Tensor:
        """Logits ``[..., V]`` of exit ``index`` from the residual stream ``h [..., d]`` after
        block ``exits[index]`` (divided by its fitted temperature when ``calibrated``)."""
        z = self.lm_head(self.exit_norms[index](h))
        return z / self.exit_temperature[index].to(z.dtype) if calibrated else z

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: Any = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-layer logits; with ``exit_mode="sequence"`` in eval mode, the published
        sequence-level exit (see :meth:`sequence_exit`)."""
        if self.config.exit_mode == "sequence" and self.exits and not self.training:
            if cache is not None or attention_mask is not None:
                raise ValueError("exit_mode='sequence' (published) runs whole sequences only")
            return self.sequence_exit(tokens)[0]
        return super().forward(tokens, cache=cache, attention_mask=attention_mask)

    def sequence_exit(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Published exit: at each exit layer, the exit logits averaged over the whole sequence
        give one confidence (max softmax) per row; rows above the threshold return that layer's
        exit logits at every position. Non-causal: a position's output depends on later tokens
        (registered as an expected contract failure). Returns ``(logits, layers_used [B])``."""
        out = self.run(tokens, output_layers=True)
        assert out.layers is not None
        logits = out.logits.clone()
        used = torch.full((tokens.shape[0],), self.config.num_layers, device=tokens.device)
        done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        for i, layer in enumerate(self.exits):
            z = self.exit_logits(out.layers[layer + 1], i)
            conf = z.mean(dim=1).float().softmax(-1).amax(-1)  # [B]
            take = (conf > self.config.exit_confidence_threshold) & ~done
            logits[take] = z[take].to(logits.dtype)
            used[take] = layer + 1
            done |= take
        return logits, used

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The deep-supervision objective (class docstring) and its terms for logging.

        Only the final CE, the exit CEs and the surprise term are applied; the specialization,
        calibration, efficiency and coherence weights of the config are not (the calibration is
        fitted post hoc on a dev split; the other three have no defined target in plain LM
        pretraining or fight the LM loss — see the guide).
        """
        check_tensor(
            "targets", targets, shape=tuple(inputs.shape), dtype=(torch.int64, torch.int32)
        )
        h, _signals, layers = self._trunk(inputs, None, None, True)
        assert layers is not None
        w = self.lm_head.weight
        final = _fused_ce(h, w, targets)
        total = final
        metrics: dict[str, float] = {"ce": float(final.detach())}
        n_layers = self.config.num_layers
        for i, layer in enumerate(self.exits):
            ce = _fused_ce(self.exit_norms[i](layers[layer + 1]), w, targets)
            total = total + self.config.exit_loss_decay ** (n_layers - 1 - layer) * ce
            metrics[f"ce_exit{layer}"] = float(ce.detach())
        if self.surprise is not None and self.config.prediction_error_weight > 0:
            surprise, report = self.surprise(layers)
            total = total + self.config.prediction_error_weight * surprise
            metrics["surprise"] = float(report["surprise"])
        return total, metrics


def training_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """A trainer loss function: :meth:`NeuroLlama.training_loss`, or the fused CE of any other
    decoder (so one arm declaration serves the baseline and the treatments)."""
    if isinstance(model, NeuroLlama):
        return model.training_loss(inputs, targets)
    loss: torch.Tensor = model.loss(inputs, targets)  # type: ignore[operator]
    return loss, {}
