"""A progress bar for the fold loop: epoch × fold with the live fold-mean metrics; plain lines when not a TTY."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer


def format_epoch(epoch: int, max_epochs: int, metrics: dict[str, float]) -> str:
    """Return ``epoch n/N  <name> mean ± std ...`` for every ``cv/<name>_mean`` in ``metrics``."""
    parts = [f"epoch {epoch + 1}/{max_epochs}"]
    parts += [
        _mean_std(metrics, key) for key in sorted(k for k in metrics if k.startswith("cv/") and k.endswith("_mean"))
    ]
    return "  ".join(parts)


def _mean_std(metrics: dict[str, float], key: str) -> str:
    name = key[3:-5]
    std = metrics.get(f"cv/{name}_std", math.nan)
    return f"{name} {metrics[key]:.4f} ± {std:.4f}"


def _n_batches(trainer: CrossValidationTrainer, loader: Any) -> int | None:
    """The number of training batches an epoch runs, after ``limit_train_batches`` and ``fast_dev_run``."""
    if not hasattr(loader, "__len__"):
        return None
    total = len(loader)
    config = trainer.config
    limit = int(config.fast_dev_run) if config.fast_dev_run else config.limit_train_batches
    if isinstance(limit, float):
        return min(total, max(1, int(total * limit)))
    return total if limit is None else min(total, int(limit))


class RichProgressBar(Callback):
    """Show training progress: epochs × folds, the current fold's batches and the latest fold-mean metrics.

    On a terminal this is a live `rich <https://rich.readthedocs.io>`_ progress display. When the output is not
    a terminal (a log file, CI, a notebook's captured stdout) it prints one plain line per epoch instead::

        epoch 3/10  train_loss 0.4211 ± 0.0170  val_acc 0.8733 ± 0.0325  val_loss 0.4420 ± 0.0391

    Args:
        refresh_rate: Update the batch bar every this many batches (``0`` hides the batch bar).
        leave: Keep the finished bars on screen after training.
        console: A ``rich.console.Console`` to draw on (default: one on stdout); whether it is a terminal decides
            between the live display and plain lines.

    Example:
        >>> bar = RichProgressBar(refresh_rate=5, leave=False)
        >>> # CrossValidationTrainer(callbacks=[bar], enable_progress_bar=False).fit(...)
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = True, console: Any = None) -> None:
        self.refresh_rate = refresh_rate
        self.leave = leave
        self._console = console
        self._progress: Any = None
        self._epochs_task: Any = None
        self._batches_task: Any = None
        self._max_epochs = 0
        self._n_folds = 0
        self.lines: list[str] = []
        """Every epoch line shown so far (plain mode and live mode alike)."""

    @property
    def is_live(self) -> bool:
        """Whether the live display is used (the console is a terminal) rather than plain lines."""
        return self._progress is not None

    def _get_console(self) -> Any:
        from rich.console import Console

        if self._console is None:
            self._console = Console(file=sys.stdout)
        return self._console

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Start the display (rank 0 only)."""
        self._max_epochs = int(trainer.config.max_epochs)
        self._n_folds = len(trainer.folds)
        self.lines = []
        if not trainer.fabric.is_global_zero:
            return
        console = self._get_console()
        if not console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            transient=not self.leave,
        )
        self._progress.start()
        self._epochs_task = self._progress.add_task(
            f"epoch 1/{self._max_epochs}", total=self._max_epochs * self._n_folds, metrics=""
        )
        if self.refresh_rate > 0:
            self._batches_task = self._progress.add_task("fold 1", total=None, metrics="")

    def on_train_epoch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Show which fold of which epoch is training."""
        if self._progress is None:
            return
        self._progress.update(
            self._epochs_task, description=f"epoch {epoch + 1}/{self._max_epochs} · fold {fold + 1}/{self._n_folds}"
        )
        if self._batches_task is not None:
            total = _n_batches(trainer, trainer.folds[fold].train_loader)
            self._progress.reset(self._batches_task, total=total, description=f"fold {fold + 1} batches", metrics="")

    def on_train_batch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, outputs: Any, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Advance the batch bar every ``refresh_rate`` batches."""
        if self._progress is None or self._batches_task is None or (batch_idx + 1) % self.refresh_rate:
            return
        self._progress.update(self._batches_task, completed=batch_idx + 1)

    def on_validation_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Count one more fold-epoch done."""
        if self._progress is not None:
            self._progress.advance(self._epochs_task)

    def on_before_log_metrics(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Show the epoch's fold means: in the live display, or as one plain line."""
        if not trainer.fabric.is_global_zero:
            return
        line = format_epoch(epoch, self._max_epochs, metrics)
        self.lines.append(line)
        if self._progress is None:
            print(line, file=self._get_console().file, flush=True)
            return
        fields = "  ".join(line.split("  ")[1:])
        self._progress.update(self._epochs_task, completed=(epoch + 1) * self._n_folds, metrics=fields)

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Close the display, and say why training stopped early if it did."""
        self._close()
        if trainer.fabric.is_global_zero and trainer.stop_reason:
            print(
                f"Stopped after epoch {trainer.current_epoch + 1}: {trainer.stop_reason}", file=self._get_console().file
            )

    def on_exception(self, *, trainer: CrossValidationTrainer, exception: BaseException, **kwargs: Any) -> None:
        """Close the display so the traceback is readable."""
        self._close()

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
