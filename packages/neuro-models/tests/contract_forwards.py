"""Forwards shared by the models' contract catalogues: through the KV cache, and left-padded."""

from __future__ import annotations

import torch


def cached_forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Prefill 2 tokens, then one token at a time through the decoder's KVCache."""
    cache = module.new_cache(x.shape[0], x.shape[1])  # type: ignore[operator]
    parts = [module(x[:, :2], cache=cache)]
    parts += [module(x[:, t : t + 1], cache=cache) for t in range(2, x.shape[1])]
    return torch.cat(parts, dim=1)


def padded_forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Row b left-padded by b % 3 positions; only the real positions are compared."""
    mask = torch.ones_like(x, dtype=torch.bool)
    for b in range(x.shape[0]):
        mask[b, : b % 3] = False
    out = module(x.masked_fill(~mask, 0), attention_mask=mask)
    return out.masked_fill(~mask[..., None], 0.0)
