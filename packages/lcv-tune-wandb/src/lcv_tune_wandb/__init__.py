"""lcv-tune-wandb: the Weights & Biases tuner backend of lcv (``backend: wandb``)."""

from lcv_tune_wandb.__about__ import __version__
from lcv_tune_wandb.logger import WandbCVLogger
from lcv_tune_wandb.offline import OfflineRun, read_offline_run
from lcv_tune_wandb.sweep_config import DEFAULT_METRIC, METHODS, flatten_parameters, space_to_sweep, validate_sweep
from lcv_tune_wandb.tuner import DEFAULT_STUDY, WandbTrial, WandbTuner

__all__ = [
    "DEFAULT_METRIC",
    "DEFAULT_STUDY",
    "METHODS",
    "OfflineRun",
    "WandbCVLogger",
    "WandbTrial",
    "WandbTuner",
    "__version__",
    "flatten_parameters",
    "read_offline_run",
    "space_to_sweep",
    "validate_sweep",
]
