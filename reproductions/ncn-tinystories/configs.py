"""Arms and scales of the NCN TinyStories reproduction, all built from one preset per scale.

Arms (identical tokenizer, data order, token budget, schedule and optimizer):

    A   Llama-style baseline (neuro_models.llama.Llama: RoPE, SwiGLU, no biases), SwiGLU width
        matched to B's parameter count
    A'  the published GPT-2-like backbone without the control network, FFN width matched to B
    B   NCN, causal salience pooling, the paper's intended bias init (β≈1, γ≈0.95, g=1)
    C   NCN as published: non-causal pooling, signal biases zeroed by the global init
    D   NCN with causal pooling but the published (zeroed) biases: isolates the init bug

Parameter counts of every arm are asserted within 2% of B (:func:`check_matched`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from neuro_models.config import LlamaConfig
from neuro_models.llama import Llama
from neuro_models.ncn import ControlConfig, NCNConfig, NCNModel
from neuro_models.params import count_parameters, match_parameters

Scale = Literal["smoke", "cpu", "gpu"]
ARMS = ("A", "A'", "B", "C", "D")
NCN_ARMS = ("B", "C", "D")
TOLERANCE = 0.02

#: One-line description of each arm, used in the report.
ARM_DESCRIPTIONS = {
    "A": "Llama-style baseline (RoPE, SwiGLU, no biases), width matched",
    "A'": "published GPT-2-like backbone, no control network, FFN matched",
    "B": "NCN, causal pooling, intended bias init (ours)",
    "C": "NCN as published: non-causal pooling, zeroed biases",
    "D": "NCN, causal pooling, zeroed biases (init bug only)",
}

#: Tokens in one epoch of TinyStories V1 train in the published run (reference-systems §4.2).
EPOCH_TOKENS = 520_290_304


@dataclass(frozen=True, kw_only=True)
class ScalePreset:
    """The model shapes of one scale (budgets live in ``experiment.py``).

    Attributes:
        vocab_size: byte-level BPE vocabulary trained on the train split (the published run used
            GPT-2's 50,257; a 50k vocabulary would be 90%+ of a CPU-sized model).
        d_model, n_layers, n_heads, ffn_dim, seq_len: the NCN (arm B) backbone.
        ncn_hidden, ncn_heads: the control network.
        reg_weight: λ of the homeostatic term (0.01, published).
        dropout: 0 for every arm (the Llama baseline has none).
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    seq_len: int
    ncn_hidden: int
    ncn_heads: int
    reg_weight: float = 0.01
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, ScalePreset] = {
    # CI: exercises every code path in about a minute; the numbers mean nothing.
    "smoke": ScalePreset(vocab_size=512, d_model=32, n_layers=2, n_heads=2, ffn_dim=64,
                         seq_len=64, ncn_hidden=16, ncn_heads=2),
    # 2 CPU cores: ~0.6M-parameter models.
    "cpu": ScalePreset(vocab_size=1024, d_model=96, n_layers=4, n_heads=4, ffn_dim=384,
                       seq_len=128, ncn_hidden=32, ncn_heads=2),
    # The published shapes (d 256, 6 layers, 8 heads, F 1024, context 512, NCN hidden 64 with
    # 2 pooling heads) on one GPU.
    "gpu": ScalePreset(vocab_size=8192, d_model=256, n_layers=6, n_heads=8, ffn_dim=1024,
                       seq_len=512, ncn_hidden=64, ncn_heads=2),
}  # fmt: skip


def ncn_config(p: ScalePreset, arm: str) -> NCNConfig:
    """The NCNConfig of arm A', B, C or D (before parameter matching for A')."""
    control: ControlConfig | None
    if arm == "A'":
        control = None
    else:
        pooling = "noncausal" if arm == "C" else "causal"
        init = "intended" if arm == "B" else "published"
        control = ControlConfig(hidden=p.ncn_hidden, heads=p.ncn_heads, pooling=pooling,
                                init=init)  # type: ignore[arg-type]  # fmt: skip
    return NCNConfig(
        vocab_size=p.vocab_size, d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads,
        ffn_dim=p.ffn_dim, max_seq_len=p.seq_len, backbone="gpt2", control=control,
        dropout=p.dropout,
    )  # fmt: skip


def _count(model_or_config: nn.Module | LlamaConfig) -> int:
    return count_parameters(model_or_config).total


def _meta_ncn(cfg: NCNConfig) -> NCNModel:
    import torch

    with torch.device("meta"):
        return NCNModel(cfg)


def _match_gpt2_ffn(target: int, cfg: NCNConfig) -> NCNConfig:
    """A' with the GELU FFN width whose count is closest to ``target``.

    The count is linear in F: each unit adds ``2d + 1`` parameters per layer (two matrices and
    one bias), so the width is solved exactly rather than searched.
    """
    base = _count(_meta_ncn(cfg))
    per_unit = cfg.n_layers * (2 * cfg.d_model + 1)
    width = cfg.ffn_dim + round((target - base) / per_unit)
    return dataclasses.replace(cfg, ffn_dim=width)


def arm_configs(p: ScalePreset) -> dict[str, NCNConfig | LlamaConfig]:
    """Every arm's config, widths matched to arm B's parameter count."""
    target = _count(_meta_ncn(ncn_config(p, "B")))
    out: dict[str, NCNConfig | LlamaConfig] = {a: ncn_config(p, a) for a in ("B", "C", "D")}
    out["A'"] = _match_gpt2_ffn(target, ncn_config(p, "A'"))
    base = LlamaConfig(
        vocab_size=p.vocab_size, d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads,
        n_kv_heads=p.n_heads, ffn_dim=8, max_seq_len=p.seq_len,
    )  # fmt: skip
    out["A"] = match_parameters(target, base, tolerance=TOLERANCE)
    return {a: out[a] for a in ARMS}


def build(cfg: NCNConfig | LlamaConfig) -> nn.Module:
    """The model of one arm (call after seeding)."""
    return Llama(cfg) if isinstance(cfg, LlamaConfig) else NCNModel(cfg)


def parameter_counts(configs: dict[str, NCNConfig | LlamaConfig]) -> dict[str, dict[str, int]]:
    """``{arm: {"total", "embedding", "non_embedding", "control"}}`` from meta-device models."""
    import torch

    out = {}
    for arm, cfg in configs.items():
        with torch.device("meta"):
            model = build(cfg)
        c = count_parameters(model)
        ctrl = getattr(model, "control", None)
        n_ctrl = sum(q.numel() for q in ctrl.parameters()) if ctrl is not None else 0
        out[arm] = {"total": c.total, "embedding": c.embedding,
                    "non_embedding": c.non_embedding, "control": n_ctrl}  # fmt: skip
    return out


def check_matched(counts: dict[str, dict[str, int]], tolerance: float = TOLERANCE) -> None:
    """Raise ``AssertionError`` unless every arm is within ``tolerance`` of arm B."""
    target = counts["B"]["total"]
    for arm, c in counts.items():
        rel = abs(c["total"] - target) / target
        if rel > tolerance:
            raise AssertionError(
                f"arm {arm} has {c['total']:,} parameters, {rel:.2%} from B's {target:,} "
                f"(limit {tolerance:.0%})"
            )
