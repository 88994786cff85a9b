"""The progress display of the fold loop: a live bar on a terminal, one plain line per epoch anywhere else.

On a terminal (sized to its width, 80 columns and up) the display keeps one line per finished epoch and, below them,
a live area with the fold in training and the latest fold means:

    epoch 1/10  train_loss 1.6001 ± 0.0275  val_acc 0.8831 ± 0.0235
      val_loss 0.7355 ± 0.0568
    epoch 2/10 · fold 3/5 ━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━  17/23 0:00:05 ETA 0:00:21 112.4 it/s
    fold means, epoch 1/10: train_loss 1.6001 ± 0.0275  val_acc 0.8831 ± 0.0235
      val_loss 0.7355 ± 0.0568

The bar counts the current fold's training batches of the epoch; the elapsed time, the ETA and the rate are the
whole run's (epochs × folds × batches, in the order the schedule trains them). Metrics are wrapped between
metrics, never inside one. Output that is not a terminal gets the plain epoch lines only.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lcv_core.callbacks.base import Callback

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer

REFRESH_PER_SECOND = 4
"""Redraws of the live area per second."""
PUSH_INTERVAL = 0.1
"""Seconds between two hand-overs of the batch counts to the display; the per-batch hook only counts in between."""
METRIC_GAP = "  "
"""Between two metrics on a line."""
INDENT = "  "
"""Before the continuation lines of a wrapped metrics line."""


def format_epoch(epoch: int, max_epochs: int, metrics: dict[str, float]) -> str:
    """Return `epoch n/N  <name> mean ± std ...` for every `cv/<name>_mean` in `metrics`."""
    return METRIC_GAP.join([f"epoch {epoch + 1}/{max_epochs}", *fold_means(metrics)])


def fold_means(metrics: dict[str, float]) -> list[str]:
    """Return `<name> mean ± std` for every `cv/<name>_mean` in `metrics`, sorted by name."""
    keys = sorted(k for k in metrics if k.startswith("cv/") and k.endswith("_mean"))
    return [_mean_std(metrics, key) for key in keys]


def _mean_std(metrics: dict[str, float], key: str) -> str:
    name = key[3:-5]
    std = metrics.get(f"cv/{name}_std", math.nan)
    return f"{name} {metrics[key]:.4f} ± {std:.4f}"


def wrap_metrics(head: str, items: Sequence[str], width: int) -> list[str]:
    """Pack `head` and `items` into lines of at most `width` cells, breaking only between items.

    Continuation lines are indented; an item longer than a whole line gets a line of its own.
    """
    lines: list[str] = []
    line = head
    for item in items:
        if not line.strip():
            line += item
        elif cell_len(line) + len(METRIC_GAP) + cell_len(item) <= width:
            line += METRIC_GAP + item
        else:
            lines.append(line)
            line = INDENT + item
    lines.append(line)
    return lines


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class RichProgressBar(Callback):
    """Show training progress: on a terminal a live display, elsewhere one plain line per epoch.

    On a terminal every finished epoch leaves a line with its fold means (`val_acc 0.9738 ± 0.0097`), wrapped
    between metrics at the terminal's width. Below them a live area shows the epoch and fold in training, a bar
    of the fold's batches with their count (`17/23`), the run's elapsed time, the run's ETA (the remaining epochs
    × folds × batches at the measured rate) and the rate in batches per second, then the latest fold means on
    their own line(s). Under the `sequential` schedule, whose fold means are known only at the end, each finished
    fold also leaves a line with its last epoch's metrics.

    When the output is not an interactive terminal (a log file, a pipe, CI, a notebook's captured stdout; a pipe
    with `FORCE_COLOR` set too, unless `console` is given) it prints one plain line per epoch:

        epoch 3/10  train_loss 0.4211 ± 0.0170  val_acc 0.8733 ± 0.0325  val_loss 0.4420 ± 0.0391

    The per-batch hook only counts; the display picks the counts up a few times a second.

    Args:
        refresh_rate: Count batches in steps of this many (`0`: the bar moves only when a fold's epoch ends).
        leave: Leave a closing line (batches, folds, time, rate) where the live area was.
        console: A `rich.console.Console` to draw on (default: one on stdout); an interactive console gets the
            live display, any other the plain lines.

    Example:
        >>> bar = RichProgressBar(leave=False)
        >>> # CrossValidationTrainer(callbacks=[bar]).fit(...)
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = True, console: Console | None = None) -> None:
        self.refresh_rate = refresh_rate
        self.leave = leave
        self._console = console
        self._console_given = console is not None
        self._area: _LiveArea | None = None
        self._max_epochs = 0
        self._n_folds = 0
        self._epoch_major = True
        self._fold_batches: list[int | None] = []
        self._epoch_total = 0
        self._done = 0
        """Training batches of the run done before the current fold's epoch."""
        self._batch = 0
        """Training batches of the current fold's epoch done."""
        self._next_push = 0.0
        self._shown: dict[str, float] = {}
        """The fold means of the last epoch whose line was kept (by identity: the trainer's dict of that epoch)."""
        self.lines: list[str] = []
        """Every epoch line shown so far (plain mode and live mode alike)."""

    @property
    def is_live(self) -> bool:
        """Whether the live display is up (an interactive console, during a fit) rather than plain lines."""
        return self._area is not None

    def _get_console(self) -> Console:
        if self._console is None:
            self._console = Console(file=sys.stdout)
        return self._console

    def _wants_live(self, console: Console) -> bool:
        """An interactive console; the default one only on a real terminal (`FORCE_COLOR` does not make a pipe one)."""
        if not console.is_interactive:
            return False
        return self._console_given or _is_tty(console.file) or os.environ.get("TTY_INTERACTIVE") == "1"

    # -- the fit --------------------------------------------------------------------------------------

    def on_train_start(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Count the run's batches and start the live display (rank 0, interactive console)."""
        self._max_epochs = int(trainer.config.max_epochs)
        self._n_folds = len(trainer.folds)
        self._shown = trainer.epoch_metrics  # a resumed fit's last epoch was shown by the run that trained it
        self._epoch_major = trainer.schedule.epoch_major
        self.lines = []
        if not trainer.fabric.is_global_zero:
            return
        console = self._get_console()
        if not self._wants_live(console):
            return
        self._fold_batches = [self._batches_per_epoch(trainer, f.train_loader) for f in trainer.folds]
        self._epoch_total = sum(n or 0 for n in self._fold_batches)
        # a resumed fit starts where its checkpoint left each fold
        self._done = sum(
            min(len(f.history), self._max_epochs) * (n or 0)
            for f, n in zip(trainer.folds, self._fold_batches, strict=True)
        )
        self._batch = 0
        first = min((len(f.history) for f in trainer.folds), default=0)
        description = f"epoch {min(first + 1, self._max_epochs)}/{self._max_epochs}"
        self._area = _LiveArea(console, description, self._max_epochs * self._epoch_total or None, self._done)
        self._area.start()

    @staticmethod
    def _batches_per_epoch(trainer: CrossValidationTrainer, loader: Any) -> int | None:
        """The training batches a fold runs per epoch, after `limit_train_batches`, `fast_dev_run` & co."""
        total = len(loader) if hasattr(loader, "__len__") else None
        limit = trainer.fold_loop.limit(loader, trainer.config.limit_train_batches)
        if total is None:
            return limit
        return total if limit is None else min(total, limit)

    def on_train_epoch_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Show which fold of which epoch is training, with an empty bar."""
        if self._area is None:
            return
        self._batch = 0
        where = [f"epoch {epoch + 1}/{self._max_epochs}", f"fold {fold + 1}/{self._n_folds}"]
        self._area.start_fold(" · ".join(where if self._epoch_major else where[::-1]), self._fold_batches[fold])
        self._push()

    def on_train_batch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, outputs: Any, batch: Any, batch_idx: int, **kwargs: Any
    ) -> None:
        """Count the batch; hand the counts to the display a few times a second."""
        if self._area is None or not self.refresh_rate or (batch_idx + 1) % self.refresh_rate:
            return
        self._batch = batch_idx + 1
        now = time.monotonic()
        if now >= self._next_push:
            self._next_push = now + PUSH_INTERVAL
            self._push()

    def on_train_epoch_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Show the fold's epoch as done, whatever steps the refresh rate skipped."""
        if self._area is None:
            return
        n = self._fold_batches[fold]
        if self.refresh_rate != 1 and n is not None:  # count the batches the refresh rate skipped
            self._batch = n
        self._push()
        self._done += self._batch
        self._batch = 0

    def on_validation_start_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, **kwargs: Any
    ) -> None:
        """Say that the fold is validating."""
        if self._area is not None:
            self._area.validating()

    def on_validation_end_per_fold(
        self, *, trainer: CrossValidationTrainer, fold: int, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Under `sequential`, show the fold's own metrics (its fold means come at the end)."""
        if self._area is None or self._epoch_major:
            return
        head = f"fold {fold + 1}/{self._n_folds}, epoch {epoch + 1}/{self._max_epochs}:"
        self._area.metrics.show(head, [f"{k} {v:.4f}" for k, v in sorted(metrics.items())])

    def on_fold_end(self, *, trainer: CrossValidationTrainer, fold: int, **kwargs: Any) -> None:
        """Under `sequential`, keep a line with the finished fold's last metrics."""
        if self._area is None or self._epoch_major or not trainer.folds[fold].history:
            return
        history = trainer.folds[fold].history
        head = f"fold {fold + 1}/{self._n_folds} done, epoch {len(history)}/{self._max_epochs}"
        self._area.keep(head, [f"{k} {v:.4f}" for k, v in sorted(history[-1].items())])

    def on_train_fold_end(
        self, *, trainer: CrossValidationTrainer, epoch: int, metrics: dict[str, float], **kwargs: Any
    ) -> None:
        """Keep the epoch's line of fold means: above the live display, or as one plain line."""
        self._shown = metrics
        if not trainer.fabric.is_global_zero:
            return
        line = format_epoch(epoch, self._max_epochs, metrics)
        self.lines.append(line)
        if self._area is None:
            print(line, file=self._get_console().file, flush=True)
            return
        means = fold_means(metrics)
        self._area.keep(f"epoch {epoch + 1}/{self._max_epochs}", means)
        self._area.metrics.show(f"fold means, epoch {epoch + 1}/{self._max_epochs}:", means)
        if self._epoch_major:  # a schedule without per-batch hooks (vectorized) moves the run on here
            self._done = max(self._done, (epoch + 1) * self._epoch_total)
            self._push()
            if epoch + 1 < self._max_epochs:
                self._area.start_fold(f"epoch {epoch + 2}/{self._max_epochs}", None)

    def on_train_end(self, *, trainer: CrossValidationTrainer, **kwargs: Any) -> None:
        """Close the display, and say why training stopped early if it did."""
        self._close(finished=True)
        if trainer.fabric.is_global_zero and trainer.stop_reason:
            print(
                f"Stopped after epoch {trainer.current_epoch + 1}: {trainer.stop_reason}", file=self._get_console().file
            )

    def on_exception(self, *, trainer: CrossValidationTrainer, exception: BaseException, **kwargs: Any) -> None:
        """Keep the line of an epoch whose end raised (a pruned trial), then close the display for the traceback."""
        metrics = trainer.epoch_metrics
        if metrics and metrics is not self._shown:  # the epoch's fold means are known, its line not kept yet
            self.on_train_fold_end(trainer=trainer, epoch=trainer.current_epoch, metrics=metrics)
        self._close(finished=False)

    # -- the display ----------------------------------------------------------------------------------

    def _push(self) -> None:
        """Hand the counts to the display, which redraws on its own clock."""
        if self._area is not None:
            self._area.set_counts(self._batch, self._done + self._batch)

    def _close(self, finished: bool) -> None:
        area, self._area = self._area, None
        if area is None:
            return
        elapsed = area.run.elapsed or 0.0
        area.stop()
        if finished and self.leave:
            rate = f", {self._done / elapsed:.1f} it/s" if elapsed > 0 else ""
            line = f"{self._done} batches of {self._n_folds} folds in {_clock(elapsed)}{rate}"
            area.console.print(Text(line), highlight=False)


class _OfRun(ProgressColumn):
    """Render `column` for the whole run's (hidden) task, on the fold's row."""

    def __init__(self, column: ProgressColumn, area: _LiveArea, prefix: str = "") -> None:
        super().__init__()
        self.column, self.area, self.prefix = column, area, prefix

    def render(self, task: Task) -> RenderableType:
        rendered = self.column.render(self.area.run)
        return Text(self.prefix) + rendered if self.prefix and isinstance(rendered, Text) else rendered


class _Rate(ProgressColumn):
    """Batches per second."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:.1f} it/s", style="progress.data.speed")


class _MetricLines:
    """The latest fold means, wrapped between metrics at the live area's width."""

    def __init__(self) -> None:
        self.head = "fold means: after the first epoch"
        self.items: list[str] = []

    def show(self, head: str, items: list[str]) -> None:
        """Show `items` after `head` from the next redraw on."""
        self.head, self.items = head, items

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        for line in wrap_metrics(self.head, self.items, options.max_width):
            yield Text(line, no_wrap=True, overflow="fold", style="progress.description")


class _LiveArea(Progress):
    """The fold's row (its bar and batch count, the run's elapsed time, ETA and rate), then the fold means."""

    def __init__(self, console: Console, description: str, run_total: int | None, run_done: int) -> None:
        columns: list[ProgressColumn] = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            _OfRun(TimeElapsedColumn(), self),
            _OfRun(TimeRemainingColumn(), self, prefix="ETA "),
            _OfRun(_Rate(), self),
        ]
        self.metrics = _MetricLines()  # before Progress builds its Live, which renders at once
        # transient: the kept lines above are the record, the live area goes when the fit ends
        super().__init__(*columns, console=console, transient=True, expand=True, refresh_per_second=REFRESH_PER_SECOND)
        self._run_id = self.add_task("run", total=run_total, completed=run_done, visible=False)
        self._fold_id = self.add_task(description, total=None)
        self.run = self._task(self._run_id)
        self._fold = self._task(self._fold_id)

    def _task(self, task_id: TaskID) -> Task:
        return next(t for t in self.tasks if t.id == task_id)

    def start_fold(self, description: str, n_batches: int | None) -> None:
        """Show a new fold's epoch with an empty bar."""
        # not Progress.reset, which redraws at once, in the training loop's thread
        self.update(self._fold_id, total=n_batches, completed=0, description=description)

    def validating(self) -> None:
        """Mark the fold's row as validating."""
        self.update(self._fold_id, description=f"{self._fold.description} · val")

    def set_counts(self, fold_batches: int, run_batches: int) -> None:
        """Set the fold's and the run's batch counts."""
        self.update(self._fold_id, completed=fold_batches)
        self.update(self._run_id, completed=run_batches)

    def keep(self, head: str, items: Sequence[str]) -> None:
        """Print a line above the live area, wrapped between metrics at the console's width."""
        # one print: each print above a live area redraws it
        text = "\n".join(wrap_metrics(head, items, self.console.width))
        self.console.print(Text(text), no_wrap=True, overflow="fold", highlight=False)

    def get_renderables(self) -> Iterable[RenderableType]:
        """The fold's row, then the fold means."""
        yield self.make_tasks_table(self.tasks)
        yield self.metrics
