"""neuro-core: the RMSNorm op against torch's own ``nn.RMSNorm`` (eager).

Backends: ``reference`` (eager spec), ``compile`` (``torch.compile`` of the spec), ``torch``
(``torch.nn.functional.rms_norm``), and ``triton`` on CUDA only. ``Environment`` records the thread
count and CPUs of the run.
"""

try:
    import torch

    from neuro_core.ops import rms_norm
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None


class RMSNorm:
    params = (["reference", "compile", "torch", "triton"], [(8 * 256, 256), (8 * 256, 1024)])
    param_names = ["backend", "shape"]
    timeout = 120

    def setup(self, backend, shape):
        if torch is None:
            raise NotImplementedError("neuro_core not importable")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if backend == "triton" and device != "cuda":
            raise NotImplementedError("triton backend needs CUDA")
        torch.manual_seed(0)
        self.x = torch.randn(shape, device=device, requires_grad=True)
        self.w = torch.ones(shape[-1], device=device, requires_grad=True)
        if backend == "torch":
            self.fn = lambda: torch.nn.functional.rms_norm(self.x, (shape[-1],), self.w, 1e-6)
        else:
            self.fn = lambda: rms_norm(self.x, self.w, 1e-6, backend=backend)
        self.grad = torch.randn(shape, device=device)
        for _ in range(3):  # warm up (compiles)
            self.fn().backward(self.grad)

    def time_forward(self, backend, shape):
        with torch.no_grad():
            self.fn()

    def time_forward_backward(self, backend, shape):
        self.fn().backward(self.grad)

    def peakmem_forward_backward(self, backend, shape):
        self.fn().backward(self.grad)


class Environment:
    """What every figure of this commit was measured with, stored beside them in the results.

    asv's machine record holds only the machine's name; these ``track_*`` put the thread count
    (``nox -s bench`` through the slot runs with ``OMP_NUM_THREADS=1``) into each results file.
    """

    def setup(self):
        if torch is None:
            raise NotImplementedError("torch not importable")

    def track_torch_threads(self):
        """``torch.get_num_threads()`` in the benchmark process."""
        return torch.get_num_threads()

    track_torch_threads.unit = "threads"

    def track_cpu_count(self):
        """Logical CPUs the benchmark process may run on (``os.sched_getaffinity``)."""
        import os

        return len(os.sched_getaffinity(0))

    track_cpu_count.unit = "CPUs"
