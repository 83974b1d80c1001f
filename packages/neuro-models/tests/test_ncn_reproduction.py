"""The NCN reproduction's arms: parameter matching at every scale, published shapes at gpu scale."""

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[3] / "reproductions" / "ncn-tinystories"
if not (HERE / "configs.py").is_file():
    pytest.skip("reproductions/ folder not present", allow_module_level=True)
sys.path.insert(0, str(HERE))

import configs  # noqa: E402

from neuro_models.params import count_parameters  # noqa: E402


@pytest.mark.parametrize("scale", sorted(configs.PRESETS))
def test_every_arm_is_within_two_percent_of_b(scale: str) -> None:
    arms = configs.arm_configs(configs.PRESETS[scale])
    totals = {}
    for arm, cfg in arms.items():
        with torch.device("meta"):
            totals[arm] = count_parameters(configs.build(cfg)).total
    for arm, n in totals.items():
        assert abs(n - totals["B"]) / totals["B"] <= 0.02, (scale, arm, n, totals["B"])
    configs.check_matched(configs.parameter_counts(arms))


def test_arms_differ_only_where_they_should() -> None:
    arms = configs.arm_configs(configs.PRESETS["cpu"])
    b, c, d = arms["B"], arms["C"], arms["D"]
    assert (b.control.pooling, b.control.init) == ("causal", "intended")
    assert (c.control.pooling, c.control.init) == ("noncausal", "published")
    assert (d.control.pooling, d.control.init) == ("causal", "published")
    assert arms["A'"].control is None
    assert type(arms["A"]).__name__ == "LlamaConfig"


def test_gpu_scale_uses_the_published_shapes() -> None:
    cfg = configs.arm_configs(configs.PRESETS["gpu"])["C"]
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.ffn_dim, cfg.max_seq_len) == (
        256, 6, 8, 1024, 512,
    )  # fmt: skip
    with torch.device("meta"):
        model = configs.build(cfg)
    assert sum(p.numel() for p in model.control.parameters()) == 281_298


def test_mismatched_arms_are_rejected() -> None:
    counts = {"B": {"total": 1000}, "A": {"total": 1030}}
    with pytest.raises(AssertionError, match="arm A"):
        configs.check_matched(counts)
