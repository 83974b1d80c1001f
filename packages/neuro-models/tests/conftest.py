"""Fixtures shared by the neuro-models tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Opt in to the neuro-core pytest plugin (TRITON_INTERPRET=1 on machines without CUDA): installing
# neuro-core registers nothing with pytest. The hook is imported rather than named in
# `pytest_plugins`, which pytest forbids in a conftest below the rootdir.
from neuro_core.testing.plugin import pytest_configure as pytest_configure

# helper modules (contract_forwards) live beside the tests; --import-mode=importlib does not add
# this folder to sys.path by itself
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with one torch thread (bit-reproducible float sums), then restore."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
