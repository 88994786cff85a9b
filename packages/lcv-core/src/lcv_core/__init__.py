"""lcv-core: a k-fold cross-validation trainer on Lightning Fabric.

All fold models step through epochs together, so early stopping, checkpointing and pruning act on
the fold mean after every epoch.

Public names are imported on first access (PEP 562): ``lcv cv`` can validate a config and fail on
bad input before torch and lightning are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lcv_core.__about__ import __version__

if TYPE_CHECKING:
    from lcv_config import CrossValidationTrainerConfig, TrainerConfig
    from lcv_core.callbacks import (
        Callback,
        EarlyStopping,
        GradientAccumulationScheduler,
        LearningRateMonitor,
        ModelCheckpoint,
        ModelSummary,
        RichProgressBar,
        Timer,
        TunerPruning,
    )
    from lcv_core.configure import configure_all
    from lcv_core.inference.api import PredictResult, TestResult, out_of_fold_predictions, predict, refit, test
    from lcv_core.learners.loss_returning import LossReturningLearner
    from lcv_core.learners.networks import MLP
    from lcv_core.learners.supervised import CLASSIFICATION_METRICS, REGRESSION_METRICS, SupervisedLearner
    from lcv_core.loop.trainer import CrossValidationTrainer
    from lcv_core.lr_finder import LRFinderResult, lr_find
    from lcv_core.results.cv_result import CVResult, MetricSummary
    from lcv_core.tuning.batch_size import scale_batch_size
    from lcv_core.tuning.nested import NestedResult, nested_tune
    from lcv_core.tuning.runner import TuneResult, tune

_LAZY: dict[str, str] = {
    "CrossValidationTrainerConfig": "lcv_config",
    "TrainerConfig": "lcv_config",
    "Callback": "lcv_core.callbacks",
    "EarlyStopping": "lcv_core.callbacks",
    "GradientAccumulationScheduler": "lcv_core.callbacks",
    "LearningRateMonitor": "lcv_core.callbacks",
    "ModelCheckpoint": "lcv_core.callbacks",
    "ModelSummary": "lcv_core.callbacks",
    "RichProgressBar": "lcv_core.callbacks",
    "Timer": "lcv_core.callbacks",
    "TunerPruning": "lcv_core.callbacks",
    "configure_all": "lcv_core.configure",
    "PredictResult": "lcv_core.inference.api",
    "TestResult": "lcv_core.inference.api",
    "out_of_fold_predictions": "lcv_core.inference.api",
    "predict": "lcv_core.inference.api",
    "refit": "lcv_core.inference.api",
    "test": "lcv_core.inference.api",
    "CLASSIFICATION_METRICS": "lcv_core.learners.supervised",
    "REGRESSION_METRICS": "lcv_core.learners.supervised",
    "SupervisedLearner": "lcv_core.learners.supervised",
    "LossReturningLearner": "lcv_core.learners.loss_returning",
    "LRFinderResult": "lcv_core.lr_finder",
    "lr_find": "lcv_core.lr_finder",
    "MLP": "lcv_core.learners.networks",
    "CVResult": "lcv_core.results.cv_result",
    "MetricSummary": "lcv_core.results.cv_result",
    "CrossValidationTrainer": "lcv_core.loop.trainer",
    "NestedResult": "lcv_core.tuning.nested",
    "nested_tune": "lcv_core.tuning.nested",
    "TuneResult": "lcv_core.tuning.runner",
    "scale_batch_size": "lcv_core.tuning.batch_size",
    "tune": "lcv_core.tuning.runner",
}

__all__ = [
    "CLASSIFICATION_METRICS",
    "MLP",
    "REGRESSION_METRICS",
    "CVResult",
    "Callback",
    "CrossValidationTrainer",
    "CrossValidationTrainerConfig",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LRFinderResult",
    "LearningRateMonitor",
    "LossReturningLearner",
    "MetricSummary",
    "ModelCheckpoint",
    "ModelSummary",
    "NestedResult",
    "PredictResult",
    "RichProgressBar",
    "SupervisedLearner",
    "TestResult",
    "Timer",
    "TrainerConfig",
    "TuneResult",
    "TunerPruning",
    "__version__",
    "configure_all",
    "lr_find",
    "nested_tune",
    "out_of_fold_predictions",
    "predict",
    "refit",
    "scale_batch_size",
    "test",
    "tune",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lcv_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
