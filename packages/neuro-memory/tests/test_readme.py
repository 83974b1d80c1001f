"""The README example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    scope: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    assert tuple(scope["values"].shape) == (4, 5, 32)  # type: ignore[attr-defined]
    assert tuple(scope["y"].shape) == (2, 16, 64)  # type: ignore[attr-defined]
