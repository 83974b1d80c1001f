"""HebLLM on Tiny Shakespeare, character level: the spiking LM against unigram, bigram and an
iso-parameter Llama, with the ablations no neuromodulation, no sleep and the published rule
(CLAIM.md).

The spiking arms learn by local rules only (``neuro_models.hebllm.hebllm_local_loss``: STDP ×
activity neuromodulation, synaptic scaling, sleep); their parameter count is their synapse count
(:class:`LocalArm`). They ignore the learning rate of the shared sweep (every grid point trains
the same network), so their sweep runs are identical by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neuro_models import Llama, LlamaConfig, match_parameters
from neuro_models.experiment import Arm, Comparison, Experiment, Scale, smoke_scale
from neuro_models.hebllm import HebLLM, HebLLMConfig, hebllm_local_loss

VOCAB = 66  # Tiny Shakespeare's 65 distinct characters and the end-of-text id

#: Spiking network per scale; the cpu shape is the published example (500 associative, 100
#: inhibitory neurons; reference-systems.md §2.1), 4 output neurons per character.
NETWORKS = {
    "smoke": HebLLMConfig(vocab_size=VOCAB, n_associative=40, n_inhibitory=10, output_per_token=1,
                          sleep_every=4, calibration_tokens=256),
    "cpu": HebLLMConfig(vocab_size=VOCAB, n_associative=500, n_inhibitory=100, output_per_token=4,
                        sleep_every=16),
}  # fmt: skip

SCALES = {
    "smoke": smoke_scale(steps=5, batch_size=2, seq_len=16, dev_tokens=512, eval_tokens=256,
                         curve_tokens=64, lr_grid=(1e-3, 3e-3, 9e-3)),
    # ~20k training tokens per run (the CPU protocol of reference-systems.md §2.5), 3 seeds
    "cpu": Scale(name="cpu", steps=80, batch_size=4, seq_len=64, seeds=(0, 1, 2),
                 lr_grid=(1e-3, 3e-3, 1e-2), dev_tokens=8192, eval_tokens=8192, curve_tokens=2048,
                 note="20,480 characters per run, one pass; the spiking arms simulate 10 ms per "
                      "character."),
}  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class LocalArm(Arm):
    """An arm trained by local rules: its parameter count is the network's synapse count.
    ``keep_weights=False``: a HebLLM is no bundle kind, so its final weights are not saved as a
    bundle (the run records keep its statistics)."""

    keep_weights: bool = False

    def n_params(self) -> int:
        return HebLLM(dataclasses.replace(self.config, seed=0)).n_synapses


def _llama(scale: str, target: int) -> LlamaConfig:
    d, layers = (16, 1) if scale == "smoke" else (32, 4)
    base = LlamaConfig(vocab_size=VOCAB, d_model=d, n_layers=layers, n_heads=4, n_kv_heads=4,
                       ffn_dim=8, max_seq_len=SCALES[scale].seq_len)  # fmt: skip
    return match_parameters(target, base)


def analyze(arm: Arm, model: nn.Module, context: Mapping[str, Any]) -> dict[str, Any]:
    """Throughput, synapses and readout scalar of a spiking arm; the largest weight change from
    its initial weights (rebuilt from the run's seed)."""
    if not isinstance(model, HebLLM):
        return {}
    torch.manual_seed(context["seed"])
    init = HebLLM(arm.config)
    dw = max(float((a - b).abs().max()) for a, b in zip(model.weights, init.weights))
    t = model.throughput
    sec = max(t["seconds"], 1e-9)
    return {"max_abs_weight_change": dw, "synapses_start": init.n_synapses,
            "synapses_end": model.n_synapses, "readout_scale": float(model.scale),
            "token_steps_per_s": t["steps"] / sec, "events_per_s": t["events"] / sec,
            "tokens_per_s": t["tokens"] / sec}  # fmt: skip


def report(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict]]:
    """Throughput and synapse table; the published-rule and floor verdicts from the results."""
    floors = summary["floors"]
    lines = ["## Spiking arms: throughput, synapses, weight change", "",
             "| arm | seed | held-out NLL | token-steps/s | synaptic events/s | synapses start → end "
             "| max abs Δw | readout τ/α |", "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]  # fmt: skip
    spiking = [r for r in runs if r.get("analysis")]
    for r in sorted(spiking, key=lambda r: (r["arm"], r["seed"])):
        a = r["analysis"]
        lines.append(f"| {r['arm']} | {r['seed']} | {r['valid']['nll']:.4f} | "
                     f"{a['token_steps_per_s']:,.0f} | {a['events_per_s']:,.0f} | "
                     f"{a['synapses_start']:,} → {a['synapses_end']:,} | "
                     f"{a['max_abs_weight_change']:.3g} | {a['readout_scale']:.3g} |")  # fmt: skip
    verdicts = []
    pub = [r["analysis"]["max_abs_weight_change"] for r in spiking if r["arm"] == "published"]
    if pub:
        zero = max(pub) == 0.0
        verdicts.append({"claim": "published rule (03bbcba) never changes a weight",
                         "outcome": "confirmed" if zero else "refuted",
                         "reason": f"max |Δw| over seeds = {max(pub):.3g}"})  # fmt: skip
    snn = [r["valid"]["nll"] for r in runs if r["arm"] == "SNN"]
    if snn:
        mean = sum(snn) / len(snn)
        for floor in ("unigram_nll", "bigram_nll"):
            if floor in floors:
                below = all(x < floors[floor] for x in snn)
                verdicts.append({"claim": f"spiking LM beats the {floor[:-4]} floor",
                                 "outcome": "confirmed" if below else "refuted",
                                 "reason": f"SNN mean {mean:.4f} vs floor {floors[floor]:.4f} "
                                           f"({len(snn)} seeds, every seed below: {below})"})  # fmt: skip
    return "\n".join(lines), verdicts


def experiment(scale: str) -> Experiment:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    net = NETWORKS[scale]
    variants = {
        "SNN": ("STDP x activity neuromodulation, synaptic scaling, sleep", net),
        "no-mod": ("SNN with a constant modulator (no neuromodulation)",
                   dataclasses.replace(net, neuromodulation=False)),
        "no-sleep": ("SNN without sleep", dataclasses.replace(net, sleep_every=0)),
        "published": ("the published 03bbcba rule (trace never incremented)",
                      dataclasses.replace(net, rule="published")),
    }  # fmt: skip
    arms: list[Arm] = [
        LocalArm(name=n, description=d, config=c, build=HebLLM, loss=hebllm_local_loss)
        for n, (d, c) in variants.items()
    ]
    synapses = arms[0].n_params()
    arms.append(Arm(name="Llama", description="iso-parameter Llama (parameters = synapses), backprop",
                    config=_llama(scale, synapses), build=Llama))  # fmt: skip
    comparisons = [
        Comparison(claim="spiking LM vs iso-parameter transformer", arm="SNN", reference="Llama",
                   claimed=0.1, smallest_of_interest=0.05,
                   what="local learning against backprop at equal parameters and tokens"),
        Comparison(claim="neuromodulation helps", arm="SNN", reference="no-mod", claimed=0.05,
                   smallest_of_interest=0.02, what="activity modulator vs a constant",
                   headline=False),
        Comparison(claim="sleep helps", arm="SNN", reference="no-sleep", claimed=0.05,
                   smallest_of_interest=0.02, what="replay + pruning vs none", headline=False),
        Comparison(claim="our rule learns where the published one does not", arm="SNN",
                   reference="published", claimed=0.05, smallest_of_interest=0.02,
                   what="pair STDP vs the 03bbcba rule", headline=False),
    ]  # fmt: skip
    return Experiment(
        name="hebllm-tinyshakespeare",
        title="hebllm-tinyshakespeare: a spiking LM learned by STDP, neuromodulation and sleep",
        corpus="tinyshakespeare", substitute=None, tokenizer="char", vocab_size=VOCAB, arms=arms,
        reference="Llama", comparisons=comparisons, scale=SCALES[scale], analyze=analyze,
        report=report, extra={"spiking": "local rules only; LR ignored by the spiking arms"},
    )  # fmt: skip
