"""The experiment framework every reproduction runs on.

A reproduction declares arms, scales and comparisons (:mod:`~neuro_models.experiment.spec`);
the runner (:mod:`~neuro_models.experiment.runner`) prepares the data, fits the count floors
(:mod:`~neuro_models.experiment.floors`), tunes every arm with the same protocol, trains the
seeds with learning curves, caches each run by a hash of code and configuration, and the report
(:mod:`~neuro_models.experiment.report`) turns the run records into paired statistics and
verdicts (:mod:`~neuro_models.experiment.stats`), plots, ``results.json`` and ``REPORT.md``.
"""

from neuro_models.experiment.floors import Floors, fit_floors
from neuro_models.experiment.spec import Arm, Comparison, Experiment, Scale, smoke_scale
from neuro_models.experiment.stats import Paired, Verdict, paired, seeds_needed, verdict

__all__ = [
    "Arm",
    "Comparison",
    "Experiment",
    "Floors",
    "Paired",
    "Scale",
    "Verdict",
    "fit_floors",
    "paired",
    "seeds_needed",
    "smoke_scale",
    "verdict",
]
