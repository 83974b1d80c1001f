"""Model bundles: a folder that holds everything needed to re-score a trained model.

Layout of a bundle folder::

    model.safetensors   the weights (fp32, or bf16 to halve the file; tied tensors stored once)
    model.json          {"format": 1, "kind": "llama" | "ncn" | "neurollama" | "decoder",
                         "config": cfg.to_dict(),
                         "meta": {free JSON}, "dtype": "fp32" | "bf16",
                         "files": {"model.safetensors": sha256, "tokenizer.json": sha256}}
    tokenizer.json      the tokenizer's ``to_json()``

Nothing is unpickled on load (safetensors + JSON only), so a bundle from an untrusted source cannot
run code. :func:`save_bundle` writes the folder under a temporary sibling name, fsyncs it and
renames it into place, so a failed or killed save leaves either the previous bundle or nothing.
:func:`load_bundle` checks both sha256 digests, so a truncated or edited file raises
:class:`BundleError` naming it. bf16 weights are loaded back into fp32 parameters; the model
then computes exactly what the fp32 model with bf16-rounded weights computes.

``python -m neuro_models.evaluate BUNDLE --text FILE`` (``neuro-eval``) scores a bundle on a text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from neuro_models._fileio import atomic_directory, fsync_write, sha256_file
from neuro_models.aura import AuraConfig, HippocampalTransformer
from neuro_models.config import LlamaConfig
from neuro_models.data.tokenizers import Tokenizer, load_tokenizer
from neuro_models.decoder import Decoder, DecoderConfig
from neuro_models.llama import Llama
from neuro_models.ncn import NCNConfig, NCNModel
from neuro_models.neurollama import NeuroLlama, NeuroLlamaConfig
from neuro_models.v3 import V3Config, V3Model

__all__ = ["Bundle", "BundleError", "BundleKind", "load_bundle", "save_bundle"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
TOKENIZER_FILE = "tokenizer.json"

#: The model classes a bundle can hold.
BundleKind = Literal["llama", "ncn", "neurollama", "decoder", "v3", "aura"]
#: How weights are stored: ``"fp32"`` (exact) or ``"bf16"`` (half the size, rounded).
StorageDtype = Literal["fp32", "bf16"]

ModelConfig = LlamaConfig | NCNConfig | NeuroLlamaConfig | DecoderConfig | V3Config | AuraConfig
_KINDS: dict[str, tuple[type[nn.Module], type[ModelConfig]]] = {
    "llama": (Llama, LlamaConfig),
    "ncn": (NCNModel, NCNConfig),
    "neurollama": (NeuroLlama, NeuroLlamaConfig),
    "decoder": (Decoder, DecoderConfig),
    "v3": (V3Model, V3Config),
    "aura": (HippocampalTransformer, AuraConfig),
}
_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


class BundleError(ValueError):
    """A bundle folder that is missing, truncated, corrupt or inconsistent; the message names
    the file."""


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle.

    Attributes:
        model: the model, fp32, in ``eval()`` mode, on the requested device.
        tokenizer: the tokenizer it was trained with.
        kind: ``"llama"``, ``"ncn"``, ``"neurollama"`` or ``"decoder"``.
        config: the model config (:class:`LlamaConfig` or :class:`NCNConfig`).
        meta: the free-form JSON metadata given to :func:`save_bundle`.
        path: the bundle folder.
    """

    model: nn.Module
    tokenizer: Tokenizer
    kind: BundleKind
    config: ModelConfig
    meta: dict[str, Any]
    path: Path


def _kind_of(model: nn.Module) -> tuple[BundleKind, ModelConfig]:
    if isinstance(model, Llama):
        return "llama", model.config
    if isinstance(model, NCNModel):
        return "ncn", model.config
    if isinstance(model, NeuroLlama):
        return "neurollama", model.config
    if type(model) is Decoder:
        return "decoder", model.spec
    if isinstance(model, V3Model):
        return "v3", model.config
    if isinstance(model, HippocampalTransformer):
        return "aura", model.config
    raise ValueError(
        f"model must be one of the bundle kinds {sorted(_KINDS)} (Llama, NCNModel, NeuroLlama, "
        f"a plain Decoder, V3Model, HippocampalTransformer), got {type(model).__name__}"
    )


def _unique_tensors(
    model: nn.Module, dtype: torch.dtype
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with every tensor that shares memory with another (tied weights) stored once
    under the alphabetically first of its names: ``(tensors, {dropped name: kept name})``.
    Floating tensors are cast to ``dtype``; all are copied to contiguous CPU memory."""
    state = model.state_dict()
    kept: dict[tuple[Any, ...], str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name in sorted(state):
        t = state[name]
        key = (
            t.device,
            t.untyped_storage().data_ptr(),
            t.storage_offset(),
            tuple(t.shape),
            tuple(t.stride()),
            t.dtype,
        )
        if t.numel() > 0 and key in kept:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous().clone()
    return tensors, aliases


def save_bundle(
    path: str | os.PathLike[str],
    model: nn.Module,
    tokenizer: Tokenizer,
    *,
    dtype: StorageDtype = "fp32",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` as a bundle folder at ``path``, atomically.

    An existing bundle at ``path`` is replaced only once the new one is complete; if anything
    fails, ``path`` is left as it was and no temporary folder remains.

    Args:
        path: the bundle folder to create or replace (its parent is created if needed).
        model: a :class:`~neuro_models.llama.Llama` or :class:`~neuro_models.ncn.NCNModel`.
        tokenizer: the tokenizer the model was trained with; its ``vocab_size`` must not exceed
            the model's.
        dtype: storage dtype of floating weights, ``"fp32"`` (default, exact) or ``"bf16"``
            (half the size; loaded back into fp32).
        meta: JSON-serializable free-form metadata (run name, step, data, scores); default ``{}``.

    Returns:
        The bundle folder.

    Raises:
        ValueError: an unsupported model, an unknown ``dtype``, a tokenizer larger than the
            model's vocabulary, or ``meta`` that is not a JSON object.
    """
    from safetensors.torch import save_file

    kind, config = _kind_of(model)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if not isinstance(tokenizer, Tokenizer):
        raise ValueError(f"tokenizer must implement the Tokenizer protocol, got {tokenizer!r}")
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} ids, more than the model's vocab_size "
            f"{config.vocab_size}"
        )
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict (a JSON object), got {type(meta).__name__}")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serializable: {exc}") from exc

    final = Path(path)
    tensors, aliases = _unique_tensors(model, _DTYPES[dtype])
    with atomic_directory(final) as tmp:
        # The aliases in the header let any safetensors reader see which names were tied.
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", **aliases})
        fsync_write(tmp / TOKENIZER_FILE, tokenizer.to_json().encode("utf-8"))
        spec = {
            "format": FORMAT_VERSION,
            "kind": kind,
            "config": config.to_dict(),
            "meta": meta,
            "dtype": dtype,
            "files": {f: sha256_file(tmp / f) for f in (WEIGHTS_FILE, TOKENIZER_FILE)},
        }
        fsync_write(tmp / SPEC_FILE, json.dumps(spec, indent=1, sort_keys=True).encode("utf-8"))
    return final


def _read_spec(spec_path: Path) -> dict[str, Any]:
    if not spec_path.is_file():
        raise BundleError(f"bundle file {str(spec_path)!r} is missing")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise BundleError(f"bundle file {str(spec_path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise BundleError(f"bundle file {str(spec_path)!r} must hold a JSON object")
    if spec.get("format") != FORMAT_VERSION:
        raise BundleError(
            f"bundle file {str(spec_path)!r} has format {spec.get('format')!r}, "
            f"this version reads {FORMAT_VERSION}"
        )
    if spec.get("kind") not in _KINDS:
        raise BundleError(
            f"bundle file {str(spec_path)!r} has kind {spec.get('kind')!r}, "
            f"expected one of {list(get_args(BundleKind))}"
        )
    for key, typ in (("config", dict), ("meta", dict), ("files", dict)):
        if not isinstance(spec.get(key), typ):
            raise BundleError(f"bundle file {str(spec_path)!r} lacks a {key!r} object")
    return spec


def load_bundle(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> Bundle:
    """Load a bundle folder written by :func:`save_bundle`.

    Building the model does not consume the caller's CPU random numbers.

    Args:
        path: the bundle folder.
        device: where to put the model; default ``"cpu"``.

    Returns:
        :class:`Bundle` with the fp32 model in ``eval()`` mode.

    Raises:
        BundleError: a missing folder or file, a file whose sha256 differs from ``model.json``,
            an unreadable safetensors or JSON file, an unknown ``format`` or ``kind``, an invalid
            config, a tokenizer larger than the model's vocabulary, or weights that do not fit
            the config; the message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle folder {str(root)!r} is missing or not a folder")
    spec_path = root / SPEC_FILE
    spec = _read_spec(spec_path)
    kind: BundleKind = spec["kind"]
    model_cls, config_cls = _KINDS[kind]
    try:
        config = config_cls.from_dict(spec["config"])
    except (ValueError, TypeError) as exc:
        raise BundleError(f"bundle file {str(spec_path)!r} has an invalid config: {exc}") from exc
    for fname in (WEIGHTS_FILE, TOKENIZER_FILE):
        fpath = root / fname
        if not fpath.is_file():
            raise BundleError(f"bundle file {str(fpath)!r} is missing")
        if sha256_file(fpath) != spec["files"].get(fname):
            raise BundleError(
                f"bundle file {str(fpath)!r} is truncated or corrupt "
                f"(sha256 differs from {str(spec_path)!r})"
            )
    tok_path = root / TOKENIZER_FILE
    try:
        tokenizer = load_tokenizer(tok_path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"bundle file {str(tok_path)!r} is not a tokenizer: {exc}") from exc
    if tokenizer.vocab_size > config.vocab_size:
        raise BundleError(
            f"bundle file {str(tok_path)!r} has {tokenizer.vocab_size} ids, more than the "
            f"vocab_size {config.vocab_size} in {str(spec_path)!r}"
        )
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from exc
    # The random init is overwritten at once; fork the RNG so loading leaves the caller's alone.
    with torch.random.fork_rng(devices=[]):
        model = model_cls(config)
    weights = root / WEIGHTS_FILE
    try:
        load_model(model, weights, strict=True)
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"bundle file {str(weights)!r} cannot be read: {exc}") from exc
    except RuntimeError as exc:
        raise BundleError(
            f"bundle file {str(weights)!r} does not match the {kind} config in "
            f"{str(spec_path)!r}: {exc}"
        ) from exc
    model.to(dev).eval()
    return Bundle(
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        config=config,
        meta=dict(spec["meta"]),
        path=root,
    )
