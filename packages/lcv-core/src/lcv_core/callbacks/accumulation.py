"""Change the number of accumulated gradient batches from epoch to epoch, as Lightning's callback of that name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


class GradientAccumulationScheduler(Callback):
    """Accumulate gradients over a number of batches that changes with the epoch.

    ``scheduling`` maps the first (0-based) epoch of each phase to its accumulation factor; epochs before the
    smallest key accumulate 1 batch. The trainer reads the factor (``trainer.accumulate_grad_batches``) at the
    start of every fold's training epoch, so every fold follows the same schedule.

    Args:
        scheduling: ``{epoch: factor}``, e.g. ``{0: 4, 4: 1}``: 4 batches per optimizer step in epochs 0-3, then 1.
            Keys may be strings of digits (``{"0": 4, "4": 1}``), as JSON and TOML configs write them.

    Raises:
        LcvError: An empty schedule, a key that is not an int >= 0, or a factor that is not an int >= 1
            (the message names the key).

    Example:
        >>> scheduler = GradientAccumulationScheduler(scheduling={0: 4, 4: 1})
        >>> scheduler.get_accumulate_grad_batches(5)
        1
    """

    def __init__(self, scheduling: dict[int, int]) -> None:
        raw: Any = scheduling  # checked here: configs and users pass anything
        if not isinstance(raw, dict) or not raw:
            raise LcvError(
                f"GradientAccumulationScheduler(scheduling={scheduling!r}): expected a non-empty dict "
                "{first_epoch: factor}, e.g. {0: 4, 4: 1}."
            )
        parsed: dict[int, int] = {}
        for key, factor in raw.items():
            # JSON and TOML configs can only have string keys: "4" means epoch 4
            epoch = int(key) if isinstance(key, str) and key.strip().lstrip("-").isdigit() else key
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise LcvError(
                    f"GradientAccumulationScheduler: key {key!r} of scheduling is not an epoch; keys are 0-based "
                    f"epoch numbers (ints >= 0), e.g. {{0: 4, 4: 1}}."
                )
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
                raise LcvError(
                    f"GradientAccumulationScheduler: scheduling[{epoch}] = {factor!r} is not an accumulation factor; "
                    "use an int >= 1 (the number of batches per optimizer step)."
                )
            parsed[epoch] = factor
        self.scheduling = dict(sorted(parsed.items()))
        if 0 not in self.scheduling:
            self.scheduling = {0: 1, **self.scheduling}  # as Lightning: no accumulation before the first key

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """Return the accumulation factor of the 0-based ``epoch``."""
        factor = 1
        for first_epoch, value in self.scheduling.items():
            if epoch >= first_epoch:
                factor = value
        return factor

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Refuse a trainer that also sets ``accumulate_grad_batches`` or a fold using manual optimization."""
        configured = trainer.config.accumulate_grad_batches
        if configured != 1:
            raise LcvError(
                f"TrainerConfig.accumulate_grad_batches={configured} and a GradientAccumulationScheduler both set "
                "the accumulation; keep accumulate_grad_batches=1 and put the factors in the scheduler's scheduling."
            )
        for fold in trainer.folds:
            if not fold.module.automatic_optimization:
                raise LcvError(
                    f"GradientAccumulationScheduler needs automatic optimization; fold {fold.index}'s "
                    f"{type(fold.module).__name__} sets automatic_optimization=False and accumulates itself."
                )
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)

    def on_train_epoch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Set the trainer's accumulation factor for this epoch."""
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(epoch)
