import torch

# The tests use tiny tensors: intra-op threads only add synchronisation, which on a shared 2-core
# machine made one 500-step test 200× slower (42 s vs 0.2 s).
torch.set_num_threads(1)
