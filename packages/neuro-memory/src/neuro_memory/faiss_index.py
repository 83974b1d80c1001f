"""Optional approximate candidate search with FAISS (extra ``neuro-memory[faiss]``).

:class:`FaissIndex` indexes a *snapshot* of an :class:`~neuro_memory.episodic.EpisodicState`'s
normalised keys by inner product (= cosine), returns ``n_candidates`` slots per query, and
:func:`~neuro_memory.episodic.read` re-ranks them exactly by ``cos · strength``. FAISS ids are
slot indices (slots ``0 .. size − 1`` are added in order), and ``read`` maps positions in the
candidate list back to slot indices: the step whose absence made Aura's centroid index return the
wrong memories.

Approximate in two ways: an IVF index (``nlist > 0``) probes only ``nprobe`` clusters, and a
memory outside the ``n_candidates`` best by cosine is not considered even if its strength would
have lifted it into the top k. ``nlist = 0`` gives an exact flat index (useful as a peer baseline).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from neuro_core.validation import check_int, check_tensor
from neuro_memory.episodic import EpisodicParams, EpisodicState, Retrieved, _check_k, read


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("FaissIndex needs FAISS: pip install 'neuro-memory[faiss]'") from err
    return faiss


class FaissIndex:
    """FAISS inner-product index over the filled slots of ``state`` at construction time.

    Args:
        state: the memory to index (at least one filled slot).
        params: its hyper-parameters (``eps`` is used to normalise keys as :func:`read` does).
        nlist: number of IVF clusters; 0 builds an exact ``IndexFlatIP``. IVF training needs
            ``nlist ≤ state.size``.
        nprobe: clusters visited per query (IVF only), ``1 ≤ nprobe ≤ nlist``.

    The index does not follow later writes: :meth:`read` raises if the state's ``count`` changed.
    """

    def __init__(
        self, state: EpisodicState, params: EpisodicParams, *, nlist: int = 0, nprobe: int = 8
    ) -> None:
        faiss = _faiss()
        size = state.size
        if size < 1:
            raise ValueError("state must hold at least one memory to build an index")
        check_int("nlist", nlist, low=0, high=size)
        if nlist:
            check_int("nprobe", nprobe, high=nlist)
        keys = F.normalize(state.keys[:size].detach().float(), dim=-1, eps=params.eps)
        data = keys.cpu().numpy()
        dim = data.shape[1]
        if nlist == 0:
            index = faiss.IndexFlatIP(dim)
        else:
            self._quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(data)
            index.nprobe = nprobe
        index.add(data)
        self.index = index
        self.count = state.count
        self.size = size

    def search(self, queries: torch.Tensor, n_candidates: int) -> torch.Tensor:
        """``[Q, n_candidates]`` long slot indices by cosine, best first; −1 where none found."""
        check_tensor("queries", queries, ndim=2, floating=True, finite=True)
        check_int("n_candidates", n_candidates)
        q = F.normalize(queries.detach().float(), dim=-1).cpu().numpy()
        _, ids = self.index.search(q, min(n_candidates, self.size))
        return torch.from_numpy(ids).to(device=queries.device, dtype=torch.long)

    def read(
        self,
        state: EpisodicState,
        queries: torch.Tensor,
        k: int,
        params: EpisodicParams,
        *,
        n_candidates: int = 64,
    ) -> Retrieved:
        """Top-``k`` by ``cos · strength`` among the index's ``n_candidates`` per query.

        Rows for which the index found fewer than ``k`` slots are answered by exact search.
        Same return value as :func:`read` (slot indices).
        """
        if state.count != self.count or state.size != self.size:
            raise ValueError(
                f"state was written after the index was built (count {state.count} != "
                f"{self.count}); build a new FaissIndex"
            )
        _check_k(k, state.size)
        if n_candidates < k:
            raise ValueError(f"n_candidates must be ≥ k={k}, got {n_candidates}")
        cand = self.search(queries, n_candidates)
        short = (cand >= 0).sum(1) < k
        if not bool(short.any()):
            return read(state, queries, k, params, candidates=cand)
        exact = read(state, queries[short], k, params)
        ok = ~short
        approx = exact
        if bool(ok.any()):
            approx = read(state, queries[ok], k, params, candidates=cand[ok])
        out = [
            torch.empty((queries.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
            for t in exact
        ]
        for o, e, a in zip(out, exact, approx):
            o[short] = e
            if bool(ok.any()):
                o[ok] = a
        return Retrieved(*out)
