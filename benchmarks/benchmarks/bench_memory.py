"""neuro-memory: episodic read (exact torch top-k vs FAISS candidates) and write, by capacity.

Read backends: ``exact`` (:func:`neuro_memory.read`, one matmul + top-k), ``faiss_flat``
(``IndexFlatIP`` candidates re-ranked by ``cos · strength``, the peer baseline) and ``faiss_ivf``
(IVF, ``nlist = √N``, ``nprobe = 8``). FAISS backends need the ``[faiss]`` extra.
"""

try:
    import torch

    from neuro_memory import EpisodicParams, FaissIndex, decay, init_state, read, write
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None

KEY_DIM = VALUE_DIM = 64
QUERIES, K, N_CANDIDATES = 256, 5, 64


def _full_state(capacity, policy="fifo"):
    params = EpisodicParams(capacity=capacity, replacement=policy)
    gen = torch.Generator().manual_seed(0)
    state = init_state(params, KEY_DIM, VALUE_DIM)
    keys = torch.randn(capacity, KEY_DIM, generator=gen)
    state = write(state, keys, torch.randn(capacity, VALUE_DIM, generator=gen), params)
    return decay(state, params), params, gen


class Read:
    params = (["exact", "faiss_flat", "faiss_ivf"], [1024, 16384, 131072])
    param_names = ["backend", "capacity"]
    timeout = 180

    def setup(self, backend, capacity):
        if torch is None:
            raise NotImplementedError("neuro_memory not importable")
        self.state, self.params, gen = _full_state(capacity)
        self.queries = torch.randn(QUERIES, KEY_DIM, generator=gen)
        if backend == "exact":
            self.fn = lambda: read(self.state, self.queries, K, self.params)
            return
        try:
            import faiss  # noqa: F401
        except ImportError as err:
            raise NotImplementedError("needs faiss-cpu") from err
        nlist = 0 if backend == "faiss_flat" else int(capacity**0.5)
        index = FaissIndex(self.state, self.params, nlist=nlist, nprobe=min(8, max(nlist, 1)))
        self.fn = lambda: index.read(
            self.state, self.queries, K, self.params, n_candidates=N_CANDIDATES
        )
        self.fn()

    def track_recall_at_5(self, backend, capacity):
        """Fraction of the exact top-5 slots that this backend returns."""
        exact = read(self.state, self.queries, K, self.params).indices
        got = self.fn().indices
        hits = (got.unsqueeze(-1) == exact.unsqueeze(-2)).any(-1).float().mean()
        return float(hits)

    track_recall_at_5.unit = "fraction"

    def time_read(self, backend, capacity):
        self.fn()

    def peakmem_read(self, backend, capacity):
        self.fn()


class Write:
    params = (["fifo", "weakest"], [1024, 16384, 131072])
    param_names = ["replacement", "capacity"]
    timeout = 120

    def setup(self, replacement, capacity):
        if torch is None:
            raise NotImplementedError("neuro_memory not importable")
        self.state, self.params, gen = _full_state(capacity, replacement)
        self.keys = torch.randn(64, KEY_DIM, generator=gen)
        self.values = torch.randn(64, VALUE_DIM, generator=gen)

    def time_write_64_into_full(self, replacement, capacity):
        write(self.state, self.keys, self.values, self.params)

    def peakmem_write_64_into_full(self, replacement, capacity):
        write(self.state, self.keys, self.values, self.params)
