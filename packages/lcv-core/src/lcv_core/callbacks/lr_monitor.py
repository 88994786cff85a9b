"""Log every fold's learning rates, per epoch or per optimizer step."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer

_INTERVALS = ("epoch", "step")


class LearningRateMonitor(Callback):
    """Log each fold's learning rate as ``fold_<i>/lr-<OptimizerClass>`` to the loggers and keep a history.

    An optimizer with several parameter groups logs ``fold_<i>/lr-<OptimizerClass>-pg<k>`` per group; several
    optimizers of one class get ``-<j>`` after the class name, as in Lightning.

    Args:
        logging_interval: ``"epoch"``: once per epoch, before the fold's training epoch (logger step = epoch);
            ``"step"``: before every training batch (logger step = the fold's optimizer step).
        log_momentum: Also log ``momentum-<OptimizerClass>`` (SGD's ``momentum`` or Adam's ``beta1``).

    Example:
        >>> monitor = LearningRateMonitor(logging_interval="step")
        >>> # CrossValidationTrainer(callbacks=[monitor]).fit(...); monitor.history["fold_0/lr-SGD"]
    """

    def __init__(self, logging_interval: Literal["epoch", "step"] = "epoch", log_momentum: bool = False) -> None:
        if logging_interval not in _INTERVALS:
            raise LcvError(f"LearningRateMonitor(logging_interval={logging_interval!r}): expected 'epoch' or 'step'.")
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.history: dict[str, list[float]] = {}
        """Every logged name (``fold_0/lr-SGD``) with its values in logging order."""

    def _names_and_values(self, fold: int, optimizers: list[Any]) -> dict[str, float]:
        optimizers = [getattr(o, "optimizer", o) for o in optimizers]  # unwrap Fabric's optimizer wrapper
        per_class = Counter(type(o).__name__ for o in optimizers)
        seen: Counter[str] = Counter()
        values: dict[str, float] = {}
        for opt in optimizers:
            cls = type(opt).__name__
            name = cls if per_class[cls] == 1 else f"{cls}-{seen[cls]}"
            seen[cls] += 1
            groups = opt.param_groups
            for k, group in enumerate(groups):
                suffix = f"-pg{k}" if len(groups) > 1 else ""
                values[f"fold_{fold}/lr-{name}{suffix}"] = float(group["lr"])
                if self.log_momentum:
                    momentum = group.get("momentum", group.get("betas", (None,))[0])
                    if momentum is not None:
                        values[f"fold_{fold}/momentum-{name}{suffix}"] = float(momentum)
        return values

    def _log(self, trainer: CrossValidationTrainer, fold: int, step: int) -> None:
        values = self._names_and_values(fold, trainer.folds[fold].optimizers)
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if values:
            trainer.fabric.log_dict(values, step=step)

    def on_train_epoch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Log the fold's learning rates for this epoch (``logging_interval="epoch"``)."""
        if self.logging_interval == "epoch":
            self._log(trainer, fold, epoch)

    def on_train_batch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Log the fold's learning rates for this optimizer step (``logging_interval="step"``)."""
        if self.logging_interval == "step":
            self._log(trainer, fold, trainer.folds[fold].global_step)

    def state_dict(self) -> dict[str, Any]:
        """Return the logged history."""
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the logged history."""
        self.history = {k: list(v) for k, v in state_dict.get("history", {}).items()}
