"""Aura's training loss and "Eval PPL", as published and as they should be.

Published (``notebookforaura.py``, reference-systems §3.3):

* **labels = inputs.** The notebook builds ``labels = input_ids.clone()`` and takes
  ``CrossEntropy(logits_t, x_t)``: the model is trained to output the token it is reading, a copy
  task that causal attention solves trivially (position t sees x_t). Label smoothing 0.2.
* The Colab script does shift the labels, but its "ppl" is ``exp`` of the training loss with label
  smoothing 0.1 and an entropy bonus of 0.05 subtracted (``AuraLoss``).
* **"Eval PPL"** = ``exp(min(mean_doc CE, 20))`` over the first 20 documents (≥ 10 tokens) of the
  *training* stream, each truncated and right-padded to ``max_seq_len``, pad labels ignored, the
  same unshifted labels, zero prosody, eval mode. It measures how well the copy task is
  memorised on documents the model was trained on.

Ours: next-token labels (``targets`` as given by the trainer, the inputs shifted by one), no label
smoothing; the honest evaluation is :func:`neuro_models.evaluate.evaluate` on held-out documents.
:func:`training_loss` with ``published_labels=True`` and :func:`notebook_eval_ppl` with
``shift=False`` reproduce the published protocol; the reproduction runs both on training and on
held-out documents, with and without the shift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neuro_core.validation import check_in_range, check_int, check_tensor
from neuro_models.decoder import DecoderConfig

#: Published notebook values: documents scored by its eval cell, the shortest document kept, and
#: the cap on the mean loss before exp (``math.exp(min(loss, 20))``).
NOTEBOOK_EVAL_DOCUMENTS = 20
NOTEBOOK_MIN_TOKENS = 10
NOTEBOOK_LOSS_CAP = 20.0
#: Ignored label (``nn.CrossEntropyLoss``'s default ``ignore_index``), used for padding.
IGNORE = -100


def training_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    published_labels: bool = False,
    label_smoothing: float = 0.0,
    entropy_bonus: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Trainer loss ``(model, inputs, targets) -> (loss, metrics)``:
    ``L = −(1/N) Σ_t [(1 − ε) log p(y_t | x_{≤t}) + (ε/V) Σ_v log p(v | x_{≤t})] − λ · H̄``,
    ``H̄ = (1/N) Σ_t H(p(· | x_{≤t}))``.

    Args:
        model: a decoder (``model(inputs) -> [B, T, V]``; its fused ``loss`` is used when
            ε = λ = 0).
        inputs: ``[B, T]`` token ids.
        targets: ``[B, T]`` next-token ids (ours: ``y_t = x_{t+1}``).
        published_labels: published (notebook): ``y_t = x_t`` (the inputs themselves;
            ``targets`` is ignored), the copy task.
        label_smoothing: ε (published: 0.2 in the notebook, 0.1 in the Colab script).
        entropy_bonus: λ (published Colab ``AuraLoss``: 0.05, subtracted, so the model is
            rewarded for flat predictions; the Colab progress bar's "ppl" is ``exp`` of this loss).

    Returns:
        ``(loss, {"ce": smoothed CE, "entropy": H̄ (when λ > 0)})``.
    """
    check_tensor("inputs", inputs, ndim=2, dtype=(torch.int64, torch.int32))
    check_tensor("targets", targets, shape=tuple(inputs.shape), dtype=(torch.int64, torch.int32))
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    check_in_range("entropy_bonus", entropy_bonus, 0.0, float("inf"), high_open=True)
    labels = inputs if published_labels else targets
    loss_fn = getattr(type(model), "loss", None)
    if label_smoothing == 0.0 and entropy_bonus == 0.0 and callable(loss_fn):
        loss: torch.Tensor = model.loss(inputs, labels)  # type: ignore[operator]
        return loss, {"ce": float(loss.detach())}
    logits = model(inputs).float().flatten(0, 1)
    ce = F.cross_entropy(logits, labels.flatten().long(), label_smoothing=label_smoothing)
    metrics = {"ce": float(ce.detach())}
    if entropy_bonus == 0.0:
        return ce, metrics
    logp = logits.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1).mean()
    metrics["entropy"] = float(entropy.detach())
    return ce - entropy_bonus * entropy, metrics


@torch.no_grad()
def notebook_eval_ppl(
    model: nn.Module,
    documents: Sequence[Sequence[int]],
    *,
    pad_id: int,
    shift: bool = False,
    n_documents: int = NOTEBOOK_EVAL_DOCUMENTS,
    min_tokens: int = NOTEBOOK_MIN_TOKENS,
) -> float:
    """The notebook's "Eval PPL": ``exp(min((1/n) Σ_docs CE_doc, 20))``.

    Each of the first ``n_documents`` documents with at least ``min_tokens`` tokens is truncated
    to ``max_seq_len``, right-padded with ``pad_id`` (pad labels ignored; the notebook ignores
    every position holding ``pad_id``, also real ones) and scored alone in eval mode; ``CE_doc``
    is its mean CE over labelled positions. The notebook passes its *training* stream, so this
    scores training documents; pass held-out ones for the comparison.

    Args:
        model: a decoder with ``spec.max_seq_len`` and ``spec.vocab_size``.
        documents: token lists, in stream order.
        pad_id: padding id.
        shift: False: labels = inputs (published, the copy task); True: next-token labels.
        n_documents, min_tokens: published 20 and 10.

    Returns:
        The perplexity (float). Raises ``ValueError`` when no document qualifies.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, DecoderConfig):
        raise ValueError(
            f"model must be a decoder (with a DecoderConfig spec), got {type(model).__name__}"
        )
    check_int("pad_id", pad_id, low=0, high=spec.vocab_size - 1)
    if n_documents < 1 or min_tokens < 1:
        raise ValueError(f"n_documents and min_tokens must be ≥ 1, got {n_documents}, {min_tokens}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses: list[float] = []
    try:
        for doc in documents:
            if len(losses) >= n_documents:
                break
            if len(doc) < min_tokens:
                continue
            ids = list(doc)[: spec.max_seq_len]
            ids += [pad_id] * (spec.max_seq_len - len(ids))
            x = torch.tensor([ids], dtype=torch.long, device=device)
            labels = x.masked_fill(x == pad_id, IGNORE)
            logits = model(x).float()
            if shift:
                logits, labels = logits[:, :-1], labels[:, 1:]
            ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
            if not torch.isnan(ce):
                losses.append(float(ce))
    finally:
        model.train(was_training)
    if not losses:
        raise ValueError(f"documents: none has ≥ {min_tokens} tokens and a labelled position")
    return math.exp(min(sum(losses) / len(losses), NOTEBOOK_LOSS_CAP))
