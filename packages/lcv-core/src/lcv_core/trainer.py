"""The public home of `CrossValidationTrainer` (defined in `lcv_core.loop.trainer`)."""

from lcv_core.loop.schedules import VECTORIZE_PARAMETERS_CPU
from lcv_core.loop.trainer import CrossValidationTrainer

__all__ = ["VECTORIZE_PARAMETERS_CPU", "CrossValidationTrainer"]
