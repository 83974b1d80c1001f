"""Signal instrumentation: record g, β, γ per layer and token, summarize them, and "scan" a text.

* :func:`signal_statistics` — per layer and signal: mean, std, min, max; the variance decomposed
  into its part *across tokens within a sequence* and its part *across sequences* (a phasic,
  token-driven signal has most of its variance within sequences; a tonic one between them);
  and the fraction of (token, layer) entries with γ below a threshold (the paper's "metabolic
  gating", default 0.1).
* :func:`scan` — the signals of the trained, **unmodified** model on one text (the published
  "brain scans" replaced the trained tanh with Hardtanh(0, 3) first; we do not).
* :func:`token_response` — how far each position's signals sit from the rest of the sequence,
  in units of the rest's std (to ask whether a token such as "but" moves them).
* :func:`plot_scan` — heatmaps (rows: layers, columns: tokens), one panel per signal; needs
  matplotlib (the ``report`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neuro_core.validation import check_tensor
from neuro_models.ncn.control import Signals
from neuro_models.ncn.model import NCNModel

SIGNAL_NAMES = ("gain", "precision", "gate")


def signal_statistics(signals: Signals, *, gate_threshold: float = 0.1) -> dict[str, Any]:
    """Summary of signals ``[B, T, L]`` (each of g, β, γ), as plain Python numbers.

    Returns:
        ``{name: {"mean": [L], "std": [L], "min": [L], "max": [L], "var_within": [L],
        "var_between": [L]}, "gate_below": float, "gate_threshold": float}`` where
        ``var_within`` is the mean over sequences of the variance over tokens and
        ``var_between`` the variance over sequences of the per-sequence mean (population
        variances; ``var_within + var_between`` is the total variance over all entries).
    """
    out: dict[str, Any] = {}
    for name, s in zip(SIGNAL_NAMES, signals):
        check_tensor(name, s, ndim=3, floating=True)
        s = s.detach().double()
        per_seq = s.mean(dim=1)  # [B, L]
        out[name] = {
            "mean": s.mean(dim=(0, 1)).tolist(),
            "std": s.std(dim=(0, 1), unbiased=False).tolist(),
            "min": s.amin(dim=(0, 1)).tolist(),
            "max": s.amax(dim=(0, 1)).tolist(),
            "var_within": s.var(dim=1, unbiased=False).mean(dim=0).tolist(),
            "var_between": per_seq.var(dim=0, unbiased=False).tolist(),
        }
    out["gate_threshold"] = float(gate_threshold)
    out["gate_below"] = float((signals.gate < gate_threshold).float().mean())
    return out


@torch.no_grad()
def scan(model: NCNModel, tokens: torch.Tensor) -> Signals:
    """Signals ``[T, L]`` x3 of ``model`` on one sequence ``tokens [T]`` (eval mode, unmodified).

    Raises:
        ValueError: the model has no control network, or ``tokens`` is not 1-D.
    """
    check_tensor("tokens", tokens, ndim=1, dtype=(torch.int64, torch.int32))
    if model.control is None:
        raise ValueError("model has no control network (config.control is None)")
    was_training = model.training
    model.eval()
    try:
        signals = model.run(tokens[None]).signals
    finally:
        model.train(was_training)
    assert signals is not None
    return Signals(*(s[0] for s in signals))


def token_response(signal: torch.Tensor, position: int) -> torch.Tensor:
    """``(s[position] − mean_rest) / std_rest`` per layer for one signal ``[T, L]``.

    "rest" is every other position of the sequence; std is clamped below at 1e-8.
    """
    check_tensor("signal", signal, ndim=2, floating=True)
    t = signal.shape[0]
    if not -t <= position < t:
        raise ValueError(f"position must be in [{-t}, {t}), got {position}")
    position %= t
    rest = torch.cat([signal[:position], signal[position + 1 :]])
    return (signal[position] - rest.mean(0)) / rest.std(0, unbiased=False).clamp_min(1e-8)


def plot_scan(
    signals: Signals, labels: Sequence[str], path: str, *, title: str = "NCN signal scan"
) -> None:
    """Heatmaps of g, β, γ ``[T, L]`` with token ``labels`` on the x axis, saved to ``path``."""
    # A bare Figure (no pyplot): the caller's matplotlib backend is never switched.
    from matplotlib.figure import Figure

    t = signals.gain.shape[0]
    if len(labels) != t:
        raise ValueError(f"labels must have {t} entries (one per token), got {len(labels)}")
    fig = Figure(figsize=(max(6.0, 0.45 * t), 7.5), layout="constrained")
    axes = fig.subplots(3, 1)
    cmaps = {"gain": "viridis", "precision": "inferno", "gate": "coolwarm"}
    for ax, name, s in zip(axes, SIGNAL_NAMES, signals):
        im = ax.imshow(s.detach().float().T.cpu().numpy(), aspect="auto", cmap=cmaps[name])
        ax.set_ylabel(f"{name}\nlayer")
        ax.set_yticks(range(s.shape[1]))
        ax.set_xticks(range(t))
        ax.set_xticklabels(labels, rotation=70, fontsize=8)
        fig.colorbar(im, ax=ax)
    axes[0].set_title(title)
    fig.savefig(path, dpi=120)
