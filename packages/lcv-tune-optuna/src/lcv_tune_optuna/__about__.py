"""The version of lcv-tune-optuna."""

__version__ = "0.1.0"
