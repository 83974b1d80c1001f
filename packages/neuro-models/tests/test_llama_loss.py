"""Fused ``lm_head`` + cross-entropy (:meth:`Llama.loss`) against the plain logits path.

The plain path, ``F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())``, is the
reference: the fused loss must give the same value and the same gradient for every parameter.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models import Llama, LlamaConfig
from neuro_models.data import DataOrder
from neuro_models.train import TrainConfig, cross_entropy_loss, train

# Named tolerances per precision. fp32: the two paths differ only by summation order. bf16
# autocast: both round logits and gradients to bf16 at different points, so each is compared with
# the fp32 gradients; the fused error (relative to each tensor's scale) must stay within
# ``factor`` x the plain path's error, or under ``floor``.
TOL: dict[str, dict[str, Any]] = {
    "fp32": dict(rtol=1e-5, atol=1e-6),
    "bf16": dict(factor=2.0, floor=1e-2),
}
VOCAB = 37


def _model(tied: bool = False, seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB, d_model=24, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=40,
        max_seq_len=32, tie_embeddings=tied,
    )  # fmt: skip
    return Llama(cfg)


def _reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())


def _grads(loss: torch.Tensor, model: nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 39, 10_000])  # B·T = 39: 7 does not divide it
def test_fused_loss_and_gradients_equal_plain_fp32(tied, chunk):
    model = _model(tied)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (3, 13), generator=g)
    y = torch.randint(0, VOCAB, (3, 13), generator=g)
    ref = _reference(model, x, y)
    fused = model.loss(x, y, chunk=chunk)
    assert fused.dtype == torch.float32
    assert fused.shape == ()
    torch.testing.assert_close(fused, ref, **TOL["fp32"])
    # A random upstream gradient checks that backward scales by it.
    scale = 0.37
    for (name, _), a, b in zip(
        model.named_parameters(), _grads(scale * fused, model), _grads(scale * ref, model)
    ):
        torch.testing.assert_close(a, b, **TOL["fp32"], msg=name)


def test_fused_loss_and_gradients_match_plain_accuracy_under_bf16_autocast():
    model = _model()
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, VOCAB, (2, 11), generator=g)
    y = torch.randint(0, VOCAB, (2, 11), generator=g)
    truth = _grads(_reference(model, x, y), model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _reference(model, x, y)
        fused = model.loss(x, y, chunk=5)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, ref, rtol=0.0, atol=1e-3)
    tol = TOL["bf16"]
    for (name, _), t, a, b in zip(
        model.named_parameters(), truth, _grads(fused, model), _grads(ref, model)
    ):
        scale = t.abs().max().clamp(min=1e-12)
        err_fused = float((a - t).abs().max() / scale)
        err_plain = float((b - t).abs().max() / scale)
        assert err_fused <= max(tol["factor"] * err_plain, tol["floor"]), (
            name,
            err_fused,
            err_plain,
        )


def test_fused_loss_rejects_bad_arguments():
    model = _model()
    x = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="chunk"):
        model.loss(x, x, chunk=0)
    with pytest.raises(ValueError, match="targets"):
        model.loss(x, x[:, :4])


class _LogitsOnly(nn.Module):
    """The same Llama seen only through ``forward`` (no ``loss`` method)."""

    def __init__(self, inner: Llama) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_default_loss_uses_fused_path_and_matches_plain_training(tmp_path):
    model = _model()
    x = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    y = x.roll(1, dims=1)
    loss, extra = cross_entropy_loss(model, x, y)
    assert extra == {}
    torch.testing.assert_close(loss, _reference(model, x, y), **TOL["fp32"])
    assert "LinearCrossEntropy" in type(loss.grad_fn).__name__

    stream = torch.cumsum(
        torch.randint(1, 3, (600,), generator=torch.Generator().manual_seed(0)), 0
    )
    stream = stream % VOCAB

    def run(m: nn.Module, name: str) -> list[float]:
        cfg = TrainConfig(
            lr=1e-2, min_lr=1e-3, warmup_steps=1, max_steps=4, batch_size=4, seq_len=16,
            precision="fp32", out_dir=str(tmp_path / name), log_every=1, progress=False,
        )  # fmt: skip
        return train(m, cfg, DataOrder(stream, 16, 4, seed=0)).losses

    fused = run(_model(seed=4), "fused")
    plain = run(_LogitsOnly(_model(seed=4)), "plain")
    assert fused == pytest.approx(plain, rel=1e-5)
