"""pytest plugin (auto-loaded through the ``pytest11`` entry point of neuro-core).

On machines without CUDA it sets ``TRITON_INTERPRET=1`` before any kernel module is imported, so
Triton kernels run in the CPU interpreter and tests compare them with their references there.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
