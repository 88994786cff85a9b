"""Using trained fold models: out-of-fold predictions, test and predict with fold ensembles, refit on all data."""

from lcv_core.inference.api import PredictResult, TestResult, out_of_fold_predictions, predict, test
from lcv_core.inference.refit_model import refit

__all__ = ["PredictResult", "TestResult", "out_of_fold_predictions", "predict", "refit", "test"]
