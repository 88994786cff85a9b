"""Hyperparameter tuning of a cross-validated experiment: the objective, trial parameters, workers."""

from lcv_core.tuning.runner import BEST_FILE, TuneResult, tune

__all__ = ["BEST_FILE", "TuneResult", "tune"]
