"""Generation: KV-cached decoding equals full recomputation; samplers match transformers' processors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from neuro_models.generate import (
    SamplingConfig,
    generate,
    generate_text,
    main,
    process_logits,
    sample_next,
)
from neuro_models.llama import Llama
from neuro_models.params import tiny


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny matmuls gain nothing from threads; on a shared 2-core machine, OpenMP barriers waiting
    # for descheduled threads made each of them cost tens of milliseconds.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model() -> Llama:
    torch.manual_seed(0)
    # Larger init than 0.02 so that logits are far from uniform and sampling settings matter.
    return Llama(tiny(vocab_size=64).replace(init_std=0.3)).eval()


def recompute(
    model: Llama,
    prompts: Sequence[Sequence[int]],
    config: SamplingConfig,
    generator: torch.Generator | None,
) -> list[list[int]]:
    """Generation without a cache: rerun the whole left-padded sequence for every new token."""
    rows = [list(p) for p in prompts]
    width = max(len(p) for p in prompts)
    seen = None
    if config.repetition_penalty != 1.0:
        seen = torch.zeros(len(rows), model.config.vocab_size, dtype=torch.bool)
        for i, p in enumerate(prompts):
            seen[i, list(p)] = True
    out: list[list[int]] = [[] for _ in rows]
    for _ in range(config.max_new_tokens):
        n = width + len(out[0])
        tokens = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n, dtype=torch.bool)
        for i, r in enumerate(rows):
            tokens[i, n - len(r) :] = torch.tensor(r)
            mask[i, n - len(r) :] = True
        with torch.no_grad():
            logits = model(tokens, attention_mask=mask)[:, -1]
        nxt = sample_next(logits, seen, config, generator)
        for i, t in enumerate(nxt.tolist()):
            rows[i].append(t)
            out[i].append(t)
            if seen is not None:
                seen[i, t] = True
    return out


PROMPTS = [[5, 9, 2, 7, 1, 3], [4], [8, 8, 8]]


@pytest.mark.parametrize(
    "config",
    [
        SamplingConfig(max_new_tokens=12, temperature=0.0),
        SamplingConfig(max_new_tokens=12, temperature=0.9, top_k=10, repetition_penalty=1.3),
        SamplingConfig(max_new_tokens=12, temperature=1.2, top_p=0.8),
    ],
    ids=["greedy", "topk-penalty", "topp"],
)
def test_cached_equals_recomputation(model: Llama, config: SamplingConfig) -> None:
    cached = generate(model, PROMPTS, config, generator=torch.Generator().manual_seed(7))
    full = recompute(model, PROMPTS, config, torch.Generator().manual_seed(7))
    assert cached == full


def test_greedy_batch_rows_equal_single_rows(model: Llama) -> None:
    config = SamplingConfig(max_new_tokens=10, temperature=0.0)
    batch = generate(model, PROMPTS, config)
    assert batch == [generate(model, [p], config)[0] for p in PROMPTS]
    assert len(set(map(tuple, batch))) > 1


def test_eos_and_stop_sequences_end_rows(model: Llama) -> None:
    config = SamplingConfig(max_new_tokens=12, temperature=0.0)
    free = generate(model, PROMPTS, config)
    eos = free[0][3]
    with_eos = generate(
        model, PROMPTS, SamplingConfig(max_new_tokens=12, temperature=0.0, eos_id=eos)
    )
    for row, ref in zip(with_eos, free):
        cut = ref.index(eos) + 1 if eos in ref else len(ref)
        assert row == ref[:cut]
    stop = tuple(free[1][2:4])
    stopped = generate(
        model, PROMPTS, SamplingConfig(max_new_tokens=12, temperature=0.0, stop_sequences=(stop,))
    )
    assert stopped[1] == free[1][:4]


class _Chars:
    """Codec over the characters ``a..`` (id i <-> chr(97 + i % 26))."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) - 97 for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(97 + i % 26) for i in ids)


def test_stop_strings_cut_the_text(model: Llama) -> None:
    codec = _Chars()
    config = SamplingConfig(max_new_tokens=12, temperature=0.0)
    (free,) = generate_text(model, codec, ["abc"], config)
    stop = free[4:6]
    (cut,) = generate_text(model, codec, ["abc"], config, stop_strings=[stop])
    assert cut == free[: free.index(stop)]
    with pytest.raises(ValueError, match="prompts"):
        generate_text(model, codec, "abc", config)  # type: ignore[arg-type]


def test_top_k_and_top_p_supports() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    kept = torch.isfinite(process_logits(logits, None, SamplingConfig(top_k=2)))
    assert kept.tolist() == [[True, True, False, False, False]]
    # softmax of these logits ≈ [0.547, 0.201, 0.122, 0.074, 0.027]: mass 0.547 < 0.7, then
    # 0.748 ≥ 0.7, so exactly the two most likely tokens form the nucleus.
    kept = torch.isfinite(process_logits(logits, None, SamplingConfig(top_p=0.7)))
    assert kept.tolist() == [[True, True, False, False, False]]
    kept = torch.isfinite(process_logits(logits, None, SamplingConfig(top_p=0.5)))
    assert kept.tolist() == [[True, False, False, False, False]]


def test_repetition_penalty_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0, 3.0]])
    seen = torch.tensor([[True, True, False]])
    got = process_logits(logits, seen, SamplingConfig(repetition_penalty=2.0))
    assert got.tolist() == [[1.0, -2.0, 3.0]]


def test_temperature_sampling_distribution() -> None:
    logits = torch.tensor([[1.0, 0.0, -0.5, 2.0]])
    config = SamplingConfig(temperature=0.7)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, None, config, gen) for _ in range(4000)])
    freq = torch.bincount(draws.flatten(), minlength=4).double() / 4000
    want = (logits[0].double() / 0.7).softmax(-1)
    # 4000 draws: standard error ≤ 0.008 per frequency; 4 sigma.
    assert float((freq - want).abs().max()) < 0.032


def test_processors_match_transformers() -> None:
    tf = pytest.importorskip("transformers")
    torch.manual_seed(3)
    logits = torch.randn(4, 50) * 3
    ids = torch.randint(0, 50, (4, 7))
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter_(1, ids, True)
    config = SamplingConfig(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.4)
    processors = [
        tf.RepetitionPenaltyLogitsProcessor(1.4),
        tf.TemperatureLogitsWarper(0.8),
        tf.TopKLogitsWarper(20),
        tf.TopPLogitsWarper(0.9),
    ]
    theirs = logits.clone()
    for p in processors:
        theirs = p(ids, theirs)
    ours = process_logits(logits, seen, config)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    torch.testing.assert_close(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)])


def test_greedy_matches_transformers_generate(model: Llama) -> None:
    pytest.importorskip("transformers")
    from neuro_models.hf import to_hf

    prompt = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    ours = generate(model, prompt, SamplingConfig(max_new_tokens=15, temperature=0.0))
    with torch.no_grad():
        theirs = to_hf(model).generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=15,
            min_new_tokens=15,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    assert ours == theirs[:, 5:].tolist()


def test_bad_inputs_raise(model: Llama) -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        generate(model, [[1] * 100], SamplingConfig(max_new_tokens=40))
    with pytest.raises(ValueError, match="prompts"):
        generate(model, [[1], []])
    with pytest.raises(ValueError, match="prompts"):
        generate(model, torch.zeros(2, 3))
    for field, value in [
        ("max_new_tokens", 0),
        ("temperature", -1.0),
        ("top_k", 0),
        ("top_p", 1.5),
        ("repetition_penalty", 0.0),
    ]:
        with pytest.raises(ValueError, match=field):
            SamplingConfig(**{field: value})


def test_generation_restores_training_mode(model: Llama) -> None:
    model.train()
    generate(model, [[1, 2]], SamplingConfig(max_new_tokens=2, temperature=0.0))
    assert model.training
    model.eval()


def test_cli_random_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--random-tiny", "--prompt", "Hi", "--prompt", "Yo", "--max-new-tokens", "4"]
    assert main([*argv, "--temperature", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:2] for line in lines[:2]] == ["Hi", "Yo"]


def test_cli_missing_run_dir(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        main(["--run-dir", str(tmp_path), "--prompt", "x"])


def test_cli_run_dir_uses_the_trained_weights(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from neuro_models.checkpoint import save_checkpoint
    from neuro_models.data.tokenizers import ByteTokenizer

    torch.manual_seed(5)
    model = Llama(tiny(vocab_size=256).replace(init_std=0.3)).eval()
    save_checkpoint(
        tmp_path / "checkpoints", 1, model=model.state_dict(),
        meta={"model_config": model.config.to_dict()},
    )  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(ByteTokenizer().to_json())
    config = SamplingConfig(max_new_tokens=6, temperature=0.0)
    want = ByteTokenizer().decode(generate(model, [list(b"Hey")], config)[0])
    argv = ["--run-dir", str(tmp_path), "--prompt", "Hey", "--max-new-tokens", "6"]
    assert main([*argv, "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "Hey" + want + "\n"
