"""Stop a fit once it has run for a given wall time."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer

_DURATION = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}):(\d{1,2})$")


def parse_duration(duration: str | timedelta | dict[str, float] | float) -> timedelta:
    """Return ``duration`` as a timedelta: ``"DD:HH:MM:SS"``, a timedelta, ``timedelta`` keywords, or seconds.

    Raises:
        LcvError: The value is in none of these forms, or is not positive.
    """
    value: timedelta | None = None
    if isinstance(duration, timedelta):
        value = duration
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        value = timedelta(seconds=duration)
    elif isinstance(duration, str):
        match = _DURATION.match(duration.strip())
        if not match:
            raise LcvError(
                f"Timer(duration={duration!r}): expected 'DD:HH:MM:SS' (e.g. '00:12:00:00' for 12 hours), "
                "a dict like {'hours': 12}, a timedelta or a number of seconds."
            )
        days, hours, minutes, seconds = (int(g) for g in match.groups())
        value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    elif isinstance(duration, dict):
        allowed = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
        unknown = sorted(set(duration) - set(allowed))
        if unknown:
            raise LcvError(f"Timer(duration={duration!r}): unknown key(s) {unknown}; use {', '.join(allowed)}.")
        value = timedelta(**duration)
    if value is None:
        raise LcvError(
            f"Timer(duration={duration!r}): a {type(duration).__name__} is not a duration; use 'DD:HH:MM:SS', "
            "a dict like {'hours': 12}, a timedelta or a number of seconds."
        )
    if value <= timedelta(0):
        raise LcvError(f"Timer(duration={duration!r}): the duration must be positive.")
    return value


class Timer(Callback):
    """Stop training once ``duration`` of wall time has passed, as Lightning's ``Timer`` does.

    The time is checked after every training batch and every epoch; when it is up, the trainer is asked to
    stop, and the loop ends after the current epoch (so every fold has the same number of epochs).
    Elapsed time is saved in checkpoints, so a resumed run keeps counting.

    Args:
        duration: ``"DD:HH:MM:SS"``, a dict of ``timedelta`` keywords (``{"hours": 12}``), a timedelta, or seconds.

    Example:
        >>> timer = Timer(duration={"minutes": 30})
        >>> # CrossValidationTrainer(callbacks=[timer]).fit(...); timer.time_elapsed()
    """

    def __init__(self, duration: str | timedelta | dict[str, float] | float) -> None:
        self.duration = parse_duration(duration)
        self._offset = 0.0
        self._start: float | None = None
        self._end: float | None = None

    def time_elapsed(self) -> float:
        """Return the seconds of training so far (including time before a resume)."""
        if self._start is None:
            return self._offset
        end = self._end if self._end is not None else time.monotonic()
        return self._offset + end - self._start

    def time_remaining(self) -> float:
        """Return the seconds left before the timer stops training (0 when the time is up)."""
        return max(0.0, self.duration.total_seconds() - self.time_elapsed())

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Start the clock."""
        self._start = time.monotonic()
        self._end = None

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Stop the clock."""
        self._end = time.monotonic()

    def _check(self, trainer: CrossValidationTrainer) -> None:
        if self._start is not None and self._end is None and self.time_remaining() <= 0:
            trainer.stop(
                f"Timer: the time limit of {self.duration} was reached after {self.time_elapsed():.1f}s "
                "(training stops after this epoch)."
            )

    def on_train_batch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, outputs: Any, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Ask the trainer to stop after this epoch if the time is up."""
        self._check(trainer)

    def on_train_epoch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Ask the trainer to stop after this epoch if the time is up."""
        self._check(trainer)

    def on_validation_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Ask the trainer to stop after this epoch if the time is up (checked again after validation)."""
        self._check(trainer)

    def state_dict(self) -> dict[str, Any]:
        """Return the elapsed seconds."""
        return {"time_elapsed": self.time_elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the elapsed seconds; the clock continues from there."""
        self._offset = float(state_dict.get("time_elapsed", 0.0))
        self._start = None
        self._end = None
