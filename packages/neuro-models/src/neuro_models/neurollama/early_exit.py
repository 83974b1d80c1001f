"""Per-token early exit that really skips layers, its calibration, and its measured compute.

Decoding token by token with a KV cache, token t runs blocks 0, 1, ... and after each exit layer l
computes the exit distribution ``softmax(W RMSNorm_l(x_{l+1,t}) / τ_l)``; if its max probability
reaches the threshold, t exits there: the remaining blocks compute **only the keys and values** of
t from the exited state ``x_{l+1,t}`` (state propagation, Schuster et al. 2022 "CALM"), so later
tokens still find t in every layer's cache, and nothing else of those blocks runs.

Compute is counted per token from the shapes actually executed (multiply-adds × 2):

    full block  2·d·(H + 2KV)·d_h + 4·H·d_h·S + 2·H·d_h·d + 6·d·F     (S keys seen)
    K/V only    4·d·KV·d_h
    exit check  2·d·V              final head  2·d·V

Wall time is measured too; at small widths the exit checks (d·V each) can cost more than the
blocks they skip, which the report says when it happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from neuro_core.validation import check_tensor
from neuro_models.decoder import Attention, Block, Decoder
from neuro_models.neurollama.model import NeuroLlama


@dataclass(frozen=True)
class ExitResult:
    """Per evaluated token: ``nll`` (nats), ``layers`` (blocks fully computed), ``flops``; and
    ``full_flops`` (the same tokens through every block), ``seconds`` (wall time)."""

    nll: torch.Tensor
    layers: torch.Tensor
    flops: torch.Tensor
    full_flops: torch.Tensor
    seconds: float

    @property
    def mean_nll(self) -> float:
        return float(self.nll.double().mean())

    @property
    def mean_layers(self) -> float:
        return float(self.layers.double().mean())

    @property
    def compute_fraction(self) -> float:
        """Executed FLOPs / FLOPs of the full model on the same tokens."""
        return float(self.flops.double().sum() / self.full_flops.double().sum())


def _block_flops(model: Decoder, keys: int) -> int:
    c = model.spec
    hd = c.head_dim
    return (
        2 * c.d_model * (c.n_heads + 2 * c.kv_heads) * hd
        + 4 * c.n_heads * hd * keys
        + 2 * c.n_heads * hd * c.d_model
        + 6 * c.d_model * c.ffn_dim
    )


def _check_decodable(model: Decoder) -> None:
    for i, block in enumerate(model.layers):
        if not isinstance(block.attn, Attention):
            raise ValueError(
                f"model: early exit with state propagation needs the 'attention' mixer in every "
                f"layer; layer {i} has {type(block.attn).__name__}"
            )


@torch.no_grad()
def early_exit_decode(
    model: NeuroLlama, tokens: torch.Tensor, threshold: float | None
) -> ExitResult:
    """Teacher-forced token-by-token decoding of ``tokens [B, T]`` with per-token exits.

    Scores targets ``tokens[:, 1:]``; ``threshold`` None runs the full model through the same code
    path without checking any exit (so its compute is exactly the full model's). Rows are decoded one at a time (batch 1), as a latency-bound
    decoder would.

    Raises:
        ValueError: a model without exits, a mixer other than ``"attention"``, bad ``tokens``.
    """
    check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
    if tokens.shape[1] < 2:
        raise ValueError("tokens must hold at least 2 positions (inputs and a target)")
    if not model.exits:
        raise ValueError("model has no exit layers (config.early_exit is off)")
    _check_decodable(model)
    thr = 2.0 if threshold is None else float(threshold)
    c, exits = model.spec, dict((layer, i) for i, layer in enumerate(model.exits))
    head = 2 * c.d_model * c.vocab_size
    kv_only = 4 * c.d_model * c.kv_heads * c.head_dim
    was_training = model.training
    model.eval()
    nll, used, flops, full = [], [], [], []
    start = time.perf_counter()
    try:
        for row in tokens:
            cache = model.new_cache(1, tokens.shape[1])
            for t in range(tokens.shape[1] - 1):
                ctx, _ = model._layout(1, 1, t, cache, None, tokens.device)
                x = model.embed(row[t : t + 1][None])
                cost, exited_at, logits = 0, None, None
                for layer, block in enumerate(model.layers):
                    assert isinstance(block, Block)
                    if exited_at is not None:
                        attn = block.attn
                        assert isinstance(attn, Attention)
                        attn.write_kv(block.attn_norm(x), ctx)
                        cost += kv_only
                        continue
                    x = block(x, ctx)
                    cost += _block_flops(model, t + 1)
                    if threshold is not None and layer in exits:
                        z = model.exit_logits(x[0, -1], exits[layer]).float()
                        cost += head
                        if float(z.softmax(-1).max()) >= thr:
                            exited_at, logits = layer + 1, z
                cache.length += 1
                if logits is None:
                    logits = model.lm_head(model.norm(x[0, -1])).float()
                    cost += head
                    exited_at = c.n_layers
                nll.append(float(torch.logsumexp(logits, -1) - logits[row[t + 1]]))
                used.append(exited_at)
                flops.append(cost)
                full.append(c.n_layers * _block_flops(model, t + 1) + head)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    as_t = torch.tensor
    return ExitResult(as_t(nll), as_t(used), as_t(flops), as_t(full), seconds)


@torch.no_grad()
def truncated_nll(model: Decoder, tokens: torch.Tensor, depth: int) -> torch.Tensor:
    """Per-target NLL ``[B·(T−1)]`` of a model cut after ``depth`` blocks: its final norm and
    head read the residual stream after block ``depth − 1`` (the baseline "truncated at the same
    depth" that early exit is compared against)."""
    check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
    if not 1 <= depth <= model.spec.n_layers:
        raise ValueError(f"depth must be in [1, {model.spec.n_layers}], got {depth}")
    was_training = model.training
    model.eval()
    try:
        out = model.run(tokens[:, :-1], output_layers=True)
        assert out.layers is not None
        logits = model.lm_head(model.norm(out.layers[depth])).float()
    finally:
        model.train(was_training)
    targets = tokens[:, 1:]
    return (torch.logsumexp(logits, -1) - logits.gather(-1, targets[..., None])[..., 0]).flatten()


@torch.no_grad()
def calibrate_exits(model: NeuroLlama, tokens: torch.Tensor) -> list[float]:
    """Fit each exit's temperature τ_l on ``tokens [B, T]`` (a dev split carved from train, never
    validation or test) by minimizing the NLL of the exit's distribution (neuro-objectives'
    ``fit_temperature``); stores and returns them."""
    from neuro_objectives import fit_temperature

    check_tensor("tokens", tokens, ndim=2, dtype=(torch.int64, torch.int32))
    was_training = model.training
    model.eval()
    temps: list[float] = []
    try:
        out = model.run(tokens[:, :-1], output_layers=True)
        assert out.layers is not None
        targets = tokens[:, 1:].flatten().long()
        for i, layer in enumerate(model.exits):
            z = model.exit_logits(out.layers[layer + 1], i, calibrated=False).float()
            with torch.enable_grad():
                tau = float(fit_temperature(z.flatten(0, 1), targets))
            model.exit_temperature[i] = tau
            temps.append(tau)
    finally:
        model.train(was_training)
    return temps
