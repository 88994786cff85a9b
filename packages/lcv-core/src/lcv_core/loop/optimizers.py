"""Parse ``configure_optimizers`` in every shape Lightning accepts, using Lightning's own parser."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.core.optimizer import (
    _configure_optimizers,
    _configure_schedulers_automatic_opt,
    _configure_schedulers_manual_opt,
)
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lcv_config import LcvError


def configure_optimizers(module: LightningModule) -> tuple[list[Any], list[LRSchedulerConfig]]:
    """Call ``module.configure_optimizers()`` and return its optimizers and scheduler configs.

    Accepts an optimizer; a list of them; a dict with ``optimizer`` and ``lr_scheduler`` (a scheduler
    or a dict with ``interval``/``frequency``/``monitor``); a list of such dicts; two lists.
    """
    conf = module.configure_optimizers()
    if conf is None:
        raise LcvError(f"{type(module).__name__}.configure_optimizers() returned None; return an optimizer.")
    optimizers, schedulers, monitor = _configure_optimizers(conf)  # type: ignore[arg-type]  # parses every shape
    if module.automatic_optimization:
        if len(optimizers) > 1:
            raise LcvError(
                f"{type(module).__name__} returns {len(optimizers)} optimizers with automatic optimization; "
                "as in Lightning, set self.automatic_optimization = False and step them in training_step."
            )
        configs = _configure_schedulers_automatic_opt(schedulers, monitor)
    else:
        configs = _configure_schedulers_manual_opt(schedulers)
    return list(optimizers), configs
