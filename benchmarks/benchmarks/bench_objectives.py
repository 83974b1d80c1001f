"""neuro-objectives: the loss terms a training step pays for, forward + backward, at LM shapes.

``LogitTerms``: terms over the ``[B, T, V]`` logits, against plain ``F.cross_entropy`` on the
same logits (``cross_entropy``, the floor every term adds to): Aura's smoothed CE + entropy
(:func:`~neuro_objectives.aura_loss`), token-level unlikelihood
(:func:`~neuro_objectives.token_unlikelihood_loss`, ``C_t`` = earlier targets) and sequence-level
unlikelihood (:func:`~neuro_objectives.sequence_unlikelihood_loss`, ``n = 4``), and the
soft-binned calibration surrogate on the max-softmax confidence
(:func:`~neuro_objectives.calibration_loss` after
:func:`~neuro_objectives.confidence_and_correct`). Shapes: ``(B, T, V)`` = (8, 256, 4096), the
``cpu_small`` Llama's step, and (4, 512, 16384). ``dtype`` is the dtype of the logits
(``bf16``: a mixed-precision model's output; every term computes in fp32 or wider).

``HiddenTerms``: terms over ``[B, T, D]`` hidden states: InfoNCE (``k = 1``, same-step
negatives), coherence (cosine to one shared goal; and the contrastive form over
``N = min(B·T, 2048)`` samples, so that its ``N × N`` logits stay small), the homeostatic
penalty over three signals, the predictive-coding prediction error (MSE), PonderNet over 6 exits
and the column specialization loss (4 columns, ``[B, 4, T, T]`` attention probabilities).
Shapes ``(B, T, D)`` = (8, 256, 256) and (8, 1024, 512).

Inputs are built in ``setup``; each timed call runs the term and its backward.
"""

try:
    import torch
    import torch.nn.functional as F

    from neuro_objectives import (
        aura_loss,
        calibration_loss,
        coherence_loss,
        confidence_and_correct,
        homeostatic_penalty,
        info_nce_terms,
        ponder_loss,
        prediction_error,
        sequence_unlikelihood_loss,
        specialization_loss,
        token_unlikelihood_loss,
    )
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def _leaf(x):
    return x.detach().requires_grad_(True)


class _Term:
    """One loss term per parameter set: ``setup`` builds ``self.fn`` (forward to a scalar) and
    runs it once; the timed and memory-measured call is forward + backward."""

    param_names = ["term", "shape", "dtype"]
    timeout = 300

    def time_forward_backward(self, term, shape, dtype):
        self.fn().backward()

    def peakmem_forward_backward(self, term, shape, dtype):
        self.fn().backward()


class LogitTerms(_Term):
    params = (
        [
            "cross_entropy",
            "aura_loss",
            "token_unlikelihood",
            "sequence_unlikelihood",
            "calibration",
        ],
        [(8, 256, 4096), (4, 512, 16384)],
        ["fp32", "bf16"],
    )

    def setup(self, term, shape, dtype):
        if torch is None:
            raise NotImplementedError("neuro_objectives not importable")
        b, t, v = shape
        g = torch.Generator().manual_seed(0)
        dt = getattr(torch, DTYPES[dtype])
        self.logits = _leaf((torch.randn(b, t, v, generator=g) * 2).to(dt))
        # Targets with repeats, as in text: a 512-token vocabulary slice.
        targets = torch.randint(0, min(v, 512), (b, t), generator=g)
        if term == "cross_entropy":
            self.fn = lambda: F.cross_entropy(self.logits.float().flatten(0, 1), targets.flatten())
        elif term == "aura_loss":
            self.fn = lambda: aura_loss(self.logits, targets)[0]
        elif term == "token_unlikelihood":
            self.fn = lambda: token_unlikelihood_loss(self.logits, targets)[0]
        elif term == "sequence_unlikelihood":
            self.fn = lambda: sequence_unlikelihood_loss(self.logits, targets, n=4)[0]
        else:

            def calibration():
                conf, correct = confidence_and_correct(self.logits.float(), targets)
                return calibration_loss(conf, correct)

            self.fn = calibration
        self.fn().backward()  # warm up (and fail here, not in the timed call)


class HiddenTerms(_Term):
    params = (
        [
            "info_nce",
            "coherence_cosine",
            "coherence_contrastive",
            "homeostatic",
            "prediction_error",
            "ponder",
            "specialization",
        ],
        [(8, 256, 256), (8, 1024, 512)],
        ["fp32", "bf16"],
    )

    def setup(self, term, shape, dtype):
        if torch is None:
            raise NotImplementedError("neuro_objectives not importable")
        b, t, d = shape
        g = torch.Generator().manual_seed(0)
        dt = getattr(torch, DTYPES[dtype])

        def r(*s, scale=1.0):
            return _leaf((torch.randn(*s, generator=g) * scale).to(dt))

        if term == "info_nce":
            c, z, w = r(b, t, d), r(b, t, d), r(d, d, scale=d**-0.5)
            self.fn = lambda: info_nce_terms(c, z, w, horizon=1).mean()
        elif term == "coherence_cosine":
            h, goal = r(b, t, d), torch.randn(d, generator=g).to(dt)
            self.fn = lambda: coherence_loss(h, goal)
        elif term == "coherence_contrastive":
            n = min(b * t, 2048)
            h, goal = r(n, d), torch.randn(n, d, generator=g).to(dt)
            self.fn = lambda: coherence_loss(h, goal, mode="contrastive")
        elif term == "homeostatic":
            sig = {k: r(b, t, d) for k in ("dopamine", "serotonin", "norepinephrine")}
            self.fn = lambda: homeostatic_penalty(sig)
        elif term == "prediction_error":
            target, pred = r(b, t, d), r(b, t, d)
            self.fn = lambda: prediction_error(target, pred, stop_gradient=False)
        elif term == "ponder":
            per_point = _leaf(torch.rand(b, t, 6, generator=g).to(dt) * 5)
            halt = _leaf(torch.rand(b, t, 6, generator=g).to(dt) * 0.5)
            self.fn = lambda: ponder_loss(per_point, halt, prior_lambda=0.2)[0]
        else:
            cols = 4
            scores = r(b, cols, t, t)
            self.fn = lambda: specialization_loss(scores.float().softmax(-1))
        self.fn().backward()
