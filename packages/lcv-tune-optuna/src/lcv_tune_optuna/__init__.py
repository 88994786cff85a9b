"""lcv-tune-optuna: the Optuna tuner backend of lcv (``backend: optuna``)."""

from lcv_tune_optuna.__about__ import __version__
from lcv_tune_optuna._components import PRUNER_ALIASES, SAMPLER_ALIASES, make_pruner, make_sampler
from lcv_tune_optuna._storage import default_storage_url, open_storage
from lcv_tune_optuna.tuner import DEFAULT_STUDY, OptunaTrial, OptunaTuner, suggest

__all__ = [
    "DEFAULT_STUDY",
    "PRUNER_ALIASES",
    "SAMPLER_ALIASES",
    "OptunaTrial",
    "OptunaTuner",
    "__version__",
    "default_storage_url",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "suggest",
]
