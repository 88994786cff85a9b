"""Report the fold mean to a tuner's trial after every epoch and stop the fit when the tuner prunes it."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from lcv_config import LcvError, TrialPruned
from lcv_config.errors import did_you_mean
from lcv_config.protocols import Trial
from lcv_core.callbacks.base import Callback
from lcv_core.core.statistics import sample_std

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


class TunerPruning(Callback):
    """Report ``cv/<monitor>_mean`` to ``trial`` after every validated epoch; prune when the tuner says so.

    A pruned fit stops after the current epoch: the trainer is stopped, its loggers are finalized, and the backend's
    own pruned exception propagates out of ``fit`` so the tuner records the trial as pruned. That exception is
    always an [`lcv_config.TrialPruned`][lcv_config.TrialPruned] too; with an Optuna trial (a raw `optuna.Trial`
    or lcv-tune-optuna's wrapper) it is also an `optuna.TrialPruned`, so a hand-written `study.optimize(objective)`
    counts the trial as PRUNED with no `try`/`except`. Another backend's trial names its exception class in a
    `pruned_exception` attribute. Under DDP only rank 0 talks to the tuner's storage and the decision is broadcast
    to every rank.

    At the end (finished or pruned) the trial gets the user attributes ``per_fold`` (each fold's ``monitor`` at the
    best epoch so far), ``mean``, ``std``, ``best_epoch`` and ``epochs`` (the number of epochs trained).

    Args:
        trial: A trial of any backend ([`Trial`][lcv_config.Trial]), or a raw `optuna.Trial`.
        monitor: The validation metric whose fold mean is reported (``val_loss``).
        mode: ``min`` or ``max``: which epoch is the best; default the trainer's ``mode``.
    """

    def __init__(self, trial: Trial, monitor: str = "val_loss", mode: str | None = None) -> None:
        if mode not in (None, "min", "max"):
            raise LcvError(f"TunerPruning(mode={mode!r}): expected 'min' or 'max'.")
        self.trial = trial
        self.monitor = monitor
        self.mode = mode
        self.means: list[float] = []
        """The fold mean reported after each validated epoch."""
        self.per_fold: list[list[float]] = []
        """Each fold's value at each validated epoch."""
        self.epochs: list[int] = []
        """The epoch index of each report."""
        self.pruned_epoch: int | None = None
        """The epoch after which the trial was pruned, or ``None``."""
        self._raised: TrialPruned | None = None

    @property
    def pruned(self) -> bool:
        """Whether the tuner pruned the trial."""
        return self.pruned_epoch is not None

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Forget the reports of an earlier fit."""
        self.means, self.per_fold, self.epochs = [], [], []
        self.pruned_epoch, self._raised = None, None

    def on_validation_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Report the fold mean; stop the trainer and raise the backend's pruned exception when pruned.

        Raises:
            LcvError: ``monitor`` was not logged by the folds; the message lists what was.
            TrialPruned: The tuner pruned the trial; also the backend's own exception (`pruned_exception`).
        """
        key = f"cv/{self.monitor}_mean"
        if key not in metrics:
            logged = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("fold_")})
            raise LcvError(
                f"TunerPruning monitors '{self.monitor}', which no fold logged.{did_you_mean(self.monitor, logged)} "
                f"Logged: {', '.join(logged) or 'nothing'}."
            )
        value = float(metrics[key])
        n = sum(1 for k in metrics if k.startswith("fold_") and k.endswith(f"/{self.monitor}"))
        self.means.append(value)
        self.per_fold.append([float(metrics.get(f"fold_{i}/{self.monitor}", math.nan)) for i in range(n)])
        self.epochs.append(epoch)
        fabric = trainer.fabric
        prune = False
        if fabric.is_global_zero:  # only rank 0 talks to the storage
            self.trial.report(value, epoch)
            prune = bool(self.trial.should_prune())
        if fabric.world_size > 1:
            prune = bool(fabric.broadcast(prune, src=0))
        if not prune:
            return
        self.pruned_epoch = epoch
        reason = f"pruned by the tuner after epoch {epoch + 1} (fold mean of {self.monitor} {value:.4g})"
        trainer.stop(reason)
        self._raised = pruned_exception(self.trial)(f"Trial {self.trial.number} {reason}.")
        raise self._raised

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Store the per-fold scores of the best epoch on the trial."""
        self._store(trainer)

    def on_exception(self, *, trainer: CrossValidationTrainer, exception: BaseException, **kwargs: Any) -> None:
        """End a pruned fit cleanly: store the scores and finalize the loggers as the normal end does."""
        if exception is not self._raised or self._raised is None:
            return
        self._store(trainer)
        for logger in trainer.fabric.loggers:
            logger.finalize("success")

    def best_index(self, mode: str = "min") -> int | None:
        """Return the index (into `means`) of the best finite report, or ``None``."""
        finite = [(v, i) for i, v in enumerate(self.means) if math.isfinite(v)]
        if not finite:
            return None
        return (min(finite) if mode == "min" else max(finite))[1]

    def _store(self, trainer: CrossValidationTrainer) -> None:
        if not trainer.fabric.is_global_zero or not self.means:
            return
        mode = str(self.mode or getattr(getattr(trainer, "config", None), "mode", "min"))
        best = self.best_index(mode)
        index = best if best is not None else len(self.means) - 1
        values = self.per_fold[index]
        std = sample_std([v for v in values if math.isfinite(v)])
        self.trial.set_user_attr("per_fold", [v if math.isfinite(v) else None for v in values])
        self.trial.set_user_attr("mean", self.means[index] if math.isfinite(self.means[index]) else None)
        self.trial.set_user_attr("std", std)
        self.trial.set_user_attr("best_epoch", self.epochs[index])
        self.trial.set_user_attr("epochs", self.epochs[-1] + 1)


_COMBINED: dict[type[BaseException], type[TrialPruned]] = {}


def pruned_exception(trial: Any) -> type[TrialPruned]:
    """Return the exception that stops `trial` as pruned: lcv's `TrialPruned`, also the backend's own when it has one.

    The backend's class comes from the trial's `pruned_exception` attribute, or, for a raw Optuna trial, is
    `optuna.TrialPruned` (taken from the already imported `optuna`: lcv-core never imports a backend). The result
    derives from both, so `except lcv_config.TrialPruned` and the backend's own handling each see it.
    """
    backend = getattr(trial, "pruned_exception", None)
    if backend is None:
        backend = _optuna_pruned(trial)
    if not isinstance(backend, type) or not issubclass(backend, BaseException):
        return TrialPruned
    if issubclass(backend, TrialPruned):
        return backend
    return _combined(backend)


def _combined(backend: type[BaseException]) -> type[TrialPruned]:
    if backend not in _COMBINED:
        name = f"{backend.__module__}.{backend.__qualname__}"
        _COMBINED[backend] = type(
            "TrialPruned",
            (TrialPruned, backend),
            {
                "__doc__": f"lcv's `TrialPruned` that is also `{name}`.",
                "__module__": __name__,
                # a class made at run time is not importable by name: pickle rebuilds it from the backend's class
                "__reduce__": lambda self: (_rebuild, (backend, self.args)),
            },
        )
    return _COMBINED[backend]


def _rebuild(backend: type[BaseException], args: tuple[Any, ...]) -> TrialPruned:
    return _combined(backend)(*args)


def _optuna_pruned(trial: Any) -> type[BaseException] | None:
    optuna = sys.modules.get("optuna")  # an Optuna trial exists only once optuna was imported
    base = getattr(getattr(optuna, "trial", None), "BaseTrial", None)
    if isinstance(base, type) and isinstance(trial, base):
        exc = getattr(optuna, "TrialPruned", None)
        return exc if isinstance(exc, type) and issubclass(exc, BaseException) else None
    return None
