"""lcv-tune-optuna's tuner passes lcv-config's suite built exactly as ``lcv tune`` builds it."""

from __future__ import annotations

from lcv_config.testing import TunerContract
from lcv_tune_optuna import OptunaTuner


class TestOptunaTunerAsLcvBuildsIt(TunerContract):
    tuner_class = OptunaTuner
