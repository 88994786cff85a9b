"""Callbacks of the fold loop: the base class and the built-in callbacks."""

from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.early_stopping import EarlyStopping
from lcv_core.callbacks.lr_monitor import LearningRateMonitor
from lcv_core.callbacks.model_summary import ModelSummary
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.callbacks.pruning import TunerPruning
from lcv_core.callbacks.timer import Timer

__all__ = [
    "Callback",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "RichProgressBar",
    "Timer",
    "TunerPruning",
]
