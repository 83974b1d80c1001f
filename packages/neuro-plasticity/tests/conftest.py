import torch

# Opt in to the neuro-core pytest plugin (TRITON_INTERPRET=1 on machines without CUDA): installing
# neuro-core registers nothing with pytest. The hook is imported rather than named in
# `pytest_plugins`, which pytest forbids in a conftest below the rootdir.
from neuro_core.testing.plugin import pytest_configure as pytest_configure

# The tests use tiny tensors: intra-op threads only add synchronisation, which on a shared 2-core
# machine made one 500-step test 200× slower (42 s vs 0.2 s).
torch.set_num_threads(1)
