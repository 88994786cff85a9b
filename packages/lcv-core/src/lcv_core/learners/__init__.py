"""Configurable LightningModules (``lcv.learners`` plugins) and the built-in networks (``lcv.models``)."""

from lcv_core.learners.loss_returning import LossReturningLearner
from lcv_core.learners.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from lcv_core.learners.networks import MLP
from lcv_core.learners.supervised import Stage, SupervisedLearner, Task

__all__ = [
    "CLASSIFICATION_METRICS",
    "MLP",
    "REGRESSION_METRICS",
    "LossReturningLearner",
    "Stage",
    "SupervisedLearner",
    "Task",
]
