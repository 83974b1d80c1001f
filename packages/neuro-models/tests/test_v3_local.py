"""LocalTrainer: v3 learns with plasticity rules and stage-local losses, and no parameter is moved by
the gradient of the model's (global) loss. Each rule is checked against a formula written here."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from neuro_models.v3 import (
    LocalLearningConfig,
    LocalTrainer,
    V3Config,
    V3Model,
    byte_batches,
)

CFG = V3Config(dim=32, num_layers=2, memory_size=8, concept_dim=16, num_concepts=32,
               episodic_slots=5, max_dim=4)  # fmt: skip
TEXT = b"the cat sat on the mat. the dog sat on the log. " * 20
ONLY = {"readout_lr": 0.0, "local_lr": 0.0, "stdp_lr": 0.0, "oja_lr": 0.0}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(seed: int = 0, config: V3Config = CFG) -> V3Model:
    torch.manual_seed(seed)
    return V3Model(config)


def _batch(seed: int = 0, b: int = 3, t: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t), generator=gen), torch.randint(
        0, 256, (b, t), generator=gen
    )


def _deltas(model: V3Model, trainer: LocalTrainer, x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    trainer.step(x, y)
    return {k: p.detach() - before[k] for k, p in model.named_parameters()}


def test_learns_a_byte_stream_without_global_backprop() -> None:
    batches = byte_batches(TEXT, seq_len=32, batch_size=4)
    train, val = batches[:6], batches[6:]
    model = _model(config=CFG.replace(dim=64, concept_dim=32, num_concepts=64))
    trainer = LocalTrainer(model)

    def val_ce() -> float:
        model.eval()
        with torch.no_grad():
            return sum(float(model.loss(x, y)) for x, y in val) / len(val)

    first = val_ce()
    steps = trainer.train(train, epochs=5)
    assert abs(first - math.log(256)) < 0.1
    assert val_ce() < 3.5  # held-out windows of the same stream; ln 256 = 5.55
    assert all(p.grad is None for p in model.parameters())
    # Every rule moved its parameters.
    last = steps[-1].updates
    assert last["output_proj.weight"] > 0
    assert last["token_embedding.weight"] > 0
    assert last["long_term_memory.concept_embeddings.weight"] > 0
    assert any(s.updates.get("spiking_neurons.0.synaptic_weights.weight", 0) > 0 for s in steps)


def test_no_parameter_depends_on_the_model_readout() -> None:
    # If any update came from differentiating the model's loss, it would pass through the readout
    # W_o; changing W_o must leave every other parameter's update unchanged.
    x, y = _batch()
    deltas = []
    for scale in (1.0, -3.0):
        model = _model()
        with torch.no_grad():
            model.output_proj.weight.mul_(scale)
        trainer = LocalTrainer(model)
        trainer.step(*_batch(1))  # sets the baselines, so STDP runs on the next step
        deltas.append(_deltas(model, trainer, x, y))
    for name, d in deltas[0].items():
        if not name.startswith("output_proj."):
            torch.testing.assert_close(d, deltas[1][name], rtol=0, atol=1e-7, msg=name)
    assert deltas[0]["token_embedding.weight"].abs().sum() > 0
    # The probe is sensitive: the global loss's gradient at the embedding does depend on W_o.
    grads = []
    for scale in (1.0, -3.0):
        model = _model()
        with torch.no_grad():
            model.output_proj.weight.mul_(scale)
        model.loss(x, y).backward()
        assert model.token_embedding.weight.grad is not None
        grads.append(model.token_embedding.weight.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_stage_zero_ignores_later_stages() -> None:
    # No error crosses a stage boundary: stage 0's own parameters get the same update whatever
    # the parameters of stage 1 are.
    x, y = _batch()
    deltas = []
    for scale in (1.0, 2.0):
        model = _model()
        with torch.no_grad():
            for p in model.developmental_plasticity[1].parameters():
                p.mul_(scale)
            model.spiking_neurons[1].synaptic_weights.bias.add_(scale)
        # One step from the same state (a previous step would have let stage 1 change the
        # shared STM/LTM weights that stage 0 reads).
        deltas.append(_deltas(model, LocalTrainer(model), x, y))
    own = (
        "token_embedding.",
        "consciousness.",
        "spiking_neurons.0.",
        "developmental_plasticity.0.",
    )
    names = [n for n in deltas[0] if n.startswith(own)]
    assert len(names) > 10
    for name in names:
        torch.testing.assert_close(deltas[0][name], deltas[1][name], rtol=0, atol=1e-7, msg=name)
    assert not torch.equal(
        deltas[0]["developmental_plasticity.1.base_transform.weight"],
        deltas[1]["developmental_plasticity.1.base_transform.weight"],
    )
    # Backpropagating the model's loss instead would carry stage 1 into stage 0's update.
    grads = []
    for scale in (1.0, 2.0):
        model = _model()
        with torch.no_grad():
            for p in model.developmental_plasticity[1].parameters():
                p.mul_(scale)
            model.spiking_neurons[1].synaptic_weights.bias.add_(scale)
        model.loss(x, y).backward()
        assert model.token_embedding.weight.grad is not None
        grads.append(model.token_embedding.weight.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_readout_learns_by_the_delta_rule() -> None:
    model = _model()
    trainer = LocalTrainer(model, LocalLearningConfig(**{**ONLY, "readout_lr": 0.3}))
    x, y = _batch()
    model.train()
    with torch.no_grad():
        h = model.hidden_states(x).flatten(0, 1)
        w, b = model.output_proj.weight.clone(), model.output_proj.bias.clone()
    d = _deltas(model, trainer, x, y)
    p = torch.softmax(h @ w.t() + b, dim=-1)
    err = F.one_hot(y.flatten(), 256).float() - p
    torch.testing.assert_close(d["output_proj.weight"], 0.3 * err.t() @ h / h.shape[0])
    torch.testing.assert_close(d["output_proj.bias"], 0.3 * err.mean(0))
    moved = {n for n, v in d.items() if v.abs().sum() > 0}
    assert moved == {"output_proj.weight", "output_proj.bias"}


def test_concept_projection_learns_by_oja_subspace() -> None:
    model = _model()
    trainer = LocalTrainer(model, LocalLearningConfig(**{**ONLY, "oja_lr": 0.01}))
    x, y = _batch()
    model.train()
    w = model.long_term_memory.concept_embeddings.weight.detach().clone()
    want = torch.zeros_like(w)
    with torch.no_grad():
        h = model.embed(x)
        for layer in range(CFG.num_layers):
            pre = model.short_term_memory(h).flatten(0, 1)
            post = pre @ w.t()
            want += 0.01 * (post.t() @ pre - (post.t() @ post) @ w) / pre.shape[0]
            h = model.block(layer, h)
    d = _deltas(model, trainer, x, y)
    torch.testing.assert_close(d["long_term_memory.concept_embeddings.weight"], want)
    assert {n for n, v in d.items() if v.abs().sum() > 0} == {
        "long_term_memory.concept_embeddings.weight"
    }


def _three_factor_reference(
    pre: torch.Tensor, post: torch.Tensor, m: float, lr: float, tau_e: float
) -> torch.Tensor:
    """Σ_t lr·M·e_t with e_t = e_{t−1}·exp(−1/τ_e) + A₊ y_t x̃_tᵀ − A₋ ỹ_t p_tᵀ (pair STDP, τ± = 20,
    A₊ = 0.01, A₋ = 0.0105, traces decayed before pairing, then bumped), batch-averaged."""
    B, T, n_pre = pre.shape
    n_post = post.shape[2]
    xt, yt = torch.zeros(B, n_pre), torch.zeros(B, n_post)
    e, total = torch.zeros(n_post, n_pre), torch.zeros(n_post, n_pre)
    dec = math.exp(-1 / 20)
    for t in range(T):
        xt, yt = xt * dec, yt * dec
        dw = 0.01 * post[:, t].t() @ xt / B - 0.0105 * yt.t() @ pre[:, t] / B
        e = e * math.exp(-1 / tau_e) + dw
        total += lr * m * e
        xt, yt = xt + pre[:, t], yt + post[:, t]
    return total


def test_stdp_matches_a_three_factor_reference() -> None:
    model = _model()
    trainer = LocalTrainer(model, LocalLearningConfig(**{**ONLY, "stdp_lr": 0.5}))
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(2, 9, CFG.dim, generator=gen) * 1.5
    spikes = (torch.rand(2, 9, CFG.dim, generator=gen) < 0.3).float()
    w = model.spiking_neurons[0].synaptic_weights.weight
    got = trainer._stdp_delta(w, h, spikes, modulator=-0.7)
    want = _three_factor_reference((h > 1.0).float(), spikes, -0.7, 0.5, 20.0)
    torch.testing.assert_close(got, want)
    # The third factor is this batch's improvement over the running loss: first batch M = 0.
    x, y = _batch()
    first = trainer.step(x, y)
    assert first.modulators == [0.0, 0.0]
    assert "spiking_neurons.0.synaptic_weights.weight" not in first.updates
    second = trainer.step(*_batch(1))
    assert all(m == pytest.approx(a - b) for m, a, b in
               zip(second.modulators, first.local_losses, second.local_losses))  # fmt: skip
    assert second.updates["spiking_neurons.0.synaptic_weights.weight"] > 0


def test_rejects_published_models_and_bad_config() -> None:
    with pytest.raises(ValueError, match="causal flags"):
        LocalTrainer(
            V3Model(V3Config.published(dim=8, num_layers=1, concept_dim=4, num_concepts=4))
        )
    with pytest.raises(ValueError, match="local_lr"):
        LocalLearningConfig(local_lr=-1.0)
    with pytest.raises(ValueError, match="baseline_decay"):
        LocalLearningConfig(baseline_decay=1.0)
    trainer = LocalTrainer(_model())
    with pytest.raises(ValueError, match="epochs"):
        trainer.train([_batch()], epochs=0)
    with pytest.raises(ValueError, match="y"):
        trainer.step(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    assert copy.deepcopy(trainer.config) == LocalLearningConfig()
