"""HebLLM's four neuron populations with their published parameters, for :class:`Network`.

HebLLM (reference-systems.md §2.1, initial commit 03bbcba) integrates
``v ← v + dt·(−(v − v_rest)/τ_m + I)`` with τ_m = 20 ms and dt = 1 ms, i.e. the Euler form of
:mod:`neuro_spiking.lif` (β = 1 − dt/τ_m), spikes when ``v ≥ θ`` outside the refractory period
and resets to ``v_rest``:

============  =====  ======  ===============  =============================================
role          θ      v_rest  refractory (ms)  extra
============  =====  ======  ===============  =============================================
sensory       0.5    0.0     2                one neuron per token id
associative   0.6    −0.1    4                threshold θ + a, a += 0.1 per spike, τ_a = 500 ms
inhibitory    0.4    −0.2    3                outgoing weight used as −1.2·w
output        0.8    −0.1    5                one neuron per token id
============  =====  ======  ===============  =============================================

Differences from the published neurons, all below float noise at dt = 1 ms or a fix:

* the adaptation decays by ``1 − dt/τ_a`` (Euler, like the membrane; published ``exp(−dt/τ_a)``,
  2·10⁻⁶ apart per step) and the threshold of step t is ``θ + a_{t−1}`` (published: decayed once
  more before the comparison);
* a refractory neuron is held at ``v_rest`` (published: it kept integrating, and refractoriness
  was checked at the delivery time of each input);
* synaptic input arrives after its delay (published: delays ignored, §2.2 bug 3).
"""

from __future__ import annotations

from typing import Literal

from neuro_spiking.adaptive_lif import AdaptiveLIFParams
from neuro_spiking.lif import LIFParams
from neuro_spiking.network import Population

HebLLMRole = Literal["sensory", "associative", "inhibitory", "output"]

#: role → (θ, v_rest, refractory_ms), reference-systems.md §2.1.
HEBLLM_NEURONS: dict[str, tuple[float, float, float]] = {
    "sensory": (0.5, 0.0, 2.0),
    "associative": (0.6, -0.1, 4.0),
    "inhibitory": (0.4, -0.2, 3.0),
    "output": (0.8, -0.1, 5.0),
}
#: HebLLM's membrane time constant (ms), the same for every role.
HEBLLM_TAU_MEM_MS = 20.0
#: Associative threshold adaptation: +0.1 per spike, decaying with τ = 500 ms.
HEBLLM_ADAPT_INCREMENT = 0.1
HEBLLM_TAU_ADAPT_MS = 500.0
#: Inhibitory neurons deliver −1.2·w.
HEBLLM_INHIBITION_GAIN = 1.2


def hebllm_population(
    role: HebLLMRole,
    *,
    size: int,
    name: str | None = None,
    dt_ms: float = 1.0,
    tau_syn_ms: float = 0.0,
) -> Population:
    """A :class:`~neuro_spiking.network.Population` of HebLLM's ``role`` (table above).

    Args:
        role: ``"sensory"``, ``"associative"`` (adaptive threshold), ``"inhibitory"`` (kind
            inhibitory, weight gain 1.2) or ``"output"``.
        size: number of neurons.
        name: population name (default: the role).
        dt_ms: step (HebLLM: 1 ms; with another step the published input scaling ``dt·I`` is
            not reproduced, since the network adds each weight once).
        tau_syn_ms: synaptic time constant onto the population (0: delta synapses, as published).
    """
    if role not in HEBLLM_NEURONS:
        raise ValueError(f"role must be one of {tuple(HEBLLM_NEURONS)}, got {role!r}")
    theta, v_rest, refractory = HEBLLM_NEURONS[role]
    common = dict(
        tau_mem_ms=HEBLLM_TAU_MEM_MS,
        dt_ms=dt_ms,
        v_threshold=theta,
        v_rest=v_rest,
        v_reset=v_rest,
        reset="hard",
        refractory_ms=refractory,
        integrator="euler",
    )
    params: LIFParams | AdaptiveLIFParams
    if role == "associative":
        params = AdaptiveLIFParams(
            **common,  # type: ignore[arg-type]
            tau_adapt_ms=HEBLLM_TAU_ADAPT_MS,
            adapt_increment=HEBLLM_ADAPT_INCREMENT,
        )
    else:
        params = LIFParams(**common)  # type: ignore[arg-type]
    inhibitory = role == "inhibitory"
    return Population(
        name=name if name is not None else role,
        size=size,
        lif=params,
        kind="inhibitory" if inhibitory else "excitatory",
        tau_syn_ms=tau_syn_ms,
        weight_gain=HEBLLM_INHIBITION_GAIN if inhibitory else 1.0,
    )


__all__ = [
    "HEBLLM_ADAPT_INCREMENT",
    "HEBLLM_INHIBITION_GAIN",
    "HEBLLM_NEURONS",
    "HEBLLM_TAU_ADAPT_MS",
    "HEBLLM_TAU_MEM_MS",
    "HebLLMRole",
    "hebllm_population",
]
