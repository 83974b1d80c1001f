import pytest
import torch

from neuro_objectives import (
    coherence_loss,
    efficiency_loss,
    halting_distribution,
    halting_kl,
    info_nce_terms,
    prediction_error,
    specialization_loss,
)


def _objectives(
    h: torch.Tensor, p: torch.Tensor, probs: torch.Tensor, lam: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    return (
        prediction_error(h, p)
        + prediction_error(h, p, mode="cosine")
        + specialization_loss(probs)
        + efficiency_loss(lam)
        + halting_kl(halting_distribution(lam), 0.3)
        + coherence_loss(h[:, -1], p[:, -1])
        + info_nce_terms(h, p, w).mean()
    )


@pytest.mark.compile
def test_the_differentiable_terms_compile_without_graph_breaks() -> None:
    """The data-reading checks are skipped while torch.compile traces (``fullgraph=True`` would
    raise on a graph break), and the compiled terms equal the eager ones, gradients included."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 6, 4, generator=g, requires_grad=True)
    p = torch.randn(2, 6, 4, generator=g)
    probs = torch.randn(2, 3, 6, 6, generator=g).softmax(-1)
    lam = torch.rand(2, 6, 5, generator=g)
    w = torch.randn(4, 4, generator=g)
    compiled = torch.compile(_objectives, fullgraph=True, backend="eager")
    got = compiled(h, p, probs, lam, w)
    want = _objectives(h, p, probs, lam, w)
    torch.testing.assert_close(got, want)
    (g1,) = torch.autograd.grad(got, h)
    (g2,) = torch.autograd.grad(want, h)
    torch.testing.assert_close(g1, g2)
