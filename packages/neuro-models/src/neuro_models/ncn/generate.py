"""Sampling from an :class:`~neuro_models.ncn.model.NCNModel`: a tensor-in, tensor-out shorthand
for the one :func:`neuro_models.generate.generate`.

The prompt is processed in one call that fills the cache (attention K/V of every layer and the
salience pooling's K/V), then one token per call. With causal pooling each step's signals equal
those a full forward pass over the whole prefix would give; see :meth:`NCNModel.run` for what a
non-causal control network sees.
"""

from __future__ import annotations

import torch

from neuro_core.validation import check_positive, check_tensor
from neuro_models.generate import SamplingConfig
from neuro_models.generate import generate as _generate
from neuro_models.ncn.model import NCNModel


@torch.no_grad()
def generate(
    model: NCNModel,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Append ``max_new_tokens`` sampled tokens to ``prompt``.

    Args:
        model: the model (put it in eval mode first for deterministic dropout-free sampling).
        prompt: ``[B, T0]`` token ids, ``T0 ≥ 1``.
        max_new_tokens: number of tokens to add (``T0 + max_new_tokens ≤ max_seq_len``).
        temperature: softmax temperature; 0 means greedy (argmax).
        top_k: sample among the k most likely tokens only (None: all).
        generator: RNG for sampling.
        use_cache: False recomputes the whole prefix each step (the slow reference the tests
            compare the cached path against).

    Returns:
        ``[B, T0 + max_new_tokens]`` token ids.
    """
    check_tensor("prompt", prompt, ndim=2, dtype=(torch.int64, torch.int32))
    if prompt.shape[1] < 1:
        raise ValueError("prompt must hold at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    if prompt.shape[1] + max_new_tokens > model.config.max_seq_len:
        raise ValueError(
            f"max_new_tokens: {prompt.shape[1]} + {max_new_tokens} exceeds "
            f"max_seq_len={model.config.max_seq_len}"
        )
    check_positive("temperature", temperature, allow_zero=True)
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1 or None, got {top_k}")
    if max_new_tokens == 0:
        return prompt.long()
    out = _generate(
        model,
        prompt,
        SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k),
        generator=generator,
        use_cache=use_cache,
    )
    new = torch.tensor(out, dtype=torch.long, device=prompt.device)
    return torch.cat([prompt.long(), new], dim=1)
