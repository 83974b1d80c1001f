"""Model bundles: exact round trips, tied weights, atomic saves, named errors, and the
``neuro-eval`` command line against an independent NLL computation."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from neuro_models import Bundle, BundleError, Llama, load_bundle, save_bundle
from neuro_models.data import ByteTokenizer, CharTokenizer
from neuro_models.evaluate import main
from neuro_models.ncn import ControlConfig, NCNConfig, NCNModel
from neuro_models.params import tiny

PACKAGE = Path(__file__).resolve().parents[1]
TEXT = (
    "Es war einmal ein kleiner Käfer, der über die Wiese lief. "
    "Il aimait le café, les crêpes et les œufs. ✓ → ∑ 日本語も少し。\n"
) * 3


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    """Add N(0, 0.3) noise to every parameter, so that logits are far from uniform and an NLL
    computed over the wrong windows or tokens would differ clearly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def _llama(tied: bool = True, seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return _perturb(Llama(tiny(vocab_size=257).replace(tie_embeddings=tied)), seed)  # type: ignore[return-value]


def _ncn(seed: int = 0, **kw: object) -> NCNModel:
    base: dict[str, object] = dict(vocab_size=260, d_model=32, n_layers=2, n_heads=4, ffn_dim=48,
                                   max_seq_len=64, dropout=0.1,
                                   control=ControlConfig(hidden=16, heads=2))  # fmt: skip
    base.update(kw)
    torch.manual_seed(seed)
    return _perturb(NCNModel(NCNConfig(**base)), seed)  # type: ignore[arg-type, return-value]


MODELS: dict[str, Callable[[], nn.Module]] = {
    "llama": _llama,
    "llama-untied": lambda: _llama(tied=False),
    "ncn-gpt2": _ncn,
    "ncn-llama-bare": lambda: _ncn(backbone="llama", control=None, rope_theta=5e5),
}


def _tokens(n: int = 40, vocab: int = 257, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (2, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp32_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    model = MODELS[name]()
    tok = ByteTokenizer()
    meta = {"run": "seed0", "step": 7, "scores": [1.5, None]}
    path = save_bundle(tmp_path / "b", model, tok, meta=meta)
    assert path == tmp_path / "b"
    assert sorted(p.name for p in path.iterdir()) == [
        "model.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    b = load_bundle(path)
    assert isinstance(b, Bundle)
    assert b.kind == ("llama" if name.startswith("llama") else "ncn")
    assert type(b.model) is type(model)
    assert b.config == model.config
    assert b.meta == meta
    assert b.tokenizer.identity == tok.identity
    assert not b.model.training
    ref_state, got_state = model.state_dict(), b.model.state_dict()
    assert ref_state.keys() == got_state.keys()
    for k, v in ref_state.items():
        assert got_state[k].dtype == torch.float32
        assert torch.equal(got_state[k], v), k
    x = _tokens()
    with torch.no_grad():
        assert torch.equal(b.model(x), model(x))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_round_trip_equals_the_bf16_rounded_model(tmp_path: Path, name: str) -> None:
    model = MODELS[name]()
    fp32 = save_bundle(tmp_path / "fp32", model, ByteTokenizer())
    bf16 = save_bundle(tmp_path / "bf16", model, ByteTokenizer(), dtype="bf16")
    size32 = (fp32 / "model.safetensors").stat().st_size
    size16 = (bf16 / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    assert json.loads((bf16 / "model.json").read_text())["dtype"] == "bf16"
    # Independent reference: the same fp32 model with every weight rounded to bf16 in memory.
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    b = load_bundle(bf16)
    assert all(p.dtype == torch.float32 for p in b.model.parameters())
    x = _tokens()
    with torch.no_grad():
        got, want, orig = b.model(x), rounded(x), model(x)
    assert torch.equal(got, want)
    # bf16 keeps 8 significand bits (relative rounding error <= 2^-9 per weight); through these
    # noisy, non-uniform models that moves the logits by about 1-2 % (relative Frobenius norm).
    assert not torch.equal(got, orig)
    assert float((got - orig).norm() / orig.norm()) < 0.05


def test_tied_weights_stay_tied_and_are_stored_once(tmp_path: Path) -> None:
    model = _llama(tied=True)
    path = save_bundle(tmp_path / "b", model, ByteTokenizer())
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        header = f.metadata()
    assert "embed.weight" in keys
    assert "lm_head.weight" not in keys
    assert header["lm_head.weight"] == "embed.weight"
    loaded = load_bundle(path).model
    assert isinstance(loaded, Llama)
    assert loaded.lm_head.weight is loaded.embed.weight
    with torch.no_grad():
        loaded.embed.weight[0, 0] += 1.0
    assert loaded.lm_head.weight[0, 0] == loaded.embed.weight[0, 0]


def test_untied_weights_stay_separate(tmp_path: Path) -> None:
    model = _llama(tied=False)
    path = save_bundle(tmp_path / "b", model, ByteTokenizer())
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert {"embed.weight", "lm_head.weight"} <= set(f.keys())
    loaded = load_bundle(path).model
    assert isinstance(loaded, Llama)
    assert loaded.lm_head.weight.data_ptr() != loaded.embed.weight.data_ptr()
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(loaded.lm_head.weight, loaded.embed.weight)


def test_loading_leaves_the_callers_rng_alone(tmp_path: Path) -> None:
    path = save_bundle(tmp_path / "b", _ncn(), ByteTokenizer())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_bundle(path)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- atomicity


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fail_after_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next bundle save die right after the weights file is completely written."""
    import safetensors.torch

    real = safetensors.torch.save_file

    def write_then_fail(tensors, filename, metadata=None):  # type: ignore[no-untyped-def]
        real(tensors, filename, metadata)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", write_then_fail)


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_after_weights(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(tmp_path / "b", _llama(), ByteTokenizer())
    assert _listing(tmp_path) == []


def test_failed_resave_keeps_the_old_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _llama(seed=0)
    path = save_bundle(tmp_path / "b", old, ByteTokenizer(), meta={"v": 1})
    _fail_after_weights(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(path, _llama(seed=1), ByteTokenizer(), meta={"v": 2})
    assert _listing(tmp_path) == ["b"]
    b = load_bundle(path)
    assert b.meta == {"v": 1}
    assert torch.equal(b.model.state_dict()["embed.weight"], old.embed.weight)


def test_failed_final_rename_restores_the_old_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _llama(seed=0)
    path = save_bundle(tmp_path / "b", old, ByteTokenizer(), meta={"v": 1})
    real = os.replace

    def replace(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        # The new folder's rename onto the bundle path fails; moving folders aside still works.
        if Path(src).name.startswith(".tmp-"):
            raise OSError("rename failed")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        save_bundle(path, _llama(seed=1), ByteTokenizer(), meta={"v": 2})
    monkeypatch.undo()
    assert _listing(tmp_path) == ["b"]
    assert load_bundle(path).meta == {"v": 1}


def test_resave_replaces_the_bundle(tmp_path: Path) -> None:
    path = save_bundle(tmp_path / "b", _llama(seed=0), ByteTokenizer(), meta={"v": 1})
    new = _llama(seed=1)
    save_bundle(path, new, ByteTokenizer(), meta={"v": 2})
    assert _listing(tmp_path) == ["b"]
    b = load_bundle(path)
    assert b.meta == {"v": 2}
    assert torch.equal(b.model.state_dict()["embed.weight"], new.embed.weight)


# ---------------------------------------------------------------- errors


def _edit_spec(path: Path, edit: Callable[[dict], None]) -> None:
    spec = json.loads((path / "model.json").read_text())
    edit(spec)
    (path / "model.json").write_text(json.dumps(spec))


def _truncate_and_rehash(path: Path) -> None:
    """A corrupt safetensors file whose digest is recorded, so the reader itself must fail."""
    from neuro_models._fileio import sha256_file

    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    _edit_spec(path, lambda s: s["files"].__setitem__("model.safetensors", sha256_file(f)))


def _flip_byte(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing model.json": (lambda p: (p / "model.json").unlink(), r"model\.json' is missing"),
    "missing weights": (
        lambda p: (p / "model.safetensors").unlink(),
        r"model\.safetensors' is missing",
    ),
    "missing tokenizer": (
        lambda p: (p / "tokenizer.json").unlink(),
        r"tokenizer\.json' is missing",
    ),
    "model.json not JSON": (
        lambda p: (p / "model.json").write_text("{not json"),
        r"model\.json' is not valid JSON",
    ),
    "model.json a list": (
        lambda p: (p / "model.json").write_text("[]"),
        r"model\.json' must hold a JSON object",
    ),
    "unknown format": (
        lambda p: _edit_spec(p, lambda s: s.__setitem__("format", 2)),
        r"model\.json' has format 2",
    ),
    "unknown kind": (
        lambda p: _edit_spec(p, lambda s: s.__setitem__("kind", "gpt5")),
        r"model\.json' has kind 'gpt5'",
    ),
    "no files": (
        lambda p: _edit_spec(p, lambda s: s.pop("files")),
        r"model\.json' lacks a 'files' object",
    ),
    "unknown config key": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("n_experts", 8)),
        r"model\.json' has an invalid config: unknown LlamaConfig keys \['n_experts'\]",
    ),
    "invalid config value": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("n_layers", 0)),
        r"model\.json' has an invalid config: n_layers",
    ),
    "flipped weight byte": (
        lambda p: _flip_byte(p / "model.safetensors"),
        r"model\.safetensors' is truncated or corrupt \(sha256",
    ),
    "truncated weights": (
        lambda p: (p / "model.safetensors").write_bytes(
            (p / "model.safetensors").read_bytes()[:-64]
        ),
        r"model\.safetensors' is truncated or corrupt",
    ),
    "unreadable weights, digest recorded": (
        _truncate_and_rehash,
        r"model\.safetensors' cannot be read",
    ),
    "edited tokenizer": (
        lambda p: (p / "tokenizer.json").write_text('{"type": "char", "alphabet": "ab"}'),
        r"tokenizer\.json' is truncated or corrupt",
    ),
    "weights of another shape": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("ffn_dim", 96)),
        r"(?s)model\.safetensors' does not match the llama config in .*model\.json'.*mlp",
    ),
    "weights of another depth": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("n_layers", 3)),
        r"(?s)model\.safetensors' does not match .*Missing key.*layers\.2\.",
    ),
    "untied config, tied weights": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("tie_embeddings", False)),
        r"(?s)model\.safetensors' does not match .*lm_head\.weight",
    ),
    "tokenizer larger than the model": (
        lambda p: _edit_spec(p, lambda s: s["config"].__setitem__("vocab_size", 200)),
        r"tokenizer\.json' has 257 ids, more than the vocab_size 200",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_broken_bundles_raise_bundle_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = save_bundle(tmp_path / "b", _llama(), ByteTokenizer())
    load_bundle(path)  # intact before the damage
    damage, message = CORRUPTIONS[case]
    damage(path)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_missing_folder_and_a_file_are_not_bundles(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"bundle folder .*nope' is missing"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match=r"bundle folder .*file' is missing or not a folder"):
        load_bundle(tmp_path / "file")


def test_ncn_bundle_with_llama_config_keys_is_refused(tmp_path: Path) -> None:
    path = save_bundle(tmp_path / "b", _ncn(), ByteTokenizer())
    _edit_spec(path, lambda s: s.__setitem__("kind", "llama"))
    with pytest.raises(
        BundleError, match=r"model\.json' has an invalid config: unknown LlamaConfig"
    ):
        load_bundle(path)


def test_save_rejects_bad_arguments_by_name(tmp_path: Path) -> None:
    model, tok = _llama(), ByteTokenizer()
    with pytest.raises(ValueError, match=r"dtype must be one of \['bf16', 'fp32'\], got 'fp16'"):
        save_bundle(tmp_path / "b", model, tok, dtype="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model must be one of the bundle kinds .*, got Linear"):
        save_bundle(tmp_path / "b", nn.Linear(2, 2), tok)
    with pytest.raises(ValueError, match="meta must be JSON-serializable"):
        save_bundle(tmp_path / "b", model, tok, meta={"t": torch.zeros(1)})
    with pytest.raises(ValueError, match="meta must be a dict"):
        save_bundle(tmp_path / "b", model, tok, meta=[1])  # type: ignore[arg-type]
    small = Llama(tiny(vocab_size=256))
    with pytest.raises(
        ValueError, match="tokenizer has 257 ids, more than the model's vocab_size 256"
    ):
        save_bundle(tmp_path / "b", small, tok)
    with pytest.raises(ValueError, match="tokenizer must implement the Tokenizer protocol"):
        save_bundle(tmp_path / "b", model, object())  # type: ignore[arg-type]
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------- NCNConfig serialization


@pytest.mark.parametrize(
    "cfg",
    [
        NCNConfig(),
        NCNConfig(control=ControlConfig(hidden=8, pooling="noncausal", init="published")),
        NCNConfig(backbone="llama", control=None, rope_theta=5e5, dropout=0.0),
    ],
)
def test_ncn_config_round_trips_through_json(cfg: NCNConfig) -> None:
    d = json.loads(json.dumps(cfg.to_dict()))
    assert NCNConfig.from_dict(d) == cfg
    assert (d["control"] is None) == (cfg.control is None)


def test_ncn_config_from_dict_names_unknown_keys() -> None:
    d = NCNConfig().to_dict()
    with pytest.raises(ValueError, match=r"unknown NCNConfig keys \['n_kv_heads'\]"):
        NCNConfig.from_dict({**d, "n_kv_heads": 2})
    with pytest.raises(ValueError, match=r"unknown ControlConfig keys \['depth'\]"):
        NCNConfig.from_dict({**d, "control": {**d["control"], "depth": 3}})
    with pytest.raises(ValueError, match="control must be a mapping, a ControlConfig or None"):
        NCNConfig.from_dict({**d, "control": [64, 2]})
    assert NCNConfig.from_dict({"control": ControlConfig(hidden=8)}).control == ControlConfig(
        hidden=8
    )


# ---------------------------------------------------------------- the command line


def _independent_nll(model: nn.Module, ids: list[int], seq_len: int) -> tuple[float, int]:
    """Summed NLL (nats) over non-overlapping windows, written out without ``evaluate``:
    window i feeds tokens [i·L, (i+1)·L) and scores tokens [i·L + 1, (i+1)·L]."""
    total = 0.0
    n = 0
    model.eval()
    with torch.no_grad():
        for s in range(0, len(ids) - 1, seq_len):
            inp = torch.tensor(ids[s : s + seq_len])
            tgt = torch.tensor(ids[s + 1 : s + seq_len + 1])
            inp = inp[: len(tgt)]
            logp = torch.log_softmax(model(inp[None])[0].double(), dim=-1)
            total -= float(logp[torch.arange(len(tgt)), tgt].sum())
            n += len(tgt)
    return total, n


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("name", "seq_len", "batch"), [("llama", 16, 3), ("llama", None, 8), ("ncn-gpt2", 24, 2)]
)
def test_cli_nll_and_bpb_equal_an_independent_computation(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    seq_len: int | None,
    batch: int,
) -> None:
    model = MODELS[name]()
    tok = ByteTokenizer()
    bundle = save_bundle(tmp_path / "b", model, tok)
    text_path = tmp_path / "t.txt"
    text_path.write_bytes(TEXT.encode("utf-8"))
    n_bytes = len(TEXT.encode("utf-8"))
    args = [str(bundle), "--text", str(text_path), "--json", "--batch-size", str(batch)]
    if seq_len is not None:
        args += ["--seq-len", str(seq_len)]
    rc, out, err = _run_cli(args, capsys)
    assert rc == 0, err
    got = json.loads(out)

    ids = [tok.eos_id, *TEXT.encode("utf-8")]
    window = seq_len if seq_len is not None else load_bundle(bundle).config.max_seq_len
    assert n_bytes > window  # several windows and a short tail
    total, n = _independent_nll(model, ids, window)
    assert got["n_tokens"] == n == n_bytes
    assert got["n_bytes"] == n_bytes
    assert got["seq_len"] == window
    assert got["tokenizer_id"] == tok.identity
    assert got["nll"] == pytest.approx(total / n, rel=1e-6)
    assert got["ppl"] == pytest.approx(math.exp(total / n), rel=1e-6)
    assert got["bpb"] == pytest.approx(total / (math.log(2) * n_bytes), rel=1e-6)
    # The windows matter: one long window gives a different number.
    if seq_len is not None:
        other, _ = _independent_nll(model, ids, 2 * seq_len)
        assert abs(other - total) / total > 1e-4

    rc, out, _ = _run_cli(args[:3] + args[4:], capsys)
    assert rc == 0
    assert f"nll        {got['nll']:.6f} nats/token" in out
    assert f"bpb        {got['bpb']:.6f}" in out
    assert f"tokens     {n}" in out
    assert tok.identity in out


def test_cli_max_tokens_scores_a_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _ncn()
    bundle = save_bundle(tmp_path / "b", model, ByteTokenizer())
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    args = [str(bundle), "--text", str(tmp_path / "t.txt"), "--json", "--seq-len", "10"]
    rc, out, err = _run_cli([*args, "--max-tokens", "37"], capsys)
    assert rc == 0, err
    got = json.loads(out)
    ids = [256, *TEXT.encode("utf-8")][:38]
    total, n = _independent_nll(model, ids, 10)
    assert got["n_tokens"] == n == 37
    assert got["nll"] == pytest.approx(total / n, rel=1e-6)


def test_cli_uses_the_bundles_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = CharTokenizer.from_texts([TEXT])
    model = _ncn(vocab_size=tok.vocab_size)
    bundle = save_bundle(tmp_path / "b", model, tok)
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    rc, out, err = _run_cli([str(bundle), "--text", str(tmp_path / "t.txt"), "--json"], capsys)
    assert rc == 0, err
    got = json.loads(out)
    total, n = _independent_nll(model, [tok.eos_id, *tok.encode(TEXT)], 64)
    assert got["n_tokens"] == n == len(TEXT)
    assert got["tokenizer_id"] == tok.identity
    assert got["bpb"] == pytest.approx(total / (math.log(2) * len(TEXT.encode("utf-8"))), rel=1e-6)
    (tmp_path / "z.txt").write_text("zebra", encoding="utf-8")
    rc, _, err = _run_cli([str(bundle), "--text", str(tmp_path / "z.txt")], capsys)
    assert rc == 2
    assert "not in the tokenizer alphabet" in err


def test_cli_errors_exit_2_with_a_named_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = save_bundle(tmp_path / "b", _llama(), ByteTokenizer())
    good = tmp_path / "good.txt"
    good.write_text(TEXT, encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    cases = {
        "missing text": ([str(bundle), "--text", str(tmp_path / "no.txt")], r"no\.txt' is missing"),
        "not UTF-8": ([str(bundle), "--text", str(latin1)], r"latin1\.txt' is not UTF-8"),
        "empty": ([str(bundle), "--text", str(empty)], r"empty\.txt' is empty"),
        "not a bundle": ([str(tmp_path), "--text", str(good)], r"model\.json' is missing"),
        "no folder": ([str(tmp_path / "x"), "--text", str(good)], r"bundle folder .*x' is missing"),
        "too long": (
            [str(bundle), "--text", str(good), "--seq-len", "129"],
            "--seq-len 129 exceeds the model's max_seq_len 128",
        ),
    }
    import re

    for case, (args, message) in cases.items():
        rc, out, err = _run_cli(args, capsys)
        assert rc == 2, case
        assert out == "", case
        assert err.startswith("neuro-eval: error: "), case
        assert re.search(message, err), (case, err)
    with pytest.raises(SystemExit) as info:
        main([str(bundle), "--text", str(good), "--seq-len", "0"])
    assert info.value.code == 2
    assert "must be >= 1, got 0" in capsys.readouterr().err


def test_module_entry_point_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("hello", encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuro_models.evaluate",
            str(tmp_path),
            "--text",
            str(tmp_path / "t.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "model.json' is missing" in proc.stderr


def test_console_script_points_at_the_cli() -> None:
    scripts = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["neuro-eval"].split(":")
    assert (module, func) == ("neuro_models.evaluate", "main")
