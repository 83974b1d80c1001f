"""Shared test setup of neuro-core."""

# Opt in to the neuro-core pytest plugin (TRITON_INTERPRET=1 on machines without CUDA): installing
# neuro-core registers nothing with pytest. The hook is imported rather than named in
# `pytest_plugins`, which pytest forbids in a conftest below the rootdir.
from neuro_core.testing.plugin import pytest_configure as pytest_configure
