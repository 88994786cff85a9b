"""The callback base class: every hook of the fold loop as a no-op method.

Hooks are dispatched through ``Fabric.call``, which passes each method only the keyword arguments
its signature names, so a callback declares just the payload it needs::

    class PrintMean(Callback):
        def on_validation_end(self, metrics):
            print(metrics["cv/val_loss_mean"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


class Callback:
    """Base class of lcv callbacks. Override the hooks you need; all payloads are keyword arguments.

    Common payload names: ``trainer`` (the [`CrossValidationTrainer`][lcv_core.CrossValidationTrainer]), ``fold``
    (fold index), ``epoch``, ``module`` (the fold's LightningModule), ``batch``, ``batch_idx``,
    ``outputs``, ``metrics``, ``optimizer``, ``step``, ``stage``.

    A hook gets only the payload names its signature lists, so a callback written for lightning-cv
    (``def on_train_fold_end(self, trainer)``) works as it is: ``on_train_fold_start``/``on_train_fold_end`` fire
    once per epoch and ``on_before_log_metrics`` before every hand-over to the loggers, as there; the per-fold events
    are ``on_fold_start``/``on_fold_end``.
    """

    state_key: str | None = None
    """Key of this callback's state in checkpoints; defaults to the class name."""

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Called once before the first epoch, after every fold's model and loaders are set up."""

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Called once after the last epoch (also after an early stop)."""

    def on_fold_start(self, *, trainer: CrossValidationTrainer, fold: int, module: Any, **kwargs: Any) -> None:
        """Called once per fold when its model is set up, before its first epoch (also after a resume)."""

    def on_fold_end(self, *, trainer: CrossValidationTrainer, fold: int, module: Any, **kwargs: Any) -> None:
        """Called once per fold when it has finished training (last epoch, or stopped)."""

    def on_train_fold_start(self, *, trainer: CrossValidationTrainer, epoch: int, **kwargs: Any) -> None:
        """Called once per epoch, before any fold trains it (lightning-cv's meaning)."""

    def on_train_fold_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Called once per epoch after every fold trained and validated it, with the fold means in ``metrics``.

        lightning-cv's meaning. It comes after ``on_validation_end`` and before the stop decision and ``last.ckpt``:
        setting ``trainer.should_stop = True`` here stops the fit after this epoch.
        """

    def on_train_epoch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Called before a fold's training epoch."""

    def on_train_epoch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Called after a fold's training epoch, before its validation."""

    def on_train_batch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Called before ``training_step`` of a fold's batch."""

    def on_train_batch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, outputs: Any, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Called after a fold's batch was trained (and the optimizer stepped, if it was due)."""

    def on_before_backward(self, *, trainer: CrossValidationTrainer, fold: int, loss: Any, **kwargs: Any) -> None:
        """Called before ``backward`` of a fold's loss."""

    def on_after_backward(self, *, trainer: CrossValidationTrainer, fold: int, **kwargs: Any) -> None:
        """Called after ``backward``, with gradients present, before gradient clipping."""

    def on_before_optimizer_step(
        self, *, trainer: CrossValidationTrainer, fold: int, optimizer: Any, **kwargs: Any
    ) -> None:
        """Called after backward and clipping, right before ``optimizer.step()``; gradients are present."""

    def on_before_zero_grad(self, *, trainer: CrossValidationTrainer, fold: int, optimizer: Any, **kwargs: Any) -> None:
        """Called before ``optimizer.zero_grad()``."""

    def on_validation_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Called before a fold's validation loop."""

    def on_validation_batch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Called before ``validation_step`` of a fold's batch."""

    def on_validation_batch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, outputs: Any, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Called after ``validation_step`` of a fold's batch."""

    def on_validation_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Called after a fold's validation loop with that fold's epoch metrics."""

    def on_before_log_metrics(
        self,
        *,
        trainer: CrossValidationTrainer,
        metrics: dict[str, Any],
        fold: int | None,
        epoch: int,
        step: int,
        stage: str,
        optimizer: Any,
        **kwargs: Any,
    ) -> None:
        """Called right before every hand-over of ``metrics`` to the loggers; what it adds or changes is logged.

        Per step (``stage`` ``"train"`` or ``"val"``, ``fold`` and its first ``optimizer``) for values logged with
        ``on_step=True``, and once per epoch with every fold's metrics and the fold means (``stage="epoch"``,
        ``fold=None``, ``optimizer=None``).
        """

    def on_validation_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Called after every fold validated an epoch, with ``cv/<name>_mean``/``_std``; decide on fold means here."""

    def on_exception(self, *, trainer: CrossValidationTrainer, exception: BaseException, **kwargs: Any) -> None:
        """Called when training raises, before the exception propagates."""

    def state_dict(self) -> dict[str, Any]:
        """Return the callback's state to save in checkpoints."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the callback's state from a checkpoint."""
