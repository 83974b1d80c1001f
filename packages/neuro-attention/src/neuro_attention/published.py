"""Published behaviours kept behind flags, side by side with ours, and the contract table.

Each entry pairs our default form of a mechanism with its published form (a constructor flag) and
says why the published form breaks which contract of :mod:`neuro_core.testing.contracts`. The
package's tests register both forms in the contract catalogue, the published one with
``expect_fail`` set to :attr:`PublishedBehaviour.breaks`, so a published form that stops leaking,
or a fix that starts leaking, fails the tests.

:func:`contract_table` runs the checks (nothing is hard-coded) and returns one row per mechanism
and form; ``python -m neuro_attention.published`` prints it::

    mechanism                       form       causal  batch-indep.  call-indep.  compiles

Published behaviours of NeuroLlama that live in other packages are listed in
:data:`ELSEWHERE` (e.g. the Hebbian state carried across calls is ``HebbianAttention`` in
neuro-plasticity; component packages do not import each other).

The contract specs and checks come from :mod:`neuro_core.testing`, imported only when
:func:`published_behaviours` or :func:`contract_table` is called (library code does not import
test helpers at import time); ``neuro_attention`` does not import this module.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from neuro_attention.habituation import HabituatingAttention
from neuro_attention.layer import NeuroAttention, NeuroAttentionConfig
from neuro_attention.synaptic import NeuromodulatedAttention

if TYPE_CHECKING:
    from neuro_core.testing import ContractSpec

#: The table's columns: contract name → column title.
TABLE_CONTRACTS: dict[str, str] = {
    "causality": "causal",
    "batch_independence": "batch-indep.",
    "call_independence": "call-indep.",
    "compile": "compiles",
}

#: Published behaviours named in issue 13 that are implemented outside neuro-attention.
ELSEWHERE: dict[str, str] = {
    "Hebbian state carried across calls": "neuro_plasticity.HebbianAttention (neuro-plasticity)",
    "sequence-level early exit": "the NeuroLlama model (neuro-models)",
}

_B, _H, _HKV, _D, _DM = 3, 4, 2, 8, 16


@dataclass(frozen=True, kw_only=True)
class PublishedBehaviour:
    """One mechanism in our form and in its published form.

    Attributes:
        mechanism: class name.
        flag: the constructor argument that selects the published form.
        reason: why the published form breaks the contracts in ``breaks``.
        breaks: contracts the published form is expected to fail.
        ours: contract spec of our (default) form; expected to pass every contract.
        published: contract spec of the published form (``expect_fail = breaks``).
    """

    mechanism: str
    flag: str
    reason: str
    breaks: frozenset[str]
    ours: ContractSpec
    published: ContractSpec


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def _qkv(gen: torch.Generator, b: int, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _randn(gen, b, t, _H, _D), _randn(gen, b, t, _HKV, _D), _randn(gen, b, t, _HKV, _D)


def _first(m: nn.Module, x: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return m(*x)[0]


def _pair(  # type: ignore[no-untyped-def]
    name: str, build_ours, build_published, make_input, breaks: frozenset[str], **kw
) -> tuple[ContractSpec, ContractSpec]:
    from neuro_core.testing import ContractSpec

    ours = ContractSpec(
        name=f"neuro_attention.{name}", build=build_ours, make_input=make_input, **kw
    )
    published = ContractSpec(
        name=f"neuro_attention.{name}[published]",
        build=build_published,
        make_input=make_input,
        expect_fail=breaks,
        **kw,
    )
    return ours, published


def published_behaviours() -> tuple[PublishedBehaviour, ...]:
    """The published behaviours of neuro-attention, each with both contract specs."""
    out = []
    breaks = frozenset({"causality"})
    ours, pub = _pair(
        "NeuromodulatedAttention",
        lambda: NeuromodulatedAttention(_DM, _H),
        lambda: NeuromodulatedAttention(_DM, _H, context="sequence_mean"),
        lambda g, b, t: _randn(g, b, t, _DM),
        breaks,
        compile=True,
    )
    out.append(
        PublishedBehaviour(
            mechanism="NeuromodulatedAttention",
            flag='context="sequence_mean"',
            reason=(
                "the gates come from the mean of the layer input over the whole sequence, so "
                "every position sees future tokens"
            ),
            breaks=breaks,
            ours=ours,
            published=pub,
        )
    )
    breaks = frozenset({"causality"})
    ours, pub = _pair(
        "NeuroAttention[gates]",
        lambda: NeuroAttention(
            NeuroAttentionConfig(
                d_model=_DM, num_heads=_H, num_kv_heads=_HKV, neuromodulated_gates=True
            )
        ),
        lambda: NeuroAttention(
            NeuroAttentionConfig(
                d_model=_DM,
                num_heads=_H,
                num_kv_heads=_HKV,
                neuromodulated_gates=True,
                gate_context="sequence_mean",
            )
        ),
        lambda g, b, t: _randn(g, b, t, _DM),
        breaks,
        forward=lambda m, x: m(x).out,
    )
    out.append(
        PublishedBehaviour(
            mechanism="NeuroAttention[gates]",
            flag='gate_context="sequence_mean"',
            reason="the layer's neuromodulated gates use the whole-sequence mean (see above)",
            breaks=breaks,
            ours=ours,
            published=pub,
        )
    )
    # the buffer persists across calls: a second call (the check's perturbed input, or the
    # same input again) sees counts left by the first, whatever was changed in between
    breaks = frozenset({"causality", "batch_independence", "call_independence", "compile"})
    ours, pub = _pair(
        "HabituatingAttention",
        lambda: HabituatingAttention(habituation_rate=2.0),
        lambda: HabituatingAttention(
            habituation_rate=2.0, mode="position_pair", num_heads=_H, max_seq_len=16
        ),
        _qkv,
        breaks,
        forward=_first,
        compile=True,
    )
    out.append(
        PublishedBehaviour(
            mechanism="HabituatingAttention",
            flag='mode="position_pair"',
            reason=(
                "a per-head count of attended position pairs is kept in a module buffer and "
                "updated after every forward, so outputs depend on earlier calls and batches "
                "(and on positions, not content)"
            ),
            breaks=breaks,
            ours=ours,
            published=pub,
        )
    )
    return tuple(out)


def _holds(spec: ContractSpec, contract: str) -> bool:
    """Run one contract on ``spec`` as if nothing were expected to fail."""
    from neuro_core.testing import check_contract

    try:
        check_contract(dataclasses.replace(spec, expect_fail=frozenset()), contract)
    except AssertionError:
        return False
    return True


def contract_table(
    behaviours: Sequence[PublishedBehaviour] | None = None,
    *,
    contracts: Sequence[str] = tuple(TABLE_CONTRACTS),
) -> list[dict[str, object]]:
    """Run the contracts on our and the published form of each mechanism.

    Args:
        behaviours: entries to run; None means :func:`published_behaviours`.
        contracts: contract names to run (``"compile"`` calls ``torch.compile`` and takes
            seconds per entry); columns not run are None.

    Returns:
        One dict per (mechanism, form) with keys ``mechanism``, ``form`` ("ours" or the
        published flag) and one bool (or None) per entry of :data:`TABLE_CONTRACTS`.
    """
    unknown = set(contracts) - set(TABLE_CONTRACTS)
    if unknown:
        raise ValueError(f"contracts must be among {tuple(TABLE_CONTRACTS)}, got {sorted(unknown)}")
    rows: list[dict[str, object]] = []
    for beh in behaviours if behaviours is not None else published_behaviours():
        for form, spec in (("ours", beh.ours), (f"published: {beh.flag}", beh.published)):
            row: dict[str, object] = {"mechanism": beh.mechanism, "form": form}
            for c in TABLE_CONTRACTS:
                row[c] = _holds(spec, c) if c in contracts else None
            rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """Plain-text table of :func:`contract_table` rows (yes / NO / not run)."""
    head = ["mechanism", "form", *TABLE_CONTRACTS.values()]

    def cell(v: object) -> str:
        return "not run" if v is None else ("yes" if v else "NO")

    body = [
        [str(r["mechanism"]), str(r["form"]), *(cell(r[c]) for c in TABLE_CONTRACTS)] for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{name}: see {where}" for name, where in ELSEWHERE.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: print the contract table (``--no-compile`` skips the slow compile column)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile checks")
    args = parser.parse_args(argv)
    contracts = [c for c in TABLE_CONTRACTS if not (args.no_compile and c == "compile")]
    print(format_table(contract_table(contracts=contracts)))


if __name__ == "__main__":
    main()


__all__ = [
    "ELSEWHERE",
    "TABLE_CONTRACTS",
    "PublishedBehaviour",
    "contract_table",
    "format_table",
    "main",
    "published_behaviours",
]
