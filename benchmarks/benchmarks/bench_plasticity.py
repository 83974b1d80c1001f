"""neuro-plasticity: fast-weight backends (recurrent spec, chunked, Triton) and sparse STDP.

The recurrent spec is slow by design (one step per token); it is timed at the shorter length only.
A peer comparison against flash-linear-attention's ``chunk_simple_gla`` (same math with a
constant gate) runs on CUDA when ``fla`` is installed.
"""

try:
    import torch

    from neuro_plasticity import CSR, on_topology, pair_stdp
    from neuro_plasticity.ops.fast_weights import fast_weights
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None


class FastWeights:
    params = (["reference", "chunked", "triton", "fla"], ["hebbian", "delta"], [256, 2048])
    param_names = ["backend", "rule", "seq_len"]
    timeout = 300

    def setup(self, backend, rule, seq_len):
        if torch is None:
            raise NotImplementedError("neuro_plasticity not importable")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if backend in ("triton", "fla") and device != "cuda":
            raise NotImplementedError("needs CUDA")
        if backend in ("triton", "fla") and rule != "hebbian":
            raise NotImplementedError("kernel covers the Hebbian rule only")
        if backend == "reference" and seq_len > 256:
            raise NotImplementedError("the recurrent spec is timed at T=256 only")
        torch.manual_seed(0)
        b, h, d = (2, 4, 64) if device == "cpu" else (4, 16, 128)
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        q, k, v = (
            torch.randn(b, seq_len, h, d, device=device, dtype=dtype) * 0.1 for _ in range(3)
        )
        if rule == "delta":
            k = torch.nn.functional.normalize(k, dim=-1)
        self.leaves = [x.requires_grad_() for x in (q, k, v)]
        self.grad = torch.randn_like(v)
        decay = 0.99 if rule == "hebbian" else 1.0
        if backend == "fla":
            try:
                from fla.ops.simple_gla import chunk_simple_gla
            except ImportError as e:
                raise NotImplementedError("flash-linear-attention not installed") from e
            g = torch.full((b, seq_len, h), float(torch.log(torch.tensor(decay))), device=device)
            self.fn = lambda: chunk_simple_gla(*self.leaves, g=g, scale=1.0)[0]
        else:
            self.fn = lambda: fast_weights(*self.leaves, rule=rule, decay=decay, backend=backend)[0]
        self.fn().backward(self.grad)

    def time_forward(self, backend, rule, seq_len):
        with torch.no_grad():
            self.fn()

    def time_forward_backward(self, backend, rule, seq_len):
        self.fn().backward(self.grad)

    def peakmem_forward_backward(self, backend, rule, seq_len):
        self.fn().backward(self.grad)


class SparseSTDP:
    params = ([100_000, 1_000_000], [0.002, 0.05])
    param_names = ["synapses", "spike_prob"]
    timeout = 300

    def setup(self, synapses, spike_prob):
        if torch is None:
            raise NotImplementedError("neuro_plasticity not importable")
        n = 10_000 if synapses >= 1_000_000 else 3_162
        g = torch.Generator().manual_seed(0)
        mask = torch.rand(n, n, generator=g) < synapses / (n * n)
        self.rule = on_topology(pair_stdp(dt_ms=0.1), CSR.from_dense_mask(mask))
        self.w = torch.rand(self.rule.topology.nnz, generator=g)
        self.state = self.rule.init(self.w)
        self.spikes = (torch.rand(n, generator=g) < spike_prob).float()

    def time_step(self, synapses, spike_prob):
        self.rule.update(self.spikes, self.spikes, self.state, self.w)
