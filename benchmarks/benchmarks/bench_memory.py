"""neuro-memory: episodic read (exact torch top-k vs FAISS candidates) and write, by capacity;
kNN search by backend; cognitive-map insert and query, by map size.

Read backends: ``exact`` (:func:`neuro_memory.read`, one matmul + top-k), ``faiss_flat``
(``IndexFlatIP`` candidates re-ranked by ``cos · strength``, the peer baseline) and ``faiss_ivf``
(IVF, ``nlist = √N``, ``nprobe = 8``). FAISS backends need the ``[faiss]`` extra.
"""

try:
    import torch

    from neuro_memory import (
        CognitiveMapParams,
        EpisodicParams,
        FaissIndex,
        decay,
        init_map,
        init_state,
        knn_search,
        map_insert,
        map_query,
        read,
        write,
    )
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


class Knn:
    """Exact top-32 of 512 queries (D = 64, fp32) over N keys: the issue-14 target at N = 262 144."""

    params = (["reference", "blocked", "mixed", "faiss"], [16384, 262144])
    param_names = ["backend", "n_keys"]
    timeout = 180

    def setup(self, backend, n_keys):
        if torch is None:
            raise NotImplementedError("neuro_memory not importable")
        if backend == "faiss":
            try:
                import faiss  # noqa: F401
            except ImportError as err:
                raise NotImplementedError("needs faiss-cpu") from err
        gen = torch.Generator().manual_seed(0)
        self.keys = torch.randn(n_keys, KEY_DIM, generator=gen)
        self.queries = torch.randn(512, KEY_DIM, generator=gen)

    def time_knn(self, backend, n_keys):
        knn_search(self.keys, self.queries, 32, backend=backend)

    def peakmem_knn(self, backend, n_keys):
        knn_search(self.keys, self.queries, 32, backend=backend)


class CognitiveMap:
    """Insert 1 / 64 nodes into, and query, a kNN graph (k = 16, D = 64) of n nodes."""

    params = [4096, 32768]
    param_names = ["n_nodes"]
    timeout = 300

    def setup(self, n_nodes):
        if torch is None:
            raise NotImplementedError("neuro_memory not importable")
        gen = torch.Generator().manual_seed(0)
        self.params_ = CognitiveMapParams(n_neighbors=16)
        self.graph = map_insert(
            init_map(KEY_DIM, self.params_),
            torch.randn(n_nodes, KEY_DIM, generator=gen),
            self.params_,
        )
        self.one = torch.randn(1, KEY_DIM, generator=gen)
        self.many = torch.randn(64, KEY_DIM, generator=gen)

    def time_insert_1(self, n_nodes):
        map_insert(self.graph, self.one, self.params_)

    def time_insert_64(self, n_nodes):
        map_insert(self.graph, self.many, self.params_)

    def time_query_1(self, n_nodes):
        map_query(self.graph, self.one, 16, self.params_)
