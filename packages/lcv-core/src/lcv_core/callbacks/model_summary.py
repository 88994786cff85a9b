"""Print the fold model's layers and parameter counts once, at the start of training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


class ModelSummary(Callback):
    """Print each layer's name, type and parameter count, with totals, once per fit (not once per fold).

    The table is Lightning's `ModelSummary` of fold 0's
    module; every fold trains a copy of the same architecture.

    Args:
        max_depth: How deep to list nested modules (``1``: direct children; ``-1``: all).

    Attributes:
        summary: The printed text (empty before training starts).
        total_parameters: Parameters of one fold's model.
        trainable_parameters: Trainable parameters of one fold's model.
    """

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth
        self.summary = ""
        self.total_parameters = 0
        self.trainable_parameters = 0

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Summarise fold 0's module and print it on rank 0."""
        from lightning.pytorch.utilities.model_summary.model_summary import ModelSummary as LightningSummary

        if not trainer.folds:
            return
        table = LightningSummary(trainer.folds[0].module, max_depth=self.max_depth)
        self.total_parameters = table.total_parameters
        self.trainable_parameters = table.trainable_parameters
        self.summary = f"{table}\n(each of the {len(trainer.folds)} folds trains its own copy of this model)"
        if trainer.fabric.is_global_zero:
            print(self.summary, flush=True)
