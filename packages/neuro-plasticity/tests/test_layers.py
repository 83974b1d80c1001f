import math

import pytest
import torch
import torch.nn.functional as F

from neuro_core.testing import ContractSpec, check_contract, contract_cases, register
from neuro_plasticity import HebbianAttention, HebbianFastWeights, RewardModulatedHebbian

DIM = 8

SPECS = [
    register(
        ContractSpec(
            name="neuro_plasticity.HebbianAttention",
            build=lambda: HebbianAttention(DIM, 2, lr=0.5, decay=0.9, chunk_size=4),
            make_input=lambda g, b, t: torch.randn(b, t, DIM, generator=g),
        )
    ),
    register(
        ContractSpec(
            name="neuro_plasticity.RewardModulatedHebbian",
            build=lambda: RewardModulatedHebbian(DIM, 2, lr=0.5, decay=0.9, chunk_size=4),
            make_input=lambda g, b, t: (
                torch.randn(b, t, DIM, generator=g),
                torch.randn(b, t, generator=g),
            ),
            forward=lambda m, inp: m(*inp),
        )
    ),
    register(
        ContractSpec(
            name="neuro_plasticity.HebbianFastWeights",
            build=lambda: HebbianFastWeights(DIM, 6, lr=0.5, decay=0.9, chunk_size=4),
            make_input=lambda g, b, t: torch.randn(b, t, DIM, generator=g),
            compile=True,
        )
    ),
]


@pytest.mark.parametrize(("spec", "contract"), contract_cases(SPECS))
def test_contracts(spec: ContractSpec, contract: str) -> None:
    check_contract(spec, contract)


def _naive_hebbian_attention(m: HebbianAttention, x: torch.Tensor, reward=None) -> torch.Tensor:
    """Per-position loop over an explicit H (the equations of the docstring, no fast_weights op)."""
    b, t, _ = x.shape
    h, d = m.n_heads, m.head_dim
    q, k, v = m.qkv(x).view(b, t, 3, h, d).unbind(2)
    out = torch.zeros(b, t, h, d, dtype=x.dtype)
    for bi in range(b):
        for hi in range(h):
            H = torch.zeros(d, d, dtype=x.dtype)
            for ti in range(t):
                qt = q[bi, ti, hi]
                keys = k[bi, : ti + 1, hi]
                base = keys @ qt / math.sqrt(d)
                a0 = base.softmax(-1)
                logits = base + m.lr * (keys @ (H.T @ qt))
                out[bi, ti, hi] = logits.softmax(-1) @ v[bi, : ti + 1, hi]
                beta = 1.0 if reward is None else float(reward[bi, ti])
                H = m.decay * H + beta * torch.outer(qt, a0 @ keys)
    return m.out(out.reshape(b, t, h * d))


def test_hebbian_attention_matches_explicit_loop() -> None:
    torch.manual_seed(0)
    m = HebbianAttention(DIM, 2, lr=0.7, decay=0.8, chunk_size=3).double()
    x = torch.randn(2, 7, DIM, dtype=torch.float64)
    torch.testing.assert_close(m(x), _naive_hebbian_attention(m, x))
    # η = 0 is plain causal softmax attention
    m.lr = 0.0
    q, k, v = m.qkv(x).view(2, 7, 3, 2, 4).unbind(2)
    sdpa = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
    )
    torch.testing.assert_close(m(x), m.out(sdpa.transpose(1, 2).reshape(2, 7, DIM)))


def test_reward_modulated_matches_loop_and_zero_reward_disables_plasticity() -> None:
    torch.manual_seed(1)
    m = RewardModulatedHebbian(DIM, 2, lr=0.7, decay=0.8).double()
    x = torch.randn(2, 6, DIM, dtype=torch.float64)
    r = torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x, r), _naive_hebbian_attention(m, x, r))
    plain = HebbianAttention(DIM, 2, lr=0.0).double()
    plain.load_state_dict(m.state_dict())
    torch.testing.assert_close(m(x, torch.zeros(2, 6, dtype=torch.float64)), plain(x))


def test_hebbian_fast_weights_matches_loop() -> None:
    torch.manual_seed(2)
    m = HebbianFastWeights(5, 3, lr=0.4, decay=0.9).double()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    y0 = m.linear(x)
    xh = F.normalize(x, dim=-1)
    expected = torch.zeros_like(y0)
    for bi in range(2):
        wf = torch.zeros(3, 5, dtype=torch.float64)
        for t in range(9):
            expected[bi, t] = y0[bi, t] + wf @ xh[bi, t]
            wf = 0.9 * wf + 0.4 * torch.outer(y0[bi, t], xh[bi, t])
    torch.testing.assert_close(m(x), expected)


def test_fast_weights_help_recall_a_repeated_sequence() -> None:
    """HebbianFastWeights with W = I: on the second pass of a repeated random sequence the fast
    term reconstructs the earlier outputs, so the output correlates with the previous item."""
    torch.manual_seed(3)
    m = HebbianFastWeights(16, 16, lr=1.0, decay=1.0, bias=False).double()
    with torch.no_grad():
        m.linear.weight.copy_(torch.eye(16))
    seq = F.normalize(torch.randn(1, 8, 16, dtype=torch.float64), dim=-1)
    x = torch.cat([seq, seq], dim=1)
    fast = m(x) - x  # the fast-weight contribution
    # at position 8 + t the query x_t matches the key x_t written at step t, whose value is y0_t = x_t
    cos = F.cosine_similarity(fast[0, 8:], seq[0], dim=-1)
    assert float(cos.mean().detach()) > 0.8


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        HebbianAttention(10, 3)
    with pytest.raises(ValueError, match="decay"):
        HebbianAttention(8, 2, decay=1.2)
    with pytest.raises(ValueError, match="lr"):
        HebbianFastWeights(4, 4, lr=-1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        HebbianAttention(8, 2)(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match="reward"):
        RewardModulatedHebbian(8, 2)(torch.randn(1, 3, 8), torch.randn(1, 4))


@pytest.mark.parametrize("split", [(1,), (4, 5), (3, 3, 3, 1, 1)])
def test_hebbian_attention_decoding_equals_the_whole_sequence(split: tuple[int, ...]) -> None:
    """Prefix then chunks (down to one token) through ``decode`` give the whole-sequence outputs:
    the cache carries keys, values, the fast-weight state and the last (q, r) write."""
    torch.manual_seed(0)
    m = HebbianAttention(16, 4, lr=0.5, decay=0.9, backend="reference").double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    full = m(x)
    outs, cache, lo = [], None, 0
    for n in (*split, 11 - sum(split)):
        if n == 0:
            continue
        y, cache = m.decode(x[:, lo : lo + n], cache)
        outs.append(y)
        lo += n
    torch.testing.assert_close(torch.cat(outs, 1), full)
    assert cache is not None
    assert cache.k.shape[2] == 11
