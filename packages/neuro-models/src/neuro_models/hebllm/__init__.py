"""HebLLM: a spiking network language model learned by STDP, neuromodulation, homeostasis and
sleep (issue 15), with the published learning rule of 03bbcba as a flagged arm.

See :mod:`neuro_models.hebllm.model` for the network, :mod:`neuro_models.hebllm.teacher` for the
teacher-clamped learning of the output and :mod:`neuro_models.hebllm.readout` for the
calibrated readout.
"""

from neuro_models.hebllm.model import (
    HebLLM,
    HebLLMConfig,
    LearnStats,
    hebllm_local_loss,
    sensory_spikes,
)
from neuro_models.hebllm.published import (
    PublishedRuleParams,
    PublishedTrace,
    published_hebbian_rule,
)
from neuro_models.hebllm.readout import Readout, fit_readout, readout_log_probs, readout_nll
from neuro_models.hebllm.teacher import (
    EventTeacherState,
    EventTeacherSTDP,
    TeacherSTDPParams,
    TeacherTrace,
    teacher_raster,
    teacher_stdp,
)

__all__ = [
    "EventTeacherSTDP",
    "EventTeacherState",
    "HebLLM",
    "HebLLMConfig",
    "LearnStats",
    "PublishedRuleParams",
    "PublishedTrace",
    "Readout",
    "TeacherSTDPParams",
    "TeacherTrace",
    "fit_readout",
    "hebllm_local_loss",
    "published_hebbian_rule",
    "readout_log_probs",
    "readout_nll",
    "sensory_spikes",
    "teacher_raster",
    "teacher_stdp",
]
