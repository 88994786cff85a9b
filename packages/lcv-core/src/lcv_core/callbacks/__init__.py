"""Callbacks of the fold loop: the base class and the built-in callbacks."""

from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.early_stopping import EarlyStopping

__all__ = ["Callback", "EarlyStopping"]
