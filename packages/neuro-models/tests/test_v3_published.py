"""The published v3 training path learns nothing (reference-systems §5.2, §5.4 step 1).

One epoch of the published hybrid trainer on a small byte stream, at the published 16.4M size:
no backward pass, no gradient-trainable parameter moves except the short-term memory slots (an
input-driven ``.data`` EMA), no parameter depends on the targets, and validation CE is ln 256.
"""

from __future__ import annotations

import math

import pytest
import torch

from neuro_models.v3 import (
    V3Config,
    V3Model,
    byte_batches,
    published_comparison,
    published_step,
    published_train,
)

TEXT = (
    b"The quick brown fox jumps over the lazy dog. Memory consolidation and retrieval "
    b"mechanisms are essential for effective learning. Neurons that fire together wire "
    b"together. Short-term and long-term memory systems work together. "
) * 3

# Parameters the published forward writes with .data (v3 as published, d = 512, L = 6).
SIDE_EFFECTS = {"short_term_memory.memory_slots"} | {
    f"{prefix}.{i}.{name}"
    for i in range(6)
    for prefix, names in (
        ("spiking_neurons", ("membrane_potential", "spike_history")),
        ("developmental_plasticity", ("usage_count", "importance_scores")),
    )
    for name in names
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def _gradient_trainable() -> set[str]:
    # Which parameters the CE's gradient reaches at all (one backward on a separate model).
    torch.manual_seed(5)
    model = V3Model(V3Config.published()).train()
    x, y = torch.randint(0, 256, (2, 16)), torch.randint(0, 256, (2, 16))
    torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    return {k for k, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_published_epoch_learns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    trainable = _gradient_trainable()
    batches = byte_batches(TEXT, seq_len=32, batch_size=4)
    train, val = batches[:3], batches[3:]
    assert len(val) >= 2

    def no_backward(*args: object, **kwargs: object) -> None:
        raise AssertionError("the published path called backward")

    monkeypatch.setattr(torch.Tensor, "backward", no_backward)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)

    torch.manual_seed(0)
    model = V3Model(V3Config.published())
    before = _snapshot(model)
    (epoch,) = published_train(model, train, val, epochs=1)
    after = _snapshot(model)

    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed <= SIDE_EFFECTS
    assert "short_term_memory.memory_slots" in changed
    # Every parameter the gradient would train is bitwise unchanged, except the STM slots.
    assert trainable & changed == {"short_term_memory.memory_slots"}
    assert len(trainable) > 40
    assert all(p.grad is None for p in model.parameters())

    # Validation CE is the uniform-byte loss: nothing was learned.
    assert abs(epoch.val_loss - math.log(256)) < 0.02
    # Reported train loss = CE·(1 + 0.1·a) + error rate (≈ 1 for an untrained model).
    assert abs(epoch.train_loss - epoch.train_ce - 1.0) < 0.05
    assert epoch.steps == len(train)


def test_no_parameter_depends_on_the_targets() -> None:
    batches = byte_batches(TEXT, seq_len=16, batch_size=2)[:3]
    shuffled = [(x, torch.randint(0, 256, y.shape)) for x, y in batches]
    models = []
    for data in (batches, shuffled):
        torch.manual_seed(0)
        model = V3Model(V3Config.published(dim=32, num_layers=2, concept_dim=16, num_concepts=32))
        published_train(model, data, data[:1], epochs=2)
        models.append(_snapshot(model))
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_step_reports_the_published_loss_terms() -> None:
    torch.manual_seed(0)
    model = V3Model(V3Config.published(dim=32, num_layers=2, concept_dim=16, num_concepts=32))
    x, y = torch.randint(0, 256, (2, 8)), torch.randint(0, 256, (2, 8))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = published_step(model, x, y, step=0)
    # Recompute forward 1 from the same starting state: CE·(1 + 0.1·mean a) + mean error of forward 2.
    ref = V3Model(model.config)
    ref.load_state_dict(state)
    ref.train()
    with torch.no_grad():
        a = ref.embed(x).mean(dim=1)
        ce = torch.nn.functional.cross_entropy(ref(x, training_step=0).flatten(0, 1), y.flatten())
        err = (ref(x).argmax(-1) != y).float().mean()
    assert out["ce"] == pytest.approx(float(ce), rel=1e-6)
    assert out["loss"] == pytest.approx(float(ce * (1 + 0.1 * a.mean()) + err), rel=1e-6)


def test_byte_batches_and_bad_arguments() -> None:
    batches = byte_batches(bytes(range(21)), seq_len=4, batch_size=2)
    (x0, y0), (x1, _) = batches
    assert x0.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert y0.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert x1.tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]]  # the 5th window is dropped
    with pytest.raises(ValueError, match="seq_len"):
        byte_batches(b"abc", seq_len=0, batch_size=1)
    with pytest.raises(ValueError, match="data"):
        byte_batches(b"ab", seq_len=4, batch_size=1)
    model = V3Model(V3Config.published(dim=8, num_layers=1, concept_dim=4, num_concepts=4))
    with pytest.raises(ValueError, match="epochs"):
        published_train(model, batches, batches, epochs=0)
    with pytest.raises(ValueError, match="y"):
        published_step(model, x0, y0[:, :2], step=0)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_published_comparison_is_two_untrained_models_on_random_targets() -> None:
    # "5.55 vs 5.77": neither model is trained; each CE is ln 256 plus half its logits' variance
    # at init (the transformer's head reads a LayerNorm output of scale 1, v3's a smaller one).
    for seed in range(3):
        r = published_comparison(seed=seed)
        assert r.brain_params == 1_142_760
        assert r.transformer_params == 5_009_920
        assert round(r.memory_efficiency, 2) == 4.38
        for loss, var in ((r.transformer_loss, r.transformer_logit_var),
                          (r.brain_loss, r.brain_logit_var)):  # fmt: skip
            assert abs(loss - (math.log(256) + var / 2)) < 0.1
        assert r.transformer_logit_var > 10 * r.brain_logit_var
        assert r.transformer_time > 0
        assert r.brain_time > 0
