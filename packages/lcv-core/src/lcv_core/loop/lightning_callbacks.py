"""Lightning callbacks (``lightning.pytorch.Callback``) in a CV fit: accepted, checked, called per fold.

``CrossValidationTrainer(callbacks=[...])`` takes lcv callbacks (``lcv_core.Callback``, hooks with keyword payloads)
and Lightning callbacks side by side. A Lightning callback's hooks are called for every fold with that fold's
trainer view and module, ``hook(trainer, pl_module, ...)``, where and as ``lightning.Trainer`` calls them (just
before the module's hook of the same name). Lightning's callbacks that decide on one model's metric have a
fold-mean counterpart in lcv and are refused with a message naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback

_LCV_HOOKS = frozenset(name for name, _ in inspect.getmembers(Callback, inspect.isfunction) if name.startswith("on_"))

_REFUSED = {
    "EarlyStopping": (
        "lcv_core.EarlyStopping (callbacks: [early_stopping] in a config), which stops all folds when the fold mean "
        "of the monitor stops improving; Lightning's would stop on one fold's metric"
    ),
    "ModelCheckpoint": (
        "lcv_core.ModelCheckpoint (callbacks: [model_checkpoint]), which keeps the epochs with the best fold mean "
        "and writes a Lightning checkpoint per fold"
    ),
    "ProgressBar": (
        "lcv's own progress display (TrainerConfig.enable_progress_bar, lcv_core.RichProgressBar), which shows every "
        "fold and the fold means"
    ),
    "BatchSizeFinder": "lcv_core.scale_batch_size(...) before the fit, whose result every fold then uses",
    "LearningRateFinder": "lcv_core.lr_find(...) before the fit, whose suggestion every fold then uses",
    "OnExceptionCheckpoint": (
        "the checkpoint lcv writes after every epoch (checkpoints/last.ckpt), which `lcv cv --resume` or "
        "fit(ckpt_path='last') continues"
    ),
}


def _refused(callback: Any) -> str | None:
    """Return the lcv counterpart of a Lightning callback lcv refuses, else ``None``."""
    from lightning.pytorch.callbacks import (
        BatchSizeFinder,
        EarlyStopping,
        LearningRateFinder,
        ModelCheckpoint,
        OnExceptionCheckpoint,
        ProgressBar,
    )

    for base in (
        EarlyStopping,
        ModelCheckpoint,
        ProgressBar,
        BatchSizeFinder,
        LearningRateFinder,
        OnExceptionCheckpoint,
    ):
        if isinstance(callback, base):
            return _REFUSED[base.__name__]
    return None


def split_callbacks(callbacks: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Return ``(lcv callbacks, Lightning callbacks)`` of ``callbacks``, in order.

    Raises:
        LcvError: A Lightning callback with a fold-mean counterpart in lcv (named in the message), or an object that
            is neither kind of callback (its position and type named).
    """
    from lightning.pytorch import Callback as LightningCallback

    lcv: list[Any] = []
    lightning: list[Any] = []
    for i, callback in enumerate(callbacks):
        if isinstance(callback, LightningCallback):
            instead = _refused(callback)
            if instead is not None:
                raise LcvError(
                    f"callbacks[{i}] is Lightning's {type(callback).__name__}, which decides on one model; under "
                    f"cross-validation use {instead}."
                )
            lightning.append(callback)
        elif isinstance(callback, Callback) or any(callable(getattr(callback, h, None)) for h in _LCV_HOOKS):
            lcv.append(callback)
        else:
            shown = repr(callback)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise LcvError(
                f"callbacks[{i}] is a {type(callback).__name__} ({shown}), which is not a callback: pass an lcv "
                "callback (a subclass of lcv_core.Callback) or a Lightning callback (lightning.pytorch.Callback)."
            )
    return lcv, lightning
