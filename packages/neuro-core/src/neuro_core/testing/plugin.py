"""Opt-in pytest plugin: Triton kernels run in the CPU interpreter on machines without CUDA.

Installing neuro-core registers nothing with pytest (there is no ``pytest11`` entry point), so the
test runs of other projects are left alone. A project that tests neuro-* kernels on CPU asks for
the plugin explicitly, in one of three ways:

* on the command line: ``pytest -p neuro_core.testing.plugin``;
* in its pytest configuration: ``addopts = "-p neuro_core.testing.plugin"``;
* in its rootdir ``conftest.py``: ``pytest_plugins = ["neuro_core.testing.plugin"]``, or, in a
  conftest below the rootdir (where pytest forbids ``pytest_plugins``), by importing the hook:
  ``from neuro_core.testing.plugin import pytest_configure``.

The hook sets ``TRITON_INTERPRET=1`` (unless the variable is already set) when
``torch.cuda.is_available()`` is false. Triton reads the variable when a kernel is decorated, and
the neuro-* packages import Triton lazily, so setting it at configure time (before any test runs)
is early enough.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Set ``TRITON_INTERPRET=1`` on machines without CUDA (an existing value is kept)."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


__all__ = ["pytest_configure"]
