import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_objectives import (
    PredictionErrorSignal,
    PredictionHead,
    PredictiveCodingLayer,
    SurpriseLoss,
    leaky_sequence_sum,
    prediction_error,
)


def _np_error(h: np.ndarray, p: np.ndarray, mode: str, mask: np.ndarray | None) -> float:
    """Independent per-position error, averaged over the positions where mask is true."""
    flat_h = h.reshape(-1, h.shape[-1])
    flat_p = p.reshape(-1, p.shape[-1])
    vals = []
    for i in range(flat_h.shape[0]):
        a, b = flat_h[i], flat_p[i]
        if mode == "mse":
            vals.append(float(np.sum((a - b) ** 2) / a.size))
        else:
            vals.append(1.0 - float(a @ b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))
    vals_a = np.array(vals)
    if mask is not None:
        vals_a = vals_a[mask.reshape(-1)]
    return float(vals_a.mean())


@pytest.mark.parametrize("mode", ["mse", "cosine"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_prediction_error_matches_numpy(mode: str, use_mask: bool) -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    p = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=g) > 0.3 if use_mask else None
    got = prediction_error(h, p, mode=mode, mask=mask)  # type: ignore[arg-type]
    want = _np_error(h.numpy(), p.numpy(), mode, None if mask is None else mask.numpy())
    assert math.isclose(float(got), want, rel_tol=1e-10)


@pytest.mark.parametrize("mode", ["mse", "cosine"])
@pytest.mark.parametrize("stop_gradient", [False, True])
def test_prediction_error_gradcheck(mode: str, stop_gradient: bool) -> None:
    # with the stop-gradient the target has (by design) no analytic gradient: check p only
    h = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=not stop_gradient)
    p = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    f = lambda a, b: prediction_error(a, b, mode=mode, stop_gradient=stop_gradient)  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(f, (h, p))


def test_stop_gradient_leaves_the_target_without_gradient() -> None:
    h = torch.randn(2, 3, 4, requires_grad=True)
    p = torch.randn(2, 3, 4, requires_grad=True)
    prediction_error(h, p).backward()
    assert h.grad is None
    # the prediction's gradient is the analytic 2 (p − h) / numel
    torch.testing.assert_close(p.grad, 2 * (p - h).detach() / h.numel())


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 10_000))
def test_cosine_is_scale_free_and_mse_scales_quadratically(scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    p = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    cos = prediction_error(h, p, mode="cosine")
    assert 0.0 <= float(cos) <= 2.0
    torch.testing.assert_close(prediction_error(scale * h, scale * p, mode="cosine"), cos)
    mse = prediction_error(h, p, mode="mse")
    torch.testing.assert_close(prediction_error(scale * h, scale * p, mode="mse"), scale**2 * mse)


def test_surprise_loss_sums_the_layers_against_an_explicit_formula() -> None:
    torch.manual_seed(0)
    loss_fn = SurpriseLoss(3, 6).double()
    hs = [torch.randn(2, 4, 6, dtype=torch.float64) for _ in range(4)]
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 1]], dtype=torch.bool)
    loss, report = loss_fn(hs, mask=mask)
    want = 0.0
    for layer in range(3):
        w = loss_fn.heads[layer].proj.weight.detach().numpy()
        pred = hs[layer + 1].numpy() @ w.T
        want += _np_error(hs[layer].numpy(), pred, "mse", mask.numpy())
        cos = _np_error(hs[layer].numpy(), pred, "cosine", mask.numpy())
        assert math.isclose(float(report[f"surprise/l{layer}/cos"]), cos, rel_tol=1e-9)
        norm = np.linalg.norm(hs[layer].numpy(), axis=-1)[mask.numpy()].mean()
        assert math.isclose(float(report[f"surprise/l{layer}/norm"]), norm, rel_tol=1e-9)
    assert math.isclose(float(loss.detach()), want, rel_tol=1e-9)
    assert math.isclose(float(report["surprise"]), want, rel_tol=1e-9)
    assert not any(v.requires_grad for v in report.values())


def test_surprise_loss_gradcheck_through_heads_and_states() -> None:
    torch.manual_seed(0)
    loss_fn = SurpriseLoss(2, 3, mode="cosine", stop_gradient=False).double()
    hs = [torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    w0 = loss_fn.heads[0].proj.weight
    with torch.no_grad():
        w0.add_(torch.randn_like(w0))

    def f(h0: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            w0.copy_(w.detach())
        # route the weight through the graph explicitly so gradcheck sees it
        heads_pred = [h1 @ w.T, loss_fn.heads[1](h2)]
        return sum(
            prediction_error(t, p, mode="cosine", stop_gradient=False)
            for t, p in zip([h0, h1], heads_pred)
        )

    assert torch.autograd.gradcheck(f, (*hs, w0.detach().clone().requires_grad_(True)))
    # and the module computes the same value as that explicit sum
    torch.testing.assert_close(loss_fn(hs)[0], f(*hs, w0.detach()))


class _Residual(nn.Module):
    """A tiny residual stream: h_0 = E x, h_{l+1} = h_l + MLP_l(h_l)."""

    def __init__(self, d: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.emb = nn.Linear(8, d, bias=False)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d)) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.emb(x)
        out = [h]
        for block in self.blocks:
            h = h + block(h)
            out.append(h)
        return out


def _norm_ratio_after_training(mode: str, stop_gradient: bool, steps: int = 50) -> float:
    torch.manual_seed(0)
    net = _Residual()
    loss_fn = SurpriseLoss(3, 16, mode=mode, stop_gradient=stop_gradient)  # type: ignore[arg-type]
    x = torch.randn(4, 32, 8)
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=5e-2)
    with torch.no_grad():
        before = min(float(h.norm(dim=-1).mean()) for h in net(x))
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(net(x))[0].backward()
        opt.step()
    with torch.no_grad():
        after = min(float(h.norm(dim=-1).mean()) for h in net(x))
    return after / before


def test_raw_surprise_loss_collapses_the_norms_and_the_guards_do_not() -> None:
    """Trained on the surprise loss alone for 50 Adam steps, the published form (squared error,
    gradient into the target) shrinks the smallest mean hidden norm to under 0.15 of its start
    (0.08 with this seed on CPU); with the stop-gradient target it keeps more than 0.35 (0.52),
    and the scale-free cosine form does not shrink it at all (1.97)."""
    raw = _norm_ratio_after_training("mse", stop_gradient=False)
    guarded = _norm_ratio_after_training("mse", stop_gradient=True)
    cosine = _norm_ratio_after_training("cosine", stop_gradient=False)
    assert raw < 0.15, raw
    assert guarded > 0.35, guarded
    assert guarded > 4 * raw, (guarded, raw)
    assert cosine > 1.0, cosine


def test_prediction_head_identity_init() -> None:
    head = PredictionHead(5, init="identity")
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(head(x), x)


def test_leaky_sequence_sum_matches_the_closed_form() -> None:
    e = torch.rand(2, 9, dtype=torch.float64)
    got = leaky_sequence_sum(e, 0.9)
    want = np.zeros((2, 9))
    for t in range(9):
        for tau in range(t + 1):
            want[:, t] += 0.9 ** (t - tau) * e[:, tau].numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_predictive_coding_layer_default_is_loss_only_and_published_corrects() -> None:
    torch.manual_seed(0)
    inner = nn.Linear(4, 4)
    x = torch.randn(2, 5, 4)
    p = torch.randn(2, 5, 4)
    plain = PredictiveCodingLayer(inner, 4)
    out = plain(x, p)
    torch.testing.assert_close(out.output, inner(x))
    torch.testing.assert_close(out.prediction_for_below, plain.head(inner(x)))
    torch.testing.assert_close(out.loss, prediction_error(x, plain.head(inner(x))))
    norms = (x - p).norm(dim=-1)
    torch.testing.assert_close(out.surprise, leaky_sequence_sum(norms, 0.9))
    assert plain(x).surprise is None

    published = PredictiveCodingLayer(inner, 4, correction="published")
    torch.testing.assert_close(published(x, p).output, inner(x) + 0.1 * (x - p))
    torch.testing.assert_close(published(x).output, inner(x))


def test_prediction_error_signal_tracks_a_bias_corrected_running_mean() -> None:
    sig = PredictionErrorSignal(3, decay=0.9)
    state = sig.init()
    history = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])]
    for e in history:
        state = sig.update(state, e)
    m = np.zeros(3)
    for e in history:
        m = 0.9 * m + 0.1 * e.numpy()
    m /= 1 - 0.9**2
    np.testing.assert_allclose(sig.running_errors(state).numpy(), m, rtol=1e-6)
    np.testing.assert_allclose(sig.profile(state).numpy(), m / m.sum(), rtol=1e-6)
    assert sig.stats(state)["surprise/peak_layer"] == float(np.argmax(m))
    first = sig.update(sig.init(), history[0])
    torch.testing.assert_close(sig.running_errors(first), history[0])
    weighted = PredictionErrorSignal(3, layer_weights=[1.0, 0.0, 2.0])
    assert float(weighted.total(history[0])) == pytest.approx(1.0 + 6.0)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="prediction"):
        prediction_error(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="target"):
        prediction_error(torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2))
    with pytest.raises(ValueError, match="mode"):
        prediction_error(torch.ones(2, 3), torch.ones(2, 3), mode="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        prediction_error(torch.ones(2, 3), torch.ones(2, 3), mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="hidden_states"):
        SurpriseLoss(2, 3)([torch.ones(1, 2, 3)] * 2)
    with pytest.raises(ValueError, match="errors"):
        PredictionErrorSignal(3).update(PredictionErrorSignal(3).init(), torch.ones(2))
    with pytest.raises(ValueError, match="decay"):
        PredictionErrorSignal(3, decay=1.0)
    with pytest.raises(ValueError, match="prediction_from_above"):
        PredictiveCodingLayer(nn.Identity(), 3)(torch.ones(1, 2, 3), torch.ones(1, 2, 4))


@pytest.mark.parametrize("correction", ["none", "published"])
def test_predictive_coding_layer_gradcheck(correction: str) -> None:
    torch.manual_seed(0)
    layer = PredictiveCodingLayer(
        nn.Linear(3, 3),
        3,
        correction=correction,
        stop_gradient=False,  # type: ignore[arg-type]
    ).double()
    x = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = layer(a, b)
        assert out.surprise is not None
        return out.output.sum() + out.loss + out.surprise.sum()

    assert torch.autograd.gradcheck(f, (x, p))
