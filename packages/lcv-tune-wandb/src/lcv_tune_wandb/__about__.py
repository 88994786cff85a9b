"""The version of lcv-tune-wandb."""

__version__ = "0.1.0"
