"""Stop training when the fold mean of a metric stops improving."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Literal

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


class EarlyStopping(Callback):
    """Stop all folds when ``monitor``'s fold mean has not improved for ``patience`` epochs.

    Args:
        monitor: A metric logged in validation (``val_loss``); its fold mean ``cv/<monitor>_mean`` is watched.
            Default: the trainer's ``monitor`` (``TrainerConfig.monitor``).
        patience: Epochs without improvement before stopping (``>= 0``).
        min_delta: The smallest change that counts as an improvement (``>= 0``, in the metric's units, whatever
            ``mode``).
        mode: ``min`` if lower is better, ``max`` if higher is better. Default: the trainer's ``mode`` when
            ``monitor`` is not given, else ``min``.
        warmup: Epochs at the start that are never counted against ``patience`` (``>= 0``).
        stopping_threshold: Stop as soon as the fold mean reaches this value.
        divergence_threshold: Stop as soon as the fold mean is worse than this value.
        check_finite: Stop when the fold mean or any fold's value is NaN or infinite.

    Raises:
        ValueError: ``patience``, ``warmup`` or ``min_delta`` is negative (from a config: exit 2 naming the
            callback's path).
    """

    def __init__(
        self,
        monitor: str | None = None,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: Literal["min", "max"] | None = None,
        warmup: int = 0,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_finite: bool = True,
    ) -> None:
        if mode not in ("min", "max", None):
            raise LcvError(f"EarlyStopping(mode={mode!r}): expected 'min' or 'max'.")
        for name, value, meaning in (
            ("patience", patience, "epochs without improvement before stopping"),
            ("warmup", warmup, "epochs at the start never counted against patience"),
            ("min_delta", min_delta, "the smallest change that counts as an improvement, in the metric's units"),
        ):
            if not value >= 0:  # NaN too
                raise ValueError(f"EarlyStopping({name}={value!r}): expected a number >= 0 ({meaning}).")
        self.monitor = monitor
        self._mode_given = mode is not None
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode: Literal["min", "max"] = mode or "min"
        self.warmup = warmup
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.check_finite = check_finite
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.reason: str | None = None

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Take ``monitor`` (and ``mode``) from the trainer's config when they were not given."""
        self._resolve(trainer)

    def _resolve(self, trainer: CrossValidationTrainer) -> str:
        if self.monitor is None:
            self.monitor = str(trainer.config.monitor)
            if not self._mode_given:
                self.mode = trainer.config.mode
                self.best = math.inf if self.mode == "min" else -math.inf
        return self.monitor

    def _better(self, value: float, than: float) -> bool:
        return value < than - self.min_delta if self.mode == "min" else value > than + self.min_delta

    def on_validation_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Check the fold mean of ``monitor`` and ask the trainer to stop when it is time.

        Raises:
            LcvError: ``monitor`` was not logged by the folds; the message lists what was.
        """
        monitor = self._resolve(trainer)
        key = f"cv/{monitor}_mean"
        if key not in metrics:
            logged = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("fold_")})
            close = difflib.get_close_matches(monitor, logged, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise LcvError(
                f"EarlyStopping monitors '{monitor}', which no fold logged.{hint} "
                f"Logged: {', '.join(logged) or 'nothing'}."
            )
        value = metrics[key]
        lower = self.mode == "min"
        reason = None
        if self.check_finite and not math.isfinite(value):
            bad = sorted(
                k.split("/")[0]
                for k, v in metrics.items()
                if k.startswith("fold_") and k.endswith(f"/{self.monitor}") and not math.isfinite(v)
            )
            reason = f"{self.monitor} is not finite at epoch {epoch + 1} in {', '.join(bad) or 'the fold mean'}"
        elif self.stopping_threshold is not None and (
            value <= self.stopping_threshold if lower else value >= self.stopping_threshold
        ):
            reason = (
                f"fold mean of {self.monitor} {value:.4g} reached the stopping threshold {self.stopping_threshold} "
                f"at epoch {epoch + 1}"
            )
        elif self.divergence_threshold is not None and (
            value > self.divergence_threshold if lower else value < self.divergence_threshold
        ):
            limit = self.divergence_threshold
            reason = f"fold mean of {self.monitor} {value:.4g} diverged past {limit} at epoch {epoch + 1}"
        elif self._better(value, self.best):
            self.best, self.wait = value, 0
        elif epoch >= self.warmup:
            self.wait += 1
            if self.wait >= self.patience:
                reason = (
                    f"fold mean of {self.monitor} did not improve for {self.patience} epochs (best {self.best:.4g}), "
                    f"stopped at epoch {epoch + 1}"
                )
        if reason:
            self.stopped_epoch, self.reason = epoch, reason
            trainer.stop(reason)

    def state_dict(self) -> dict[str, Any]:
        """Return the best value, the wait counter and the stop epoch."""
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the best value, the wait counter and the stop epoch."""
        self.best, self.wait, self.stopped_epoch = state_dict["best"], state_dict["wait"], state_dict["stopped_epoch"]
