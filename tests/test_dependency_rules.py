"""The dependency rules hold for the real repo, and the checker catches each kind of violation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from depcheck import check_package, check_repo

PACKAGES = Path(__file__).resolve().parents[1] / "packages"


def test_repo_obeys_dependency_rules() -> None:
    problems = check_repo(PACKAGES)
    assert not problems, "\n".join(map(str, problems))


def test_every_package_is_checked() -> None:
    names = {p.name for p in PACKAGES.iterdir() if (p / "pyproject.toml").exists()}
    expected = {
        "neuro-core",
        "neuro-attention",
        "neuro-plasticity",
        "neuro-memory",
        "neuro-spiking",
        "neuro-objectives",
        "neuro-models",
    }
    assert expected <= names


def _fake_package(
    tmp: Path,
    name: str,
    source: str,
    deps: str = '"torch", "numpy", "neuro-core"',
    extras: str = 'triton = ["triton"]',
) -> Path:
    pkg = tmp / name
    mod = name.replace("-", "_")
    (pkg / "src" / mod).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [project]
        name = "{name}"
        dependencies = [{deps}]
        [project.optional-dependencies]
        {extras}
    """)
    )
    (pkg / "src" / mod / "__init__.py").write_text(textwrap.dedent(source))
    return pkg


@pytest.mark.parametrize(
    ("source", "deps", "fragment"),
    [
        ("import neuro_attention\n", None, "must not import neuro_attention"),
        (
            "def f():\n    from neuro_plasticity import rules\n",
            None,
            "must not import neuro_plasticity",
        ),
        ("import scipy\n", None, "imports scipy at module level"),
        ("import triton\n", None, "imports triton at module level"),
        ("def f():\n    import pandas\n", None, "imports pandas even lazily"),
        ("import torch\n", '"torch", "numpy", "neuro-core", "scipy"', "forbidden run-time deps"),
        ("from neuro_spiking.ops.lif.triton import lif\n", None, "import it lazily"),
    ],
)
def test_checker_catches_forbidden_edges(
    tmp_path: Path, source: str, deps: str | None, fragment: str
) -> None:
    kwargs = {"deps": deps} if deps else {}
    pkg = _fake_package(tmp_path, "neuro-spiking", source, **kwargs)
    problems = check_package(pkg)
    assert any(fragment in str(p) for p in problems), problems


def test_checker_accepts_allowed_edges(tmp_path: Path) -> None:
    source = """
        from __future__ import annotations
        import os, math
        from typing import TYPE_CHECKING
        import numpy as np
        import torch
        from neuro_core.validation import check_tensor
        from neuro_spiking import lif
        if TYPE_CHECKING:
            import matplotlib
        def kernel():
            import triton
    """
    assert check_package(_fake_package(tmp_path, "neuro-spiking", source)) == []


def test_core_may_not_import_components(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, "neuro-core", "import neuro_models\n", deps='"torch", "numpy"')
    assert any("must not import neuro_models" in str(p) for p in check_package(pkg))


def test_models_may_import_components(tmp_path: Path) -> None:
    pkg = _fake_package(
        tmp_path,
        "neuro-models",
        "import neuro_attention\nimport neuro_spiking\n",
        deps='"torch", "neuro-attention", "neuro-spiking"',
    )
    assert check_package(pkg) == []
