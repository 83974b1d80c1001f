"""Metaplasticity: learning-rate modulation by an external signal, around any ``torch.optim`` optimiser.

:class:`Metaplastic` runs the wrapped optimiser's step and then rescales the update it made:
θ ← θ_old + m ⊙ (θ_new − θ_old). ``m`` is a per-layer scalar or a per-parameter tensor set from
outside (a neuromodulator, a novelty signal, a consolidation state). Rescaling the *update*
rather than the gradient makes it an exact learning-rate modulation for any optimiser, adaptive
ones included (scaling Adam's gradient would be normalised away).

:func:`laborieux_modulation` gives the metaplastic factor of Laborieux et al. 2021 ("Synaptic
metaplasticity in binarized neural networks", eq. 2): m = 1 − tanh²(k·w), applied only to updates
that move a weight towards zero, so large, consolidated weights become hard to change.
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_core.validation import check_positive


class Metaplastic:
    """Wrap ``optimizer`` so each parameter's update is multiplied by its modulation.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.modulation: dict[torch.Tensor, float | torch.Tensor] = {}

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def set_group_modulation(self, group: int, value: float) -> None:
        """One scalar ≥ 0 for every parameter of ``param_groups[group]`` (per-layer modulation)."""
        if not 0 <= group < len(self.optimizer.param_groups):
            raise ValueError(
                f"group must be in [0, {len(self.optimizer.param_groups)}), got {group}"
            )
        check_positive("value", value, allow_zero=True)
        for p in self.optimizer.param_groups[group]["params"]:
            self.modulation[p] = float(value)

    def set_modulation(self, param: torch.Tensor, value: float | torch.Tensor) -> None:
        """A scalar or a tensor of ``param``'s shape (per-parameter modulation), values ≥ 0."""
        if isinstance(value, torch.Tensor):
            if value.shape != param.shape:
                raise ValueError(
                    f"value must have shape {tuple(param.shape)}, got {tuple(value.shape)}"
                )
            if bool((value < 0).any()):
                raise ValueError("value must be ≥ 0")
        else:
            check_positive("value", value, allow_zero=True)
        self.modulation[param] = value

    def clear(self) -> None:
        """Back to plain optimiser steps."""
        self.modulation.clear()

    @torch.no_grad()
    def step(self) -> None:
        before = {p: p.detach().clone() for p in self.modulation}
        self.optimizer.step()
        for p, m in self.modulation.items():
            p.copy_(before[p] + m * (p - before[p]))


def laborieux_modulation(
    param: nn.Parameter | torch.Tensor, update_direction: torch.Tensor, strength: float
) -> torch.Tensor:
    """m = 1 − tanh²(k·w) where the update moves w towards 0, else 1 (Laborieux et al. 2021).

    Args:
        param: weights w.
        update_direction: the sign-carrying update (e.g. ``−grad``) of the same shape.
        strength: k ≥ 0 (0 disables metaplasticity).
    """
    k = check_positive("strength", strength, allow_zero=True)
    towards_zero = (update_direction * param) < 0
    m = 1.0 - torch.tanh(k * param.detach()).pow(2)
    return torch.where(towards_zero, m, torch.ones_like(m))
