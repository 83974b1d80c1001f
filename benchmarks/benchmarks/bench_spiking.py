"""neuro-spiking: the fused multi-step LIF op against snnTorch and SpikingJelly, and the network.

``LIFScan``: forward+backward of ``fused_lif_scan`` per backend (``reference`` eager autograd
loop, ``fused`` hand-written backward, ``compile`` torch.compile'd chunks, ``triton`` on CUDA
only) and the peers ``snntorch`` (``Leaky`` time loop) and ``spikingjelly``
(``LIFNode(step_mode="m")``), all with the matched parameterization of
``benchmarks/scripts/spiking_targets.py``. Peers raise ``NotImplementedError`` (skipped) when
they are not installed. ``AdaptiveScan``: the adaptive LIF and multi-bit GIF ops per CPU backend
(``reference``, ``fused``, ``compile``). ``Network``: 100 ms of the 10k-neuron,
1 %-connectivity network; ``PlasticNetwork``: the same with event-driven pair STDP on its
excitatory → excitatory synapses, by hook engine (``native``: the compiled block kernel,
skipped without a C compiler; ``numpy``: one ``on_spikes`` call per step), the issue-15 ratio
plastic/static read off the two suites.
"""

try:
    import torch

    from neuro_plasticity import CSR, chain, clip, event_driven, pair_stdp
    from neuro_plasticity.ops.event_stdp import native
    from neuro_spiking.network import Network as _Network
    from neuro_spiking.network import PoissonInput, brunel_like
    from neuro_spiking.ops.alif_scan import fused_alif_scan
    from neuro_spiking.ops.gif_scan import fused_gif_scan
    from neuro_spiking.ops.lif_scan import fused_lif_scan
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None

BETA = 0.9


class LIFScan:
    params = (
        ["reference", "fused", "compile", "triton", "snntorch", "spikingjelly"],
        [(64, 32, 4096), (16, 32, 1024)],
    )
    param_names = ["backend", "shape"]
    timeout = 300

    def setup(self, backend, shape):
        if torch is None:
            raise NotImplementedError("neuro_spiking not importable")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if backend == "triton" and device != "cuda":
            raise NotImplementedError("triton backend needs CUDA")
        if backend == "reference" and shape[0] * shape[2] > 16 * 1024:
            raise NotImplementedError("the eager reference is only timed on the small shape")
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(shape, generator=g) * 0.3).to(device)
        self.up = torch.randn(shape, generator=g).to(device)
        if backend == "snntorch":
            try:
                import snntorch
            except ImportError:
                raise NotImplementedError("snntorch not installed") from None

            def run():
                lif = snntorch.Leaky(beta=BETA, reset_mechanism="zero")
                mem = lif.init_leaky()
                x = self.x.detach().requires_grad_()
                out = []
                for t in range(x.shape[0]):
                    s, mem = lif(x[t], mem)
                    out.append(s)
                torch.stack(out).backward(self.up)

        elif backend == "spikingjelly":
            try:
                from spikingjelly.activation_based import neuron, surrogate
            except ImportError:
                raise NotImplementedError("spikingjelly not installed") from None

            def run():
                node = neuron.LIFNode(
                    tau=1 / (1 - BETA),
                    decay_input=False,
                    v_reset=0.0,
                    step_mode="m",
                    surrogate_function=surrogate.ATan(),
                )
                x = self.x.detach().requires_grad_()
                node(x).backward(self.up)

        else:

            def run():
                x = self.x.detach().requires_grad_()
                fused_lif_scan(x, beta=BETA, reset="hard", backend=backend).spikes.backward(self.up)

        self.run = run
        for _ in range(2):  # warm up (compiles)
            run()

    def time_forward_backward(self, backend, shape):
        self.run()

    def peakmem_forward_backward(self, backend, shape):
        self.run()


class AdaptiveScan:
    params = (["alif", "gif"], ["reference", "fused", "compile"], [(64, 32, 4096), (16, 32, 1024)])
    param_names = ["op", "backend", "shape"]
    timeout = 300

    def setup(self, op, backend, shape):
        if torch is None:
            raise NotImplementedError("neuro_spiking not importable")
        if backend == "reference" and shape[0] * shape[2] > 16 * 1024:
            raise NotImplementedError("the eager reference is only timed on the small shape")
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(shape, generator=g) - 0.2) * (3.0 if op == "gif" else 0.3)
        self.up = torch.randn(shape, generator=g)

        def run():
            x = self.x.detach().requires_grad_()
            if op == "alif":
                s = fused_alif_scan(
                    x, beta=BETA, rho=0.95, adapt_increment=0.1, reset="hard", backend=backend
                )[0]
            else:
                s = fused_gif_scan(x, beta=BETA, levels=8, backend=backend)[0]
            s.backward(self.up)

        self.run = run
        for _ in range(2):  # warm up (compiles)
            run()

    def time_forward_backward(self, op, backend, shape):
        self.run()


class Network:
    timeout = 600

    def setup(self):
        if torch is None:
            raise NotImplementedError("neuro_spiking not importable")
        self.net = brunel_like()
        self.inp = PoissonInput(self.net, rate_hz=10.0, n_sources=100, weight=1.0, seed=1)
        self.state, _ = self.net.run(100, inject=self.inp)

    def time_100ms(self):
        self.net.run(1000, self.state, inject=self.inp, record=[])


class PlasticNetwork:
    timeout = 600
    params = (["native", "numpy"],)
    param_names = ["engine"]

    def setup(self, engine):
        if torch is None:
            raise NotImplementedError("neuro_spiking not importable")
        if engine == "native" and native.load() is None:
            raise NotImplementedError(native.status())
        static = brunel_like()
        pr = static.projections[0]
        rule = chain(
            pair_stdp(a_plus=0.005, a_minus=0.00525, dt_ms=0.1), clip(w_min=0.0, w_max=1.0)
        )
        hook = event_driven(rule, CSR(pr.crow_indices, pr.col_indices, pr.n_post), backend="events")
        if engine == "numpy":
            hook = _StepOnly(hook)
        self.net = _Network(static.populations, static.projections, dt_ms=0.1, plasticity={0: hook})
        self.inp = PoissonInput(self.net, rate_hz=10.0, n_sources=100, weight=1.0, seed=1)
        self.state, _ = self.net.run(100, inject=self.inp)

    def time_100ms(self, engine):
        self.net.run(1000, self.state, inject=self.inp, record=[])


class _StepOnly:
    """An event hook without its block form: the simulator calls ``on_spikes`` every step."""

    def __init__(self, hook):
        self.hook = hook

    def init(self, weight, batch=1):
        return self.hook.init(weight, batch)

    def on_spikes(self, *args):
        return self.hook.on_spikes(*args)
