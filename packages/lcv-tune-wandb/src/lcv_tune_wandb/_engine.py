"""Lazy imports of the heavy optional pieces, each with the fix in its error."""

from __future__ import annotations

import warnings
from types import ModuleType

from lcv_config import LcvError


def import_sweeps() -> ModuleType:
    """Import W&B's open-source ``sweeps`` engine, which proposes runs locally.

    Raises:
        LcvError: It is not installed; the message says which extra to install.
    """
    try:
        with warnings.catch_warnings():
            # sweeps 0.3 still declares a pydantic v1 config key; harmless, and not the user's to fix.
            warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
            warnings.filterwarnings("ignore", message=".*class-based `config` is deprecated.*")
            import sweeps
    except ImportError as exc:
        raise LcvError(
            f"Local W&B sweeps need the open-source 'sweeps' engine, which failed to import ({exc}). "
            "Fix: pip install 'lcv-tune-wandb[local]' (see the lcv-tune-wandb README for why it is an extra)."
        ) from None
    module: ModuleType = sweeps
    return module


def import_wandb() -> ModuleType:
    """Import ``wandb`` (slow, so only when a trial starts)."""
    import wandb

    module: ModuleType = wandb
    return module
