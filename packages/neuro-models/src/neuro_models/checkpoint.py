"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of ``<out_dir>/checkpoints/``::

    step_00000400/model.safetensors      model weights (full, unsharded state dict)
    step_00000400/optimizer.safetensors  optimizer tensors ("state.<param>.<name>") and RNG states
    step_00000400/state.json             step, configs, tokenizer identity, data order, optimizer
                                         param groups and scalars, sha256 of both tensor files
    latest                               name of the newest complete checkpoint directory

Nothing is unpickled on load (safetensors + JSON only), so a checkpoint from an untrusted source
cannot run code. A checkpoint directory is written under a temporary name, its files fsynced, then
renamed into place, and only then is ``latest`` replaced (temp file + ``os.replace``). A run killed
at any moment therefore leaves ``latest`` pointing at the last complete checkpoint. Loading
verifies both sha256 digests, so a truncated or corrupted file raises ``CheckpointError`` naming
it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuro_models._fileio import atomic_directory, fsync_write, sha256_file

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
LATEST = "latest"
_RNG_PREFIX = "__rng__."


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or does not match the run."""


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``optimizer`` is in the name-keyed layout of
    ``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict``."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    meta: dict[str, Any]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pname, pstate in state.get("state", {}).items():
        for key, value in pstate.items():
            name = f"state.{pname}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous().clone()
            else:
                scalars[name] = value
    groups = []
    for g in state.get("param_groups", []):
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], js: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    items: list[tuple[str, Any]] = list(tensors.items()) + list(js.get("scalars", {}).items())
    for name, value in items:
        _, rest = name.split(".", 1)
        pname, key = rest.rsplit(".", 1)
        state.setdefault(pname, {})[key] = value
    groups = []
    for g in js.get("param_groups", []):
        groups.append({k: (tuple(v) if k == "betas" else v) for k, v in g.items()})
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    *,
    model: dict[str, torch.Tensor],
    optimizer: dict[str, Any] | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    keep: int | None = 2,
) -> Path:
    """Write checkpoint ``step`` under ``root`` (the ``checkpoints`` directory) atomically.

    Args:
        root: checkpoint directory (created if needed).
        step: optimizer steps completed.
        model: full model state dict (tensors).
        optimizer: name-keyed optimizer state dict, or ``None``.
        rng: RNG state tensors (``torch.get_rng_state()`` etc.).
        meta: JSON-serializable run metadata (configs, tokenizer identity, data order state).
        keep: keep only the newest ``keep`` checkpoints (``None``: keep all).

    Returns:
        The checkpoint directory.
    """
    from safetensors.torch import save_file

    root = Path(root)
    name = f"step_{step:08d}"
    final = root / name
    # Re-saving a step (after a resume) replaces the old copy atomically.
    with atomic_directory(final) as tmp:
        model_t = {k: v.detach().cpu().contiguous().clone() for k, v in model.items()}
        save_file(model_t, str(tmp / MODEL_FILE))
        opt_t, opt_js = _flatten_optimizer(optimizer) if optimizer is not None else ({}, None)
        for k, v in (rng or {}).items():
            opt_t[_RNG_PREFIX + k] = v.detach().cpu().contiguous().clone()
        save_file(opt_t, str(tmp / OPTIM_FILE))
        state = {
            "format": FORMAT_VERSION,
            "step": int(step),
            "meta": meta or {},
            "optimizer": opt_js,
            "files": {f: sha256_file(tmp / f) for f in (MODEL_FILE, OPTIM_FILE)},
        }
        fsync_write(tmp / STATE_FILE, json.dumps(state, indent=1, sort_keys=True).encode())
    pointer = root / f".{LATEST}.tmp{os.getpid()}"
    fsync_write(pointer, name.encode())
    os.replace(pointer, root / LATEST)
    if keep is not None:
        done = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in done[: max(0, len(done) - keep)]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``root/latest`` points to, or ``None`` if there is none yet."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    path = root / name
    if not name.startswith("step_") or not path.is_dir():
        raise CheckpointError(
            f"checkpoint pointer {str(pointer)!r} names {name!r}, which is missing"
        )
    return path


def load_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> Checkpoint:
    """Load a checkpoint directory (or a ``checkpoints`` root, meaning its ``latest``).

    Raises:
        CheckpointError: a missing, truncated or corrupt file (named), or an unknown format.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if (path / LATEST).is_file():
        latest = latest_checkpoint(path)
        assert latest is not None
        path = latest
    state_path = path / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"checkpoint file {str(state_path)!r} is missing")
    try:
        state = json.loads(state_path.read_text())
        step = int(state["step"])
        files = dict(state["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint file {str(state_path)!r} is corrupt: {exc}") from exc
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint file {str(state_path)!r} has format {state.get('format')!r}, "
            f"this version reads {FORMAT_VERSION}"
        )
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for fname in (MODEL_FILE, OPTIM_FILE):
        fpath = path / fname
        if not fpath.is_file():
            raise CheckpointError(f"checkpoint file {str(fpath)!r} is missing")
        if verify and sha256_file(fpath) != files.get(fname):
            raise CheckpointError(
                f"checkpoint file {str(fpath)!r} is truncated or corrupt (sha256 differs from "
                f"{str(state_path)!r})"
            )
        try:
            tensors[fname] = load_file(str(fpath))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint file {str(fpath)!r} cannot be read: {exc}") from exc
    opt_t = tensors[OPTIM_FILE]
    rng = {k[len(_RNG_PREFIX) :]: v for k, v in opt_t.items() if k.startswith(_RNG_PREFIX)}
    opt_only = {k: v for k, v in opt_t.items() if not k.startswith(_RNG_PREFIX)}
    optimizer = (
        _unflatten_optimizer(opt_only, state["optimizer"])
        if state["optimizer"] is not None
        else None
    )
    return Checkpoint(path, step, tensors[MODEL_FILE], optimizer, rng, dict(state.get("meta", {})))
