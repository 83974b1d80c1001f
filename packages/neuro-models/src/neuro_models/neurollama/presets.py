"""Exact parameter accounting of NeuroLlama configurations, built on the meta device.

:func:`overhead_table` splits a model's parameters into the Llama backbone and each mechanism by
parameter name, so the table is read off the very modules the model builds (nothing is allocated,
nothing is estimated). Population voting *shrinks* the backbone (W_o maps the voted d_h-vector,
not the H·d_h concatenation), which shows as a negative backbone difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from neuro_models.neurollama.config import NeuroLlamaConfig
from neuro_models.neurollama.model import NeuroLlama

#: name pattern -> mechanism (first match wins); everything else is the backbone.
_GROUPS: tuple[tuple[str, str], ...] = (
    (r"^layers\.\d+\.attn\.attn\.scaling\.", "synaptic scaling (static)"),
    (r"^layers\.\d+\.attn\.attn\.gates\.", "neuromodulated gates (context_dependent)"),
    (r"^layers\.\d+\.attn\.attn\.pair\.", "synaptic matrix (full_matrix)"),
    (r"^layers\.\d+\.attn\.attn\.inhibition\.", "lateral inhibition"),
    (r"^layers\.\d+\.attn\.attn\.habituation\.", "habituation"),
    (r"^layers\.\d+\.attn\.attn\.population\.", "population tuning"),
    (r"^layers\.\d+\.attn\.attn\.(entropy_vote|confidence_vote)\.", "voting"),
    (r"^layers\.\d+\.attn\.attn\.(memory|temperature)\.", "other attention mechanisms"),
    (r"^layers\.\d+\.attn\.attn\.(qkv|out)\.", "Hebbian attention (whole mixer in its layers)"),
    (r"^surprise\.", "prediction heads (predictive coding)"),
    (r"^exit_norms\.", "exit heads (norms; the output matrix is shared)"),
)


@dataclass(frozen=True)
class OverheadRow:
    """One mechanism: ``total`` parameters and ``per_layer`` (per layer that holds it; None if
    not per layer)."""

    name: str
    total: int
    per_layer: int | None


def build_meta(config: NeuroLlamaConfig) -> NeuroLlama:
    """``NeuroLlama(config)`` on the meta device: shapes only."""
    with torch.device("meta"):
        return NeuroLlama(config)


def parameter_groups(model: NeuroLlama) -> dict[str, int]:
    """Parameters per group (each tied tensor counted once)."""
    return {g: n for g, (n, _) in _groups(model).items()}


def _groups(model: NeuroLlama) -> dict[str, tuple[int, set[int]]]:
    """group -> (parameters, indices of the layers holding them)."""
    out: dict[str, tuple[int, set[int]]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        group = next((g for pat, g in _GROUPS if re.match(pat, name)), "backbone")
        n, layers = out.get(group, (0, set()))
        m = re.match(r"^layers\.(\d+)\.", name)
        if m:
            layers.add(int(m.group(1)))
        out[group] = (n + p.numel(), layers)
    return out


def overhead_table(config: NeuroLlamaConfig) -> list[OverheadRow]:
    """Rows: the backbone with neuro off, the backbone as built (population voting shrinks it),
    each mechanism present, and the total."""
    model = build_meta(config)
    plain = parameter_groups(build_meta(config.neuro_off()))["backbone"]
    groups = _groups(model)
    rows = [OverheadRow("Llama backbone (neuro off)", plain, None)]
    rows.append(OverheadRow("backbone as built − neuro off", groups["backbone"][0] - plain, None))
    for _, name in _GROUPS:
        if name in groups:
            total, layers = groups[name]
            if name.startswith("prediction heads"):
                layers = set(range(config.num_layers))  # one head per predicted layer
            per_layer = total // len(layers) if layers and total % len(layers) == 0 else None
            rows.append(OverheadRow(name, total, per_layer))
    rows.append(OverheadRow("total", sum(n for n, _ in groups.values()), None))
    return rows


def format_table(rows: list[OverheadRow]) -> str:
    """Markdown table of :func:`overhead_table` rows."""
    lines = ["| part | parameters | per layer |", "|---|---:|---:|"]
    for r in rows:
        per = "" if r.per_layer is None else f"{r.per_layer:,}"
        lines.append(f"| {r.name} | {r.total:,} | {per} |")
    return "\n".join(lines)


def count_total(config: NeuroLlamaConfig) -> int:
    """Every trainable parameter of ``NeuroLlama(config)`` (training-only heads included)."""
    return sum(parameter_groups(build_meta(config)).values())


def match_ffn(config: NeuroLlamaConfig, target: int, tolerance: float = 0.02) -> NeuroLlamaConfig:
    """``config`` with the SwiGLU width (a multiple of 8) whose total count is closest to
    ``target`` (the count is linear in ``ffn_dim``: 3·d·L per unit).

    Raises:
        ValueError: no multiple of 8 lands within ``tolerance`` of ``target``.
    """
    per_unit = 3 * config.hidden_dim * config.num_layers
    fixed = count_total(config) - per_unit * config.ffn_dim
    exact = (target - fixed) / per_unit
    best = max(8, 8 * round(exact / 8))
    total = fixed + per_unit * best
    if abs(total - target) / target > tolerance:
        raise ValueError(
            f"target: cannot match {target:,} parameters within {tolerance:.0%} by ffn_dim "
            f"(best {best} gives {total:,})"
        )
    return config.replace(ffn_dim=best)
