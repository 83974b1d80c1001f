"""A sparse place-cell code of embeddings: top-k of a projection, read back as a residual.

For an embedding ``e [D]`` and ``P`` place cells with prototypes ``W_p [P, D]``::

    z = W_p e + b_p                                   [P]   cell drive
    a_j = σ(z_j) · 1[j ∈ top-k(z)]                    [P]   exactly k cells active
    y = e + s · (W_r a + b_r)                         [D]   residual read-out, s = 0.1

with ``k = max(1, ⌊ρ P⌋)`` for sparsity ``ρ = 0.03``. Place fields (O'Keefe & Dostrovsky 1971)
are sparse: a few percent of CA1 cells fire at any location, which is where the 3 % comes from.

Source: Aura's ``PlaceCellSemanticEncoder`` (auralmn/aura-snn-rag,
``src/core/language_zone/place_cell_encoder.py``; reference-systems §3.1), which applies the map
above to token embeddings with ``P = 2000`` (k = 60), ``s = 0.1`` and ``nn.Linear`` for both
projections. What it is, and where it goes wrong:

* **k can be zero.** Aura computes ``k = int(0.03 · P)``, which is 0 for every ``P ≤ 33``: then no
  cell is active and the "encoder" silently returns ``e + 0.1 b_r``, a constant shift. ``int`` also
  truncates float products (``int(0.29 · 100) = 28``). Ours: ``k = max(1, ⌊ρ P + 10⁻⁹⌋)``, so at
  least one cell fires and products that are integers in decimal stay so (P = 256 gives k = 7, as
  in the spec's CPU configuration, P = 2000 gives 60). ``k_rule="published"`` keeps ``int(ρ P)``.
* **It is an embedding table, not a map.** Applied to token embeddings, ``y`` is a deterministic
  function of the token id: a reparameterised input embedding, which with a tied output head acts
  as a partly untied one (reference-systems §3.1). Nothing spatial is encoded. We keep the map and
  say so; it can be applied to any ``[..., D]`` input (hidden states, mean-pooled documents).
* **Dead cells.** Only the k selected cells receive a gradient, so a prototype that never wins
  never moves. This is inherent to hard top-k; ``learnable_prototypes=False`` fixes the
  prototypes at their random initialisation and trains only the read-out, which has no dead
  cells to worry about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from neuro_core.validation import check_in_range, check_int, check_positive, check_tensor

KRule = Literal["at_least_one", "published"]
_K_RULES: tuple[str, ...] = ("at_least_one", "published")


@dataclass(frozen=True, kw_only=True)
class PlaceCellParams:
    """Options of :class:`PlaceCellEncoder`.

    Attributes:
        n_cells: number of place cells ``P``. Default 2000 = Aura's notebook configuration.
        sparsity: target fraction ``ρ`` of active cells, in ``(0, 1]``. Default 0.03 = Aura's.
        residual_scale: ``s`` in ``y = e + s · read-out``. Default 0.1 = Aura's.
        learnable_prototypes: train ``W_p, b_p`` (Aura) or keep them fixed at their random
            initialisation (buffers; only the read-out learns).
        k_rule: ``"at_least_one"`` (ours, ``max(1, ⌊ρ P⌋)``) or ``"published"`` (``int(ρ P)``,
            0 for ``P ≤ 33``).
    """

    n_cells: int = 2000
    sparsity: float = 0.03
    residual_scale: float = 0.1
    learnable_prototypes: bool = True
    k_rule: KRule = "at_least_one"

    def __post_init__(self) -> None:
        check_int("n_cells", self.n_cells)
        check_in_range("sparsity", self.sparsity, 0.0, 1.0, low_open=True)
        check_positive("residual_scale", self.residual_scale, allow_zero=True)
        if self.k_rule not in _K_RULES:
            raise ValueError(f"k_rule must be one of {_K_RULES}, got {self.k_rule!r}")

    @property
    def k(self) -> int:
        """Number of active cells per input."""
        if self.k_rule == "published":
            return int(self.n_cells * self.sparsity)
        # The 1e-9 keeps decimal products exact (0.29 · 100 is 28.999999999999996 in binary).
        return max(1, math.floor(self.n_cells * self.sparsity + 1e-9))


class PlaceCode(NamedTuple):
    """Output of :func:`place_cell_code`.

    Attributes:
        output: ``[..., D]`` the embedding plus the scaled read-out.
        activity: ``[..., P]`` the sparse code ``a`` (k entries are ``σ(z_j) > 0``, the rest 0).
        indices: ``[..., k]`` long, the active cells, in descending order of drive.
    """

    output: torch.Tensor
    activity: torch.Tensor
    indices: torch.Tensor


def place_cell_code(
    embeddings: torch.Tensor,
    prototypes: torch.Tensor,
    bias: torch.Tensor,
    readout: torch.Tensor,
    readout_bias: torch.Tensor,
    *,
    k: int,
    residual_scale: float,
) -> PlaceCode:
    """Reference place-cell code ``y = e + s (W_r a + b_r)``, ``a = σ(z) ⊙ 1[top-k(z)]``.

    Args:
        embeddings: ``e`` ``[..., D]``, floating point.
        prototypes: ``W_p`` ``[P, D]``.
        bias: ``b_p`` ``[P]``.
        readout: ``W_r`` ``[D, P]``.
        readout_bias: ``b_r`` ``[D]``.
        k: active cells, ``0 ≤ k ≤ P`` (0 only reproduces the published degenerate case).
        residual_scale: ``s ≥ 0``.

    Returns:
        :class:`PlaceCode`. Exactly ``k`` entries of ``activity`` are selected per input; they are
        ``σ(z_j)``, which is positive unless it underflows (``z_j`` below about −88.7 in float32).
    """
    e = check_tensor("embeddings", embeddings, floating=True, finite=True)
    if e.ndim < 1:
        raise ValueError(
            f"embeddings must have at least 1 dim [..., D], got shape {tuple(e.shape)}"
        )
    d = e.shape[-1]
    w_p = check_tensor("prototypes", prototypes, ndim=2, dtype=e.dtype, device=e.device)
    p = w_p.shape[0]
    if w_p.shape[1] != d:
        raise ValueError(
            f"prototypes must have shape ({p}, {d}) to match embeddings, got {tuple(w_p.shape)}"
        )
    check_tensor("bias", bias, shape=(p,), dtype=e.dtype, device=e.device)
    check_tensor("readout", readout, shape=(d, p), dtype=e.dtype, device=e.device)
    check_tensor("readout_bias", readout_bias, shape=(d,), dtype=e.dtype, device=e.device)
    check_int("k", k, low=0, high=p)
    check_positive("residual_scale", residual_scale, allow_zero=True)

    z = e @ w_p.T + bias
    top, idx = torch.topk(z, k, dim=-1)
    activity = torch.zeros_like(z).scatter(-1, idx, torch.sigmoid(top))
    out = e + residual_scale * (activity @ readout.T + readout_bias)
    return PlaceCode(out, activity, idx)


class PlaceCellEncoder(nn.Module):
    """Place-cell code of ``[..., D]`` inputs (see :func:`place_cell_code` for the equation).

    Initialisation is ``nn.Linear``'s (uniform in ``±1/√fan_in``) for both projections, as in Aura.
    With ``learnable_prototypes=False`` the prototypes and their bias are buffers.

    Args:
        dim: input and output width ``D``.
        params: :class:`PlaceCellParams`.
    """

    def __init__(self, dim: int, params: PlaceCellParams | None = None) -> None:
        super().__init__()
        check_int("dim", dim)
        self.dim = dim
        self.params = params if params is not None else PlaceCellParams()
        proj = nn.Linear(dim, self.params.n_cells)
        if self.params.learnable_prototypes:
            self.prototypes = nn.Parameter(proj.weight.detach().clone())
            self.bias = nn.Parameter(proj.bias.detach().clone())
        else:
            self.register_buffer("prototypes", proj.weight.detach().clone())
            self.register_buffer("bias", proj.bias.detach().clone())
        self.readout = nn.Linear(self.params.n_cells, dim)

    def forward(self, x: torch.Tensor) -> PlaceCode:
        """``x [..., D]`` → :class:`PlaceCode` (``output [..., D]``, ``activity [..., P]``)."""
        check_tensor("x", x, floating=True)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [..., {self.dim}], got {tuple(x.shape)}")
        return place_cell_code(
            x,
            self.prototypes,
            self.bias,
            self.readout.weight,
            self.readout.bias,
            k=self.params.k,
            residual_scale=self.params.residual_scale,
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, params={self.params} (k={self.params.k})"
