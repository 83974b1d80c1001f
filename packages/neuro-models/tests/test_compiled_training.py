"""The training path: ``causal_attention`` (written-out softmax attention for bf16 on CPU, SDPA
otherwise; eager and compiled) and :class:`~neuro_models.train.CompiledModel` (model and ``loss`` compiled).

References are written here: attention as an explicit float64 softmax over a causal mask, the
loss as ``F.cross_entropy`` of the eager model's logits. Forward and every gradient are compared,
with random upstream gradients.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_models import Llama, LlamaConfig
from neuro_models.decoder import functional
from neuro_models.decoder.functional import causal_attention
from neuro_models.train import CompiledModel, TrainConfig, compile_model, train

pytestmark = pytest.mark.usefixtures("one_thread")

# Named tolerances per dtype, against the float64 reference.
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=3e-2, atol=3e-2)}
VOCAB = 37


def _attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    q, k, v = q.double(), k.double(), v.double()
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    future = torch.arange(t)[None, :] > torch.arange(t)[:, None]
    weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    return weights @ v


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("written_out", [True, False])  # False: over the size limit, SDPA
@pytest.mark.parametrize("t", [19, 150])  # 150: query blocks of 64, 64 and 22
def test_causal_attention_equals_the_reference_with_gradients(
    dtype, compiled, written_out, t, monkeypatch
):
    if not written_out:
        monkeypatch.setattr(functional, "CPU_WRITTEN_ATTENTION_MAX_SCORES", 2 * 3 * t * t - 1)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, t, 12, generator=g).to(dtype).requires_grad_() for _ in range(3))
    grad_out = torch.randn(2, 3, t, 12, generator=g).to(dtype)
    fn = torch.compile(causal_attention, fullgraph=True) if compiled else causal_attention
    out = fn(q, k, v)
    assert out.dtype == dtype
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    ref_q, ref_k, ref_v = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = _attention_reference(ref_q, ref_k, ref_v)
    ref_grads = torch.autograd.grad(ref, (ref_q, ref_k, ref_v), grad_out.double())
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    for name, a, b in zip("qkv", grads, ref_grads, strict=True):
        torch.testing.assert_close(a.double(), b, **TOL[dtype], msg=f"grad {name}")


def _model(n_kv_heads: int, seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(
        LlamaConfig(
            vocab_size=VOCAB, d_model=24, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads,
            ffn_dim=40, max_seq_len=32, tie_embeddings=True,
        )
    )  # fmt: skip


@pytest.mark.parametrize("n_kv_heads", [4, 2])  # MHA (written-out attention), GQA (SDPA)
def test_compiled_model_loss_and_gradients_equal_the_eager_logits_path(n_kv_heads):
    model = _model(n_kv_heads)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (3, 13), generator=g)
    y = torch.randint(0, VOCAB, (3, 13), generator=g)
    ref = F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    compiled = compile_model(model)
    assert isinstance(compiled, CompiledModel)
    loss = compiled.loss(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    names = [name for name, _ in model.named_parameters()]
    for name, a, b in zip(names, grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_compiled_model_wraps_without_duplicating_parameters():
    model = _model(4)
    compiled = CompiledModel(model)
    assert all(p is q for p, q in zip(compiled.parameters(), model.parameters(), strict=True))
    assert list(compiled.state_dict()) == [f"module.{k}" for k in model.state_dict()]
    # Attributes other than forward/loss are the model's.
    assert compiled.config is model.config
    assert compiled.new_cache.__self__ is model


def test_compile_model_of_a_model_without_loss_is_plain_torch_compile():
    plain = nn.Sequential(nn.Embedding(VOCAB, 8), nn.Linear(8, VOCAB))
    compiled = compile_model(plain)
    assert not isinstance(compiled, CompiledModel)
    assert compiled._orig_mod is plain  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="must define loss"):
        CompiledModel(plain)


def test_train_with_compile_tracks_eager(tmp_path):
    from neuro_models.data import DataOrder

    g = torch.Generator().manual_seed(0)
    stream = torch.cumsum(torch.randint(1, 3, (600,), generator=g), 0) % VOCAB
    runs = []
    for compile_ in (False, True):
        cfg = TrainConfig(
            lr=1e-2, min_lr=1e-3, warmup_steps=1, max_steps=4, batch_size=4, seq_len=16,
            precision="fp32", compile=compile_, out_dir=str(tmp_path / f"run{compile_}"),
            log_every=1, progress=False, plot=False,
        )  # fmt: skip
        runs.append(train(_model(4), cfg, DataOrder(stream, 16, 4, seed=3)).losses)
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)
