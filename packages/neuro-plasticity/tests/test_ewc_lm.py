"""EWC on language models: the diagonal Fisher of [B, T, V] outputs against closed forms.

The closed-form model is a causal prefix-mean LM: h_t = mean_{s ≤ t} E[x_s], logits W h_t + c, so
a token's log-likelihood depends on every earlier token and its gradient can be written out:

    r_t = onehot(y_t) − p_t,   ∂/∂W = r_t h_tᵀ,   ∂/∂c = r_t,   ∂/∂E[v] = n_t(v)/(t+1) · Wᵀ r_t,

with n_t(v) the count of v in x_{≤t}. Under y ~ p_t, E[r rᵀ] = diag(p) − p pᵀ =: Σ_t, so the true
Fisher is diag(Σ)_i h_j² for W, diag(Σ) for c and (n_t(v)/(t+1))² diag(Wᵀ Σ W) for E[v].
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuro_plasticity.continual import EWC, diagonal_fisher

V, D = 5, 3


class PrefixMeanLM(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(D, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)  # [B, T, D]
        steps = torch.arange(1, x.shape[1] + 1, dtype=e.dtype, device=e.device)
        h = e.cumsum(1) / steps[:, None]
        return self.head(self.drop(h))


def _lm(seed: int = 0, dropout: float = 0.0) -> PrefixMeanLM:
    torch.manual_seed(seed)
    return PrefixMeanLM(dropout).double()


def _tokens(seed: int, b: int = 3, t: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (b, t), generator=g)
    y = torch.randint(0, V, (b, t), generator=g)
    return x, y


def _token_terms(model: PrefixMeanLM, x: torch.Tensor, y: torch.Tensor, ignore: int = -100):
    """Per valid token: (h, p, gradient dict) from the closed forms, no autograd."""
    emb = model.embed.weight.detach()
    w, c = model.head.weight.detach(), model.head.bias.detach()
    out = []
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if int(y[b, t]) == ignore:
                continue
            h = emb[x[b, : t + 1]].mean(0)
            p = torch.softmax(w @ h + c, 0)
            r = F.one_hot(y[b, t], V).double() - p
            counts = torch.bincount(x[b, : t + 1], minlength=V).double() / (t + 1)
            g = {
                "embed.weight": counts[:, None] * (w.T @ r)[None, :],
                "head.weight": torch.outer(r, h),
                "head.bias": r,
            }
            out.append((b, h, p, counts, g))
    return out


def _closed_empirical(model, batches, estimator="token"):
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    n_tok = 0
    for x, y in batches:
        terms = _token_terms(model, x, y)
        n_tok += len(terms)
        if estimator == "token":
            for _, _, _, _, g in terms:
                for n in total:
                    total[n] += g[n] ** 2
        else:
            for b in range(x.shape[0]):
                seq = [g for bb, _, _, _, g in terms if bb == b]
                for n in total:
                    total[n] += sum(g[n] for g in seq) ** 2
    return {n: v / n_tok for n, v in total.items()}


def _closed_true(model, batches):
    w = model.head.weight.detach()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    n_tok = 0
    for x, y in batches:
        for _, h, p, counts, _ in _token_terms(model, x, y):
            sigma = torch.diag(p) - torch.outer(p, p)
            total["head.weight"] += torch.outer(sigma.diagonal(), h**2)
            total["head.bias"] += sigma.diagonal()
            total["embed.weight"] += torch.outer(counts**2, (w.T @ sigma @ w).diagonal())
            n_tok += 1
    return {n: v / n_tok for n, v in total.items()}


def _rel_err(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    num = math.sqrt(sum(float((a[n] - b[n]).pow(2).sum()) for n in b))
    den = math.sqrt(sum(float(b[n].pow(2).sum()) for n in b))
    return num / den


def test_empirical_token_fisher_matches_closed_form_under_dropout_and_padding():
    """Dropout in train mode (p = 0.5) and padded positions: the Fisher is that of the eval-mode
    model over the unpadded tokens, and the training flags come back as they were."""
    model = _lm(dropout=0.5)
    model.train()
    model.embed.eval()  # a mixed state must be restored as it was
    x, y = _tokens(1)
    y[0, :2] = -100
    y[2, -1] = -100
    fisher = diagonal_fisher(model, [(x[:2], y[:2]), (x[2:], y[2:])], token_chunk=4)
    expected = _closed_empirical(model, [(x, y)])
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-10, atol=1e-12)
    assert model.training
    assert model.drop.training
    assert not model.embed.training


def test_empirical_sequence_fisher_squares_the_summed_gradient():
    model = _lm(1)
    x, y = _tokens(2)
    y[1, 0] = -100
    fisher = diagonal_fisher(model, [(x, y)], estimator="sequence")
    expected = _closed_empirical(model, [(x, y)], estimator="sequence")
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-10, atol=1e-12)
    # with data labels the cross-token terms do not vanish: the two estimators differ
    token = _closed_empirical(model, [(x, y)])
    assert _rel_err(fisher, token) > 0.1


@pytest.mark.parametrize("estimator", ["token", "sequence"])
def test_true_fisher_converges_to_the_closed_form_expectation(estimator):
    """Labels sampled from the model: both estimators are unbiased for the token-level Fisher."""
    model = _lm(2)
    x, y = _tokens(3, b=4, t=5)
    reps = 400  # 8,000 sampled tokens
    gen = torch.Generator().manual_seed(0)
    est = diagonal_fisher(model, [(x, y)] * reps, fisher="true", estimator=estimator, generator=gen)
    exact = _closed_true(model, [(x, y)])
    assert _rel_err(est, exact) < 0.06
    # the test can fail: the empirical Fisher at the random data labels is further from it
    assert _rel_err(_closed_empirical(model, [(x, y)]), exact) > 3 * 0.06


def test_published_fisher_is_the_squared_batch_mean_gradient():
    model = _lm(3)
    batches = [_tokens(4), _tokens(5)]
    batches[1][1][0, 3] = -100
    fisher = diagonal_fisher(model, batches, fisher="published")
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y in batches:
        terms = _token_terms(model, x, y)
        for n in expected:
            expected[n] += (sum(g[n] for *_, g in terms) / len(terms)) ** 2 / len(batches)
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-10, atol=1e-14)


class TinyAttentionLM(nn.Module):
    """One causal attention layer with dropout: the per-token gradients depend on earlier tokens
    through softmax attention, not only through a mean."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, 4)
        self.qkv = nn.Linear(4, 12)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        q, k, v = self.qkv(h).chunk(3, -1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(self.drop(h + a))


def test_token_fisher_of_an_attention_lm_matches_a_per_token_autograd_loop():
    torch.manual_seed(4)
    model = TinyAttentionLM().double().train()
    x, y = _tokens(6, b=2, t=7)
    y[1, 2] = -100
    fisher = diagonal_fisher(model, [(x, y)], token_chunk=3)
    model.eval()
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    count = 0
    for b in range(2):
        for t in range(7):
            if int(y[b, t]) < 0:
                continue
            logp = model(x[b : b + 1]).log_softmax(-1)[0, t, y[b, t]]
            grads = torch.autograd.grad(logp, list(model.parameters()))
            for (n, _), g in zip(model.named_parameters(), grads):
                expected[n] += g**2
            count += 1
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n] / count, rtol=1e-9, atol=1e-14)


def test_classifier_with_dropout_in_train_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    train_mode = diagonal_fisher(model.train(), [(x, y)])
    eval_mode = diagonal_fisher(model.eval(), [(x, y)])
    for n in eval_mode:
        torch.testing.assert_close(train_mode[n], eval_mode[n], rtol=0, atol=0)


def test_running_average_fisher():
    """fisher_momentum α: F ← (1 − α) F + α F_batch over update_fisher calls, then consolidated."""
    model = _lm(5)
    batches = [_tokens(10 + i) for i in range(3)]
    ewc = EWC(model, lam=2.0, fisher_momentum=0.25)
    for batch in batches:
        ewc.update_fisher([batch])
    ewc.consolidate()
    per_batch = [_closed_empirical(model, [batch]) for batch in batches]
    expected = per_batch[0]
    for f in per_batch[1:]:
        expected = {n: 0.75 * expected[n] + 0.25 * f[n] for n in f}
    for n in expected:
        torch.testing.assert_close(ewc.anchors[0][1][n], expected[n], rtol=1e-10, atol=1e-13)
    # the penalty's gradient is λ F (θ − θ*)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    model.zero_grad()
    ewc.penalty().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2.0 * expected[n] * (p.detach() - anchor[n]))


def test_ewc_limits_forgetting_on_a_language_model():
    """Train on task A, then on B (a different next-token rule): the rise of A's NLL is smaller
    with EWC (λ large) than without (λ = 0). The rules are noisy (30 % random next tokens), so the
    model stays uncertain and its Fisher does not vanish at the end of task A."""

    def task(shift: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, V, (32, 8), generator=g)
        noise = torch.randint(0, V, x.shape, generator=g)
        keep = torch.rand(x.shape, generator=g) < 0.7
        return x, torch.where(keep, (x + shift) % V, noise)  # y_t = x_t + shift, mostly

    a, b = task(1, 0), task(2, 1)

    def nll(model: nn.Module, data) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(model(data[0]).reshape(-1, V), data[1].reshape(-1)))

    def run(lam: float) -> float:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Embedding(V, 8), nn.Linear(8, V)).double()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(model(a[0]).reshape(-1, V), a[1].reshape(-1)).backward()
            opt.step()
        before = nll(model, a)
        ewc = EWC(model, lam=lam)
        ewc.update_fisher([a])
        ewc.consolidate()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            loss, _ = ewc.augment(F.cross_entropy(model(b[0]).reshape(-1, V), b[1].reshape(-1)))
            loss.backward()
            opt.step()
        return nll(model, a) - before

    naive, ewc = run(0.0), run(100.0)
    assert naive > 1.0
    assert ewc < 0.1 * naive


def test_language_model_bad_input():
    model = _lm()
    x, y = _tokens(0)
    with pytest.raises(ValueError, match=r"model output must be logits \[B, T, V\]"):
        diagonal_fisher(model, [(x, y[:, :-1])])
    with pytest.raises(ValueError, match="y must have dtype"):
        diagonal_fisher(model, [(x, y.double())])
    with pytest.raises(ValueError, match="y must have 1 or 2 dims"):
        diagonal_fisher(model, [(x, y[None])])
    with pytest.raises(ValueError, match="class indices"):
        diagonal_fisher(model, [(x, y - 3)])
    with pytest.raises(ValueError, match="estimator"):
        diagonal_fisher(model, [(x, y)], estimator="window")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        diagonal_fisher(model, [(x, torch.full_like(y, -100))])
    with pytest.raises(ValueError, match="token_chunk"):
        diagonal_fisher(model, [(x, y)], token_chunk=0)
    clf = nn.Linear(3, 4)
    with pytest.raises(ValueError, match="estimator='sequence' needs"):
        diagonal_fisher(clf, [(torch.randn(2, 3), torch.tensor([0, 1]))], estimator="sequence")
    with pytest.raises(ValueError, match=r"model output must be logits \[N, C\]"):
        diagonal_fisher(model, [(x, y[:, 0])])
    with pytest.raises(ValueError, match="fisher_momentum"):
        EWC(model, lam=1.0, fisher_momentum=0.0)


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    chunk=st.integers(1, 7),
    split=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_token_fisher_independent_of_chunking_and_batching(b, t, chunk, split, seed):
    model = _lm(seed % 7)
    x, y = _tokens(seed, b=b, t=t)
    y[torch.rand(y.shape, generator=torch.Generator().manual_seed(seed)) < 0.2] = -100
    if bool((y == -100).all()):
        y[0, 0] = 0
    split = min(split, b)
    batches = [(x[:split], y[:split]), (x[split:], y[split:])]
    batches = [(bx, by) for bx, by in batches if bx.shape[0] > 0]
    fisher = diagonal_fisher(model, batches, token_chunk=chunk)
    expected = _closed_empirical(model, [(x, y)])
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-10, atol=1e-13)
