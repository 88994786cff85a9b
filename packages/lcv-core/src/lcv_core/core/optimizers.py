"""Parse ``configure_optimizers`` in every shape Lightning accepts, using Lightning's own parser."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lcv_config import LcvError
from lcv_core.core.lightning_compat import parse_optimizers, scheduler_configs


def configure_optimizers(module: LightningModule) -> tuple[list[Any], list[LRSchedulerConfig]]:
    """Call ``module.configure_optimizers()`` and return its optimizers and scheduler configs.

    Accepts an optimizer; a list of them; a dict with ``optimizer`` and ``lr_scheduler`` (a scheduler
    or a dict with ``interval``/``frequency``/``monitor``); a list of such dicts; two lists.
    """
    conf = module.configure_optimizers()
    if conf is None:
        raise LcvError(f"{type(module).__name__}.configure_optimizers() returned None; return an optimizer.")
    optimizers, schedulers, monitor = parse_optimizers(conf)
    if module.automatic_optimization and len(optimizers) > 1:
        raise LcvError(
            f"{type(module).__name__} returns {len(optimizers)} optimizers with automatic optimization; "
            "as in Lightning, set self.automatic_optimization = False and step them in training_step."
        )
    return optimizers, scheduler_configs(schedulers, monitor, automatic=module.automatic_optimization)
