"""Data parallelism for the trainer: DDP or FSDP2 (``fully_shard`` per block) under ``torchrun``.

Parallelism stays out of the model (torchtitan's ``parallelize`` split): a model only has to expose
its blocks as ``model.layers`` (an ``nn.ModuleList`` of plain modules) for FSDP2 to shard block by
block. Every rank takes an equal contiguous slice of each global batch
(:meth:`neuro_models.data.DataOrder.get_batch`), and both DDP and FSDP2 average gradients over
ranks, so the update equals the single-process update on the whole batch up to float summation
order. Launch::

    torchrun --nproc_per_node=2 -m neuro_models.train --parallel fsdp ...

CPU runs use the ``gloo`` backend, CUDA runs ``nccl``. A script that called
:func:`init_distributed` ends with :func:`shutdown_distributed` on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "Parallel",
    "all_reduce_mean",
    "dist_info",
    "init_distributed",
    "parallelize",
    "shutdown_distributed",
]

Parallel = Literal["none", "ddp", "fsdp"]


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (``0, 1, 0`` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """The current process group's layout (single process if none is initialized)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        )
    return DistInfo()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Initialize the default process group from ``torchrun``'s environment, if present.

    Does nothing (and returns a single-process :class:`DistInfo`) when ``WORLD_SIZE`` is unset or 1.
    ``backend`` defaults to ``nccl`` with CUDA and ``gloo`` otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_initialized()):
        return dist_info()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist_info()


# Handles of the barriers run by shutdown_distributed, kept until the interpreter exits (see there).
_final_barriers: list[dist.Work] = []


def shutdown_distributed() -> None:
    """Tear down the default process group; call it on every rank after the rank's last collective.

    A no-op when no group is initialized. Not for error paths: its barrier waits for every rank.

    Why more than ``destroy_process_group``: gloo runs collectives on worker threads that outlive
    the group (FSDP's device mesh and DTensor's caches keep it alive), and a worker drops its
    reference to a finished collective only after the caller has moved on. When that frees
    tensors Python can see, the worker needs the GIL; if the interpreter is finalizing by then,
    Python ends the thread inside a C++ destructor and the process aborts with "terminate called
    without an active exception". A gloo barrier holds weak references to every collective still
    on a worker, which keep those collectives from being freed before the barrier is. Holding the
    barrier's handle until exit makes the main thread, which may take the GIL during
    finalization, free them instead of a worker.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    device_ids = [torch.cuda.current_device()] if dist.get_backend() == "nccl" else None
    work = dist.barrier(async_op=True, device_ids=device_ids)
    if work is not None:
        work.wait()
        _final_barriers.append(work)
    dist.destroy_process_group()


def parallelize(model: nn.Module, parallel: Parallel) -> nn.Module:
    """Wrap ``model`` for data parallelism; returns the module to call in the training step.

    * ``"none"``: the model itself.
    * ``"ddp"``: ``DistributedDataParallel(model)``.
    * ``"fsdp"``: FSDP2, ``fully_shard`` on each block of ``model.layers`` and then on the root
      (in place; the returned module is ``model``). Create the optimizer *after* this call.

    Raises:
        ValueError: unknown ``parallel``, a distributed mode without an initialized process group,
            or ``"fsdp"`` on a model without ``layers``.
    """
    if parallel == "none":
        return model
    if parallel not in ("ddp", "fsdp"):
        raise ValueError(f"parallel must be 'none', 'ddp' or 'fsdp', got {parallel!r}")
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(f"parallel={parallel!r} needs torch.distributed (launch with torchrun)")
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids)
    from torch.distributed.fsdp import fully_shard

    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleList | nn.Sequential) or len(layers) == 0:
        raise ValueError("parallel='fsdp' needs model.layers, a non-empty ModuleList of blocks")
    for block in layers:
        fully_shard(block)
    fully_shard(model)
    if callable(getattr(type(model), "loss", None)):
        from torch.distributed.fsdp import register_fsdp_forward_method

        # The trainer's default loss calls model.loss: it needs the same all-gathers as forward.
        register_fsdp_forward_method(model, "loss")
    return model


def all_reduce_mean(value: float) -> float:
    """Mean of a float over ranks (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()
