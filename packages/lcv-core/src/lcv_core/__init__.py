"""lcv-core: a k-fold cross-validation trainer on Lightning Fabric.

All fold models step through epochs together, so early stopping, checkpointing and pruning act on
the fold mean after every epoch.
"""

from lcv_config import CrossValidationTrainerConfig, TrainerConfig
from lcv_core.__about__ import __version__
from lcv_core.callbacks import Callback, EarlyStopping
from lcv_core.configure import configure_all
from lcv_core.learners import SupervisedLearner
from lcv_core.models import MLP
from lcv_core.results import CVResult, MetricSummary
from lcv_core.trainer import CrossValidationTrainer

__all__ = [
    "MLP",
    "CVResult",
    "Callback",
    "CrossValidationTrainer",
    "CrossValidationTrainerConfig",
    "EarlyStopping",
    "MetricSummary",
    "SupervisedLearner",
    "TrainerConfig",
    "__version__",
    "configure_all",
]
