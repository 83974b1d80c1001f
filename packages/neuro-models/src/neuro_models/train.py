"""The trainer shared by every baseline and reproduction.

AdamW (weight decay on matrices only), linear warmup then cosine decay to ``min_lr``, gradient
clipping, gradient accumulation, bf16 autocast where the hardware supports it, optional
``torch.compile``, DDP/FSDP2 under ``torchrun`` (:mod:`neuro_models.distributed`), atomic
safetensors checkpoints that resume bit-identically (:mod:`neuro_models.checkpoint`), metrics as
JSON lines (``polars.read_ndjson``), a loss-curve PNG and a progress bar with tokens/s and MFU.

Learning rate at optimizer step ``s`` (0-based), with ``W = warmup_steps``, ``D = lr_decay_steps``:

    lr(s) = lr · (s + 1) / W                                        for s < W
    lr(s) = min_lr + ½ (lr − min_lr) (1 + cos(π (s − W) / (D − W)))  for W ≤ s < D
    lr(s) = min_lr                                                  for s ≥ D

This is the shape of nanoGPT's ``get_lr`` (``train.py``), so the quality anchor follows the
published recipe.

Command line (``neuro-train`` or ``python -m neuro_models.train``)::

    neuro-train --corpus tinystories --tokenizer bpe --vocab-size 4096 \\
        --d-model 128 --n-layers 4 --n-heads 4 --max-steps 500 --out-dir runs/ts
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from neuro_models.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from neuro_models.checkpoint import save_checkpoint as _save_checkpoint
from neuro_models.data.shards import DataOrder
from neuro_models.distributed import Parallel, all_reduce_mean, dist_info, parallelize
from neuro_models.evaluate import logits_of

__all__ = [
    "CompiledModel",
    "LossFn",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "compile_model",
    "cpu_supports_bf16",
    "cross_entropy_loss",
    "lr_at",
    "main",
    "train",
]

log = logging.getLogger(__name__)

Precision = Literal["auto", "bf16-autocast", "fp32"]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]

# Fields that may change between a run and its resumption without changing the trajectory.
_RESUME_FREE = {
    "max_steps",
    "max_tokens",
    "out_dir",
    "ckpt_every",
    "eval_every",
    "log_every",
    "keep_checkpoints",
    "resume",
    "progress",
    "peak_flops",
    "compile",
    "parallel",
    "plot",
    "lr_decay_steps",  # compared after resolution ("lr_decay_steps_resolved")
}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run besides the model and the data order.

    Defaults follow ``shared/specs/reference-systems.md`` §6.2 (AdamW β = (0.9, 0.95), weight
    decay 0.1 on matrices, clip 1.0, cosine with warmup).

    Attributes:
        lr: peak learning rate (after warmup).
        min_lr: final learning rate of the cosine.
        warmup_steps: linear warmup length in optimizer steps.
        max_steps: optimizer steps to run; give this or ``max_tokens`` (the other ``None``).
        max_tokens: token budget; ``max_steps = ceil(max_tokens / tokens_per_step)``.
        lr_decay_steps: step at which the cosine reaches ``min_lr``; ``None`` = ``max_steps``.
        batch_size: windows per micro-batch (global over ranks); must equal the data order's.
        seq_len: tokens per window; must equal the data order's.
        grad_accum: micro-batches per optimizer step.
        grad_clip: max global gradient L2 norm (0 disables clipping).
        weight_decay: AdamW decay for parameters with ≥ 2 dims (matrices, embeddings); vectors
            (norm gains, biases) are not decayed.
        betas, eps: AdamW moments.
        seed: seeds ``torch`` before the first step (dropout etc.; model init is the caller's).
        precision: ``"bf16-autocast"``, ``"fp32"`` or ``"auto"`` (bf16 autocast where the
            device supports bf16 matmuls — AVX-512-BF16/AMX on CPU, compute capability ≥ 8 on
            CUDA — else fp32). Parameters and optimizer state are always fp32.
        compile: run the model through ``torch.compile`` (on one device :func:`compile_model`:
            with its ``loss`` compiled too when it has one).
        parallel: ``"none"``, ``"ddp"`` or ``"fsdp"`` (needs ``torchrun``).
        out_dir: run directory: ``metrics.jsonl``, ``eval.jsonl``, ``checkpoints/``, plots.
        ckpt_every: checkpoint every N steps (0: only at the end).
        eval_every: call ``eval_fn`` every N steps (0: only at the end).
        log_every: write a metrics row every N steps.
        keep_checkpoints: newest checkpoints kept on disk.
        resume: continue from ``out_dir/checkpoints/latest`` if it exists.
        progress: show a tqdm bar (main rank only).
        peak_flops: device peak FLOP/s for MFU; ``None`` measures a 1024³ matmul once per
            process (in the training precision). On a shared machine that measurement is low
            and MFU reads high; pass the machine's roof for a meaningful figure.
        plot: write ``loss_curve.png`` at the end (needs matplotlib).
    """

    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    max_steps: int | None = 1000
    max_tokens: int | None = None
    lr_decay_steps: int | None = None
    batch_size: int = 8
    seq_len: int = 256
    grad_accum: int = 1
    grad_clip: float = 1.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    seed: int = 0
    precision: Precision = "auto"
    compile: bool = False
    parallel: Parallel = "none"
    out_dir: str = "runs/default"
    ckpt_every: int = 0
    eval_every: int = 0
    log_every: int = 10
    keep_checkpoints: int = 2
    resume: bool = False
    progress: bool = True
    peak_flops: float | None = None
    plot: bool = True

    def __post_init__(self) -> None:
        for name in ("lr", "min_lr", "eps"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= lr ({self.lr})")
        for name in ("batch_size", "seq_len", "grad_accum", "keep_checkpoints"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("warmup_steps", "ckpt_every", "eval_every", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if not isinstance(self.log_every, int) or self.log_every < 1:
            raise ValueError(f"log_every must be an int >= 1, got {self.log_every!r}")
        if (self.max_steps is None) == (self.max_tokens is None):
            raise ValueError("give exactly one of max_steps and max_tokens (set the other to None)")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"max_steps must be an int >= 1, got {self.max_steps!r}")
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int) or self.max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be an int >= 1, got {self.max_tokens!r}")
        if self.lr_decay_steps is not None and (
            not isinstance(self.lr_decay_steps, int) or self.lr_decay_steps <= self.warmup_steps
        ):
            raise ValueError(
                f"lr_decay_steps must be an int > warmup_steps ({self.warmup_steps}), "
                f"got {self.lr_decay_steps!r}"
            )
        if not (isinstance(self.grad_clip, int | float) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be >= 0, got {self.grad_clip!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, int | float) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if self.precision not in ("auto", "bf16-autocast", "fp32"):
            raise ValueError(
                f"precision must be 'auto', 'bf16-autocast' or 'fp32', got {self.precision!r}"
            )
        if self.parallel not in ("none", "ddp", "fsdp"):
            raise ValueError(f"parallel must be 'none', 'ddp' or 'fsdp', got {self.parallel!r}")
        if self.peak_flops is not None and not self.peak_flops > 0:
            raise ValueError(f"peak_flops must be > 0, got {self.peak_flops!r}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len * self.grad_accum

    @property
    def total_steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        assert self.max_tokens is not None
        return math.ceil(self.max_tokens / self.tokens_per_step)

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps if self.lr_decay_steps is not None else self.total_steps

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class StepInfo:
    """Passed to callbacks after every optimizer step (``step`` = steps completed)."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    metrics: dict[str, float]
    model: nn.Module


@dataclass
class TrainResult:
    """What a run produced. ``losses[i]`` is the training loss of optimizer step ``i`` (for
    steps run in this call; a resumed run starts at ``start_step``)."""

    out_dir: Path
    start_step: int
    final_step: int
    losses: list[float]
    evals: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0
    precision: str = "fp32"


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based); see the module docstring."""
    W, D = config.warmup_steps, config.decay_steps
    if step < W:
        return config.lr * (step + 1) / W
    if step >= D:
        return config.min_lr
    ratio = (step - W) / (D - W)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.lr - config.min_lr)


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matmul (oneDNN: AVX-512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(
    precision: Precision, device: torch.device
) -> Literal["bf16-autocast", "fp32"]:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16-autocast" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16-autocast" if device.type == "cpu" and cpu_supports_bf16() else "fp32"


@functools.lru_cache(maxsize=4)
def measure_peak_flops(device_type: str, dtype: torch.dtype, n: int = 1024) -> float:
    """Best-of-5 FLOP/s of an ``n × n × n`` matmul: the roof MFU is measured against."""
    dev = torch.device(device_type)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: ``6·N`` over matmul parameters (embedding lookups excluded unless
    tied to the output head) plus ``12·L·d·T`` for attention (PaLM, appendix B)."""
    embeds = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linears = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    n = 0
    for p in model.parameters():
        if id(p) in embeds and id(p) not in linears:
            continue
        n += p.numel()
    flops = 6.0 * n
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "n_layers") and hasattr(cfg, "d_model"):
        flops += 12.0 * cfg.n_layers * cfg.d_model * seq_len
    return flops


def cross_entropy_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Default loss: mean next-token cross-entropy in fp32, no extra metrics.

    A model whose class defines ``loss(inputs, targets) -> mean NLL`` (:meth:`Llama.loss`, fused
    ``lm_head`` + cross-entropy) is trained through it; anything else, including a wrapper such
    as ``torch.compile``'s or DDP's, whose class has no ``loss``, through ``model(inputs)``.
    """
    if callable(getattr(type(model), "loss", None)):
        return model.loss(inputs, targets), {}  # type: ignore[operator]
    logits = logits_of(model, inputs)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return loss, {}


class CompiledModel(nn.Module):
    """``torch.compile`` of a model whose class defines ``loss(inputs, targets)``: ``forward`` and
    ``loss`` are each compiled, so that :func:`cross_entropy_loss` trains through the compiled,
    fused ``lm_head`` + cross-entropy (one graph from tokens to the mean NLL) instead of
    materializing the logits and taking an fp32 cross-entropy outside the compiled graph, as a
    bare ``torch.compile(model)`` wrapper (which has no ``loss``) must. Any other attribute is
    the wrapped model's (``module``); its parameters are ``module``'s.
    """

    def __init__(self, model: nn.Module) -> None:
        if not callable(getattr(type(model), "loss", None)):
            raise TypeError(
                f"model must define loss(inputs, targets), {type(model).__name__} does not"
            )
        super().__init__()
        self.module = model
        # Compiled bound methods, kept out of the module tree (no duplicate parameters).
        self.__dict__["_compiled_forward"] = torch.compile(model)
        self.__dict__["_compiled_loss"] = torch.compile(model.loss)  # type: ignore[arg-type]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["_compiled_forward"](*args, **kwargs)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The wrapped model's ``loss(inputs, targets)``, compiled."""
        out: torch.Tensor = self.__dict__["_compiled_loss"](inputs, targets)
        return out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["module"], name)


def compile_model(model: nn.Module) -> nn.Module:
    """What ``TrainConfig.compile`` trains: :class:`CompiledModel` for a model whose class defines
    ``loss`` (e.g. :class:`~neuro_models.llama.Llama`), else ``torch.compile(model)`` (a DDP/FSDP
    wrapper, or a model trained through its logits)."""
    if callable(getattr(type(model), "loss", None)):
        return CompiledModel(model)
    return torch.compile(model)  # type: ignore[return-value]


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    return None


def _build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused (one kernel over all tensors) AdamW rather than the per-tensor loop on CPU; kept
    # off under DDP/FSDP, where the parameters may be DTensors.
    fused = config.parallel == "none" and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay
    )
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused or None
    )


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = s
    return state


def _set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [state[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in state]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _check_resume(meta: Mapping[str, Any], current: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose run differs from this one, naming the first differing field."""
    old_cfg = meta.get("train_config", {})
    new_cfg = current["train_config"]
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if key in _RESUME_FREE:
            continue
        if old_cfg.get(key) != new_cfg.get(key):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: train config field {key!r} is {old_cfg.get(key)!r}, "
                f"this run has {new_cfg.get(key)!r}"
            )
    for name in ("lr_decay_steps_resolved", "precision_resolved"):
        if name in meta and meta[name] != current[name]:
            raise CheckpointError(
                f"checkpoint {str(path)!r}: {name} is {meta[name]!r}, "
                f"this run has {current[name]!r}"
            )
    old_model, new_model = meta.get("model_config"), current["model_config"]
    if old_model is not None and new_model is not None:
        for key in sorted(set(old_model) | set(new_model)):
            if old_model.get(key) != new_model.get(key):
                raise CheckpointError(
                    f"checkpoint {str(path)!r}: model config field {key!r} is "
                    f"{old_model.get(key)!r}, this model has {new_model.get(key)!r}"
                )
    old_tok, new_tok = meta.get("tokenizer_id"), current["tokenizer_id"]
    if old_tok is not None and new_tok is not None and old_tok != new_tok:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: tokenizer_id {old_tok[:12]}… differs from this run's "
            f"{new_tok[:12]}…"
        )


def _check_state_shapes(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, Any], path: Path
) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: model tensors missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for k, v in expected.items():
        if tuple(v.shape) != tuple(got[k].shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: tensor {k!r} has shape {tuple(got[k].shape)}, "
                f"the model has {tuple(v.shape)}"
            )


def _truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop rows written after the checkpoint we resume from (the killed run's tail)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= max_step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, path)


def train(
    model: nn.Module,
    config: TrainConfig,
    train_order: DataOrder,
    *,
    loss_fn: LossFn | None = None,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    tokenizer_id: str | None = None,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_order`` for ``config.total_steps`` optimizer steps.

    Args:
        model: maps int64 ``[B, T]`` to logits ``[B, T, V]`` (or whatever ``loss_fn`` needs).
            Its ``config.to_dict()`` (if any) is stored in checkpoints and checked on resume.
        config: :class:`TrainConfig`.
        train_order: the shared :class:`DataOrder`; its position advances by ``grad_accum`` per
            step and is checkpointed.
        loss_fn: ``(model, inputs, targets) -> (loss, extra metrics)``; default
            :func:`cross_entropy_loss`. Extra metrics are averaged over micro-batches and logged
            as separate columns (e.g. an NCN regularizer).
        eval_fn: ``model -> {name: value}``, called every ``eval_every`` steps and at the end on
            every rank (FSDP needs all ranks); rows go to ``eval.jsonl``.
        callbacks: called with a :class:`StepInfo` after every optimizer step.
        tokenizer_id: identity of the tokenizer, stored in checkpoints and checked on resume.
        device: where to train; default the device of the model's parameters.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: a data order whose ``batch_size``/``seq_len`` differ from ``config``, a
            ``seq_len`` above the model's ``max_seq_len``.
        CheckpointError: ``resume`` with a checkpoint that is corrupt or belongs to another run.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if train_order.batch_size != config.batch_size:
        raise ValueError(
            f"train_order.batch_size ({train_order.batch_size}) != config.batch_size "
            f"({config.batch_size})"
        )
    if train_order.seq_len != config.seq_len:
        raise ValueError(
            f"train_order.seq_len ({train_order.seq_len}) != config.seq_len ({config.seq_len})"
        )
    max_len = getattr(getattr(model, "config", None), "max_seq_len", None)
    if isinstance(max_len, int) and config.seq_len > max_len:
        raise ValueError(f"seq_len {config.seq_len} exceeds the model's max_seq_len {max_len}")
    loss_fn = loss_fn or cross_entropy_loss
    info = dist_info()
    if config.batch_size % info.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is not divisible by the world size {info.world_size}"
        )
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    precision = resolve_precision(config.precision, device)
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    metrics_path = out_dir / "metrics.jsonl"
    eval_path = out_dir / "eval.jsonl"
    total = config.total_steps
    current_meta = {
        "train_config": config.to_dict(),
        "model_config": _model_config(model),
        "tokenizer_id": tokenizer_id,
        "lr_decay_steps_resolved": config.decay_steps,
        "precision_resolved": precision,
        "n_params": sum(p.numel() for p in model.parameters()),
    }

    torch.manual_seed(config.seed)
    raw = model
    wrapped = parallelize(raw, config.parallel)
    optimizer = _build_optimizer(raw, config)
    start = 0
    ckpt_path = latest_checkpoint(ckpt_dir) if config.resume else None
    if ckpt_path is not None:
        start = _resume(raw, optimizer, train_order, ckpt_path, current_meta)
        log.info("resumed from %s at step %d", ckpt_path, start)
    elif info.is_main and not config.resume:
        for old in (metrics_path, eval_path):
            if old.exists():
                old.unlink()
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _truncate_jsonl(metrics_path, start)
        _truncate_jsonl(eval_path, start)
        (out_dir / "config.json").write_text(json.dumps(current_meta, indent=1))
    fwd: nn.Module = wrapped
    if config.compile:
        # Under DDP/FSDP the wrapper's forward (and its hooks) must run: compile it as it is.
        fwd = compile_model(wrapped) if config.parallel == "none" else torch.compile(wrapped)  # type: ignore[assignment]

    fpt = flops_per_token(raw, config.seq_len)
    peak: float | None = config.peak_flops
    if peak is None and config.progress and info.is_main:
        dtype = torch.bfloat16 if precision == "bf16-autocast" else torch.float32
        peak = measure_peak_flops(device.type, dtype) * info.world_size
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if precision == "bf16-autocast"
        else _NullContext()
    )
    params = [p for p in raw.parameters() if p.requires_grad]
    result = TrainResult(out_dir, start, start, [], precision=precision)
    bar = None
    if config.progress and info.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    t_last, tok_last = t0, 0
    wrapped.train()
    try:
        for step in range(start, total):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            extra_sum: dict[str, float] = {}
            for micro in range(config.grad_accum):
                x, y = train_order.next_batch(info.rank, info.world_size)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = micro == config.grad_accum - 1
                ctx = (
                    wrapped.no_sync()  # type: ignore[operator]
                    if config.parallel == "ddp" and not sync
                    else _NullContext()
                )
                if config.parallel == "fsdp":
                    wrapped.set_requires_gradient_sync(sync)  # type: ignore[operator,union-attr]
                with ctx:
                    with autocast:
                        loss, extra = loss_fn(fwd, x, y)
                    (loss / config.grad_accum).backward()
                loss_sum += float(loss.detach())
                for k, v in extra.items():
                    extra_sum[k] = extra_sum.get(k, 0.0) + float(v)
            if config.grad_clip > 0:
                gn = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            else:
                gn = torch.nn.utils.clip_grad_norm_(params, float("inf"))
            grad_norm = float(gn.full_tensor() if hasattr(gn, "full_tensor") else gn)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            loss_mean = all_reduce_mean(loss_sum / config.grad_accum)
            extras = {k: all_reduce_mean(v / config.grad_accum) for k, v in extra_sum.items()}
            result.losses.append(loss_mean)
            result.final_step = done
            result.tokens = done * config.tokens_per_step
            if not math.isfinite(loss_mean):
                raise FloatingPointError(f"training loss is {loss_mean} at step {done}")
            if done % config.log_every == 0 or done == total:
                now = time.perf_counter()
                tok = (done - start) * config.tokens_per_step
                tps = (tok - tok_last) / max(now - t_last, 1e-9)
                t_last, tok_last = now, tok
                mfu = tps * fpt / peak if peak else None
                row = {
                    "step": done,
                    "tokens": result.tokens,
                    "loss": loss_mean,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_s": tps,
                    "mfu": mfu,
                    "wall_s": now - t0,
                    **extras,
                }
                if info.is_main:
                    with metrics_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{loss_mean:.4f}",
                        tok_s=f"{tps:,.0f}",
                        mfu=f"{mfu:.1%}" if mfu is not None else "n/a",
                    )
            if eval_fn is not None and (
                (config.eval_every and done % config.eval_every == 0) or done == total
            ):
                values = dict(eval_fn(raw))
                wrapped.train()
                erow = {"step": done, "tokens": result.tokens, **values}
                result.evals.append(erow)
                if info.is_main:
                    with eval_path.open("a") as fh:
                        fh.write(json.dumps(erow) + "\n")
            if (config.ckpt_every and done % config.ckpt_every == 0) or done == total:
                _save(raw, optimizer, train_order, ckpt_dir, done, current_meta, config)
            for cb in callbacks:
                cb(StepInfo(done, loss_mean, lr, grad_norm, result.tokens, extras, raw))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    result.wall_s = time.perf_counter() - t0
    if config.plot and info.is_main:
        plot_loss_curve(out_dir)
    return result


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _resume(
    raw: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: DataOrder,
    path: Path,
    current_meta: Mapping[str, Any],
) -> int:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    ckpt = load_checkpoint(path)
    _check_resume(ckpt.meta, current_meta, path)
    opts = StateDictOptions(full_state_dict=True)
    expected: dict[str, Any] = dict(get_model_state_dict(raw, options=opts))
    _check_state_shapes(expected, ckpt.model, path)
    set_model_state_dict(raw, dict(ckpt.model), options=opts)  # type: ignore[arg-type]
    if ckpt.optimizer is None:
        raise CheckpointError(f"checkpoint {str(path)!r} has no optimizer state")
    try:
        set_optimizer_state_dict(raw, optimizer, ckpt.optimizer, options=opts)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: optimizer state does not fit: {exc}"
        ) from exc
    order_state = ckpt.meta.get("data_order")
    if order_state is None:
        raise CheckpointError(f"checkpoint {str(path)!r} has no field 'data_order'")
    try:
        order.load_state_dict(order_state)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from exc
    _set_rng_state(ckpt.rng)
    return ckpt.step


def _save(
    raw: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: DataOrder,
    ckpt_dir: Path,
    step: int,
    current_meta: Mapping[str, Any],
    config: TrainConfig,
) -> None:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    # Full (unsharded) state on every rank: collective under FSDP, so all ranks must call it.
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd: dict[str, Any] = dict(get_model_state_dict(raw, options=opts))
    optim_sd = get_optimizer_state_dict(raw, optimizer, options=opts)
    if not dist_info().is_main:
        return
    meta = {**current_meta, "data_order": order.state_dict(), "step": step}
    _save_checkpoint(
        ckpt_dir,
        step,
        model=model_sd,
        optimizer=optim_sd,
        rng=_rng_state(),
        meta=meta,
        keep=config.keep_checkpoints,
    )


def plot_loss_curve(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None
) -> Path | None:
    """Plot ``metrics.jsonl`` (train loss) and ``eval.jsonl`` (``val_loss``/``nll``) of a run
    into ``loss_curve.png``; returns ``None`` without matplotlib."""
    try:
        # A bare Figure (no pyplot): the caller's matplotlib backend is never switched.
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed; no loss curve written")
        return None
    run_dir = Path(run_dir)
    rows = _read_jsonl(run_dir / "metrics.jsonl")
    evals = _read_jsonl(run_dir / "eval.jsonl")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    if rows:
        ax.plot([r["tokens"] for r in rows], [r["loss"] for r in rows], label="train loss")
    key = next((k for k in ("val_loss", "nll") if evals and k in evals[0]), None)
    if key is not None:
        ax.plot(
            [r["tokens"] for r in evals], [r[key] for r in evals], "o-", label=f"held-out {key}"
        )
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(path) if path is not None else run_dir / "loss_curve.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


_MODEL_FIELDS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "rope_theta")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="neuro-train", description="Train the Llama baseline on a registered corpus."
    )
    g = p.add_argument_group("data")
    g.add_argument("--corpus", default="tinystories")
    g.add_argument("--data-dir", default=None, help="default: $NEURO_DATA_DIR or ../shared/data")
    g.add_argument("--tokenizer", choices=("bpe", "byte", "char"), default="bpe")
    g.add_argument("--vocab-size", type=int, default=4096)
    g.add_argument("--cache-dir", default=None)
    g.add_argument("--data-seed", type=int, default=0, help="seed of the shared data order")
    g.add_argument("--eval-tokens", type=int, default=None, help="cap on held-out tokens")
    m = p.add_argument_group("model (LlamaConfig)")
    m.add_argument("--d-model", type=int, default=128)
    m.add_argument("--n-layers", type=int, default=4)
    m.add_argument("--n-heads", type=int, default=4)
    m.add_argument("--n-kv-heads", type=int, default=None, help="default: n_heads")
    m.add_argument("--ffn-dim", type=int, default=None, help="default: swiglu_hidden(d_model)")
    m.add_argument("--rope-theta", type=float, default=10000.0)
    t = p.add_argument_group("training (TrainConfig)")
    t.add_argument("--config", default=None, help="JSON file of TrainConfig fields")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "betas":
            t.add_argument(flag, type=float, nargs=2, default=None)
        elif f.type in ("bool",):
            t.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name in ("max_steps", "max_tokens", "lr_decay_steps"):
            t.add_argument(
                flag, type=lambda s: None if s.lower() == "none" else int(s), default=None
            )
        elif f.type in ("int",):
            t.add_argument(flag, type=int, default=None)
        elif f.type in ("float", "float | None"):
            t.add_argument(flag, type=float, default=None)
        else:
            t.add_argument(flag, default=None)
    p.add_argument("--generate", type=int, default=0, help="sample this many tokens at the end")
    p.add_argument("--prompt", default="Once upon a time", help="prompt of the final sample")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``neuro-train`` / ``python -m neuro_models.train``."""
    from neuro_models.config import LlamaConfig, swiglu_hidden
    from neuro_models.data.prepare import prepare_data
    from neuro_models.distributed import init_distributed, shutdown_distributed
    from neuro_models.evaluate import evaluate
    from neuro_models.llama import Llama

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parse_args(argv)
    info = init_distributed()
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(json.loads(Path(args.config).read_text()))
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    if "max_tokens" in values and "max_steps" not in values:
        values["max_steps"] = None
    config = TrainConfig.from_dict(values)
    data = prepare_data(
        args.corpus,
        args.tokenizer,
        vocab_size=args.vocab_size,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
    )
    torch.manual_seed(config.seed)
    mcfg = LlamaConfig(
        vocab_size=data.tokenizer.vocab_size,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        n_kv_heads=args.n_kv_heads or args.n_heads,
        ffn_dim=args.ffn_dim or swiglu_hidden(args.d_model),
        rope_theta=args.rope_theta,
        max_seq_len=config.seq_len,
    )
    device = torch.device("cuda", info.local_rank) if torch.cuda.is_available() else None
    model = Llama(mcfg).to(device or "cpu")
    order = DataOrder(data.train, config.seq_len, config.batch_size, seed=args.data_seed)

    def eval_fn(m: nn.Module) -> dict[str, float]:
        r = evaluate(m, data.valid, config.seq_len, max_tokens=args.eval_tokens)
        return {"val_loss": r.nll, "val_ppl": r.ppl, "val_bpb": r.bpb or float("nan")}

    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    if info.is_main:
        (Path(config.out_dir) / "tokenizer.json").write_text(data.tokenizer.to_json())
    result = train(model, config, order, eval_fn=eval_fn, tokenizer_id=data.tokenizer.identity)
    if info.is_main and result.evals:
        last = result.evals[-1]
        log.info(
            "held-out %s: loss %.4f  ppl %.2f  bpb %.4f",
            args.corpus,
            last["val_loss"],
            last["val_ppl"],
            last["val_bpb"],
        )
    if args.generate and info.is_main:
        from neuro_models.generate import SamplingConfig, generate_text

        # The model's context is seq_len: a longer sample would not fit.
        room = config.seq_len - len(data.tokenizer.encode(args.prompt))
        if room < 1:
            raise ValueError(f"--prompt is longer than the context ({config.seq_len} tokens)")
        sample = generate_text(
            model,
            data.tokenizer,
            [args.prompt],
            SamplingConfig(max_new_tokens=min(args.generate, room), temperature=0.8, top_k=40),
            generator=torch.Generator().manual_seed(config.seed),
        )[0]
        log.info("sample:\n%s%s", args.prompt, sample)
    shutdown_distributed()


if __name__ == "__main__":
    main()
