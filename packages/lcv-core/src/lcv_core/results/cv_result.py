"""Cross-validation results: per-fold history, the best epoch by fold mean, mean ± std."""

from __future__ import annotations

import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcv_config import LcvError
from lcv_core.core.statistics import sample_std, t975

if TYPE_CHECKING:
    from lcv_core.results.compare import Comparison, RunScores


@dataclass
class MetricSummary:
    """One metric at the best epoch: each fold's value, their mean, sample std and 95% interval."""

    name: str
    """The metric's name as logged (``val_acc``)."""
    per_fold: list[float]
    """Each fold's value, in fold order."""
    repeats: list[int] | None = None
    """The repeat (0-based) of each fold in repeated cross-validation; ``None`` for one repeat."""

    @property
    def mean(self) -> float:
        """The mean over folds."""
        return statistics.fmean(self.per_fold)

    @property
    def std(self) -> float:
        """The sample standard deviation over folds (ddof=1), 0 for one fold."""
        return sample_std(self.per_fold)

    @property
    def ci95(self) -> tuple[float, float]:
        """The 95% confidence interval of the mean (Student's t over folds)."""
        k = len(self.per_fold)
        if k < 2:
            return (self.mean, self.mean)
        half = t975(k - 1) * self.std / math.sqrt(k)
        return (self.mean - half, self.mean + half)

    @property
    def n_repeats(self) -> int:
        """How many repeats of the k folds the values come from (1 without repeats)."""
        return len(set(self.repeats)) if self.repeats else 1

    @property
    def repeat_means(self) -> list[float]:
        """The mean over each repeat's folds, in repeat order."""
        groups = self._by_repeat()
        return [statistics.fmean(g) for g in groups]

    @property
    def between_repeat_std(self) -> float:
        """The sample std of the repeat means: how much the score moves with the random split (0 for one repeat)."""
        return sample_std(self.repeat_means)

    @property
    def within_repeat_std(self) -> float:
        """The pooled std of the folds within a repeat: the root of the mean within-repeat variance (ddof=1)."""
        groups = self._by_repeat()
        return math.sqrt(statistics.fmean(sample_std(g) ** 2 for g in groups))

    def _by_repeat(self) -> list[list[float]]:
        if not self.repeats:
            return [self.per_fold]
        return [
            [v for v, r in zip(self.per_fold, self.repeats, strict=True) if r == x] for x in sorted(set(self.repeats))
        ]

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


@dataclass
class CVResult:
    """What a cross-validated fit returns.

    ``history[fold][epoch]`` holds every metric that fold logged in that epoch (train and val).
    """

    history: list[list[dict[str, float]]]
    """Per fold, per epoch, the epoch-level metrics."""
    monitor: str
    """The metric whose fold mean picks the best epoch."""
    mode: str = "min"
    """``min`` or ``max``: which direction of ``monitor`` is better."""
    wall_time: float = 0.0
    """Seconds the fit took."""
    run_dir: Path | None = None
    """Where the run's files were written."""
    stopped_epoch: int | None = None
    """The epoch an early stop ended training after, if any."""
    stop_reason: str | None = None
    """Why training stopped early (the callback's message), if it did."""
    checkpoints: dict[str, Any] = field(default_factory=dict)
    """Checkpoint paths written during the run (``best``, ``last``)."""
    oof_predictions: Any = None
    """Out-of-fold predictions in dataset order, when the module defines ``predict_step``."""
    models: list[Any] = field(default_factory=list, repr=False)
    """Each fold's LightningModule with the weights of the best epoch (empty when not kept)."""
    schedule: str | None = None
    """The schedule that trained the folds: ``schedule='auto'``'s choice, or the schedule given by name."""
    schedule_reason: str | None = None
    """Why ``schedule='auto'`` chose it, with the figures it measured (``None`` for a schedule given by name)."""
    n_repeats: int | None = None
    """R of R×k repeated CV (folds ordered repeat by repeat); ``None`` reads it from ``run_dir``'s ``folds.json``."""
    _repeats: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def repeats(self) -> list[int]:
        """The repeat (0-based) of every fold: all 0 unless the splitter repeated its folds."""
        if self._repeats is None:
            from lcv_core.results.compare import FoldSplit, repeats_of

            r = self.n_repeats
            folds_file = self.run_dir / "folds.json" if self.run_dir is not None else None
            if r is None and folds_file is not None and folds_file.is_file():
                try:
                    split = FoldSplit.read(folds_file)
                    r = split.n_repeats if len(split.folds) == self.n_folds else 1
                except LcvError:  # a datamodule's own folds format: the summary must not fail at the end of a fit
                    r = 1
            r = r or 1
            if r < 1 or self.n_folds % r:
                raise LcvError(f"{self.n_folds} folds do not divide into n_repeats={r} repeats of equal size.")
            self._repeats = repeats_of(self.n_folds, r)
        return self._repeats

    @property
    def n_folds(self) -> int:
        """The number of folds."""
        return len(self.history)

    @property
    def n_epochs(self) -> int:
        """The number of epochs every fold ran."""
        return min(len(h) for h in self.history) if self.history else 0

    def fold_values(self, name: str, epoch: int) -> list[float]:
        """Return each fold's value of ``name`` at ``epoch``."""
        return [h[epoch][name] for h in self.history]

    def curve(self, name: str) -> list[float]:
        """Return the fold mean of ``name`` for every epoch."""
        return [statistics.fmean(self.fold_values(name, e)) for e in range(self.n_epochs)]

    @property
    def metric_names(self) -> list[str]:
        """Every metric every fold logged at the best epoch, sorted."""
        if not self.history:
            return []
        return sorted(set.intersection(*(set(h[self.best_epoch]) for h in self.history)))

    @property
    def best_epoch(self) -> int:
        """The epoch (0-based) with the best fold mean of ``monitor``."""
        epochs = [e for e in range(self.n_epochs) if all(self.monitor in h[e] for h in self.history)]
        if not epochs:
            return max(self.n_epochs - 1, 0)
        curve = {e: statistics.fmean(self.fold_values(self.monitor, e)) for e in epochs}
        pick = min if self.mode == "min" else max
        return pick(
            epochs, key=lambda e: curve[e] if not math.isnan(curve[e]) else math.inf * (1 if self.mode == "min" else -1)
        )

    def metric(self, name: str, epoch: int | None = None) -> MetricSummary:
        """Return ``name`` at ``epoch`` (default: the best epoch) across folds."""
        repeats = self.repeats
        values = self.fold_values(name, self.best_epoch if epoch is None else epoch)
        return MetricSummary(name, values, repeats if max(repeats, default=0) > 0 else None)

    @property
    def metrics(self) -> dict[str, MetricSummary]:
        """Every metric at the best epoch."""
        return {n: self.metric(n) for n in self.metric_names}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: settings, the best epoch's summary per metric, and the full history."""
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "n_folds": self.n_folds,
            "n_repeats": max(self.repeats, default=0) + 1,
            "n_epochs": self.n_epochs,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
            "wall_time": self.wall_time,
            "schedule": self.schedule,
            "schedule_reason": self.schedule_reason,
            "summary": {n: _summary_dict(m) for n, m in self.metrics.items()},
            "history": self.history,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """Return the result as JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_frame(self) -> Any:
        """Return the history as a pandas DataFrame with one row per fold and epoch (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("CVResult.to_frame needs pandas: pip install 'lcv-core[pandas]'") from exc
        rows = [{"fold": f, "epoch": e, **m} for f, h in enumerate(self.history) for e, m in enumerate(h)]
        return pd.DataFrame(rows)

    def write_csv(self, path: str | Path) -> None:
        """Write the history as CSV, one row per fold and epoch."""
        names = sorted({k for h in self.history for m in h for k in m})
        lines = [",".join(["fold", "epoch", *names])]
        for f, h in enumerate(self.history):
            for e, m in enumerate(h):
                lines.append(",".join([str(f), str(e), *(repr(m[n]) if n in m else "" for n in names)]))
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def plot(self, path: str | Path | None = None, metrics: list[str] | str | None = None) -> Path:
        """Save learning curves as a PNG: each fold thin, the fold mean bold with a ±std band, the best epoch marked.

        Args:
            path: Where to write the PNG; default ``<run_dir>/learning_curves.png``.
            metrics: Metric names to draw, one subplot each (default: every logged metric).

        Returns:
            The path of the written PNG.

        Raises:
            LcvError: A metric was never logged (the message lists those that were), or there is no path and
                no run directory.
        """
        from lcv_core.results.plotting import plot_learning_curves

        return plot_learning_curves(self, path=path, metrics=metrics)

    @property
    def stopped_because(self) -> str:
        """Why training ended, in one sentence: the early stop's reason and epoch, or that every epoch ran."""
        if self.stop_reason:
            epoch = self.stopped_epoch + 1 if self.stopped_epoch is not None else self.n_epochs
            return f"Stopped early after epoch {epoch}: {self.stop_reason}"
        return f"Trained all {self.n_epochs} epochs: no early stop."

    def summary(self, print_table: bool = True) -> str:
        """Return (and print) a table of every fold's score at the best epoch, with mean ± std, and why it stopped.

        With repeated cross-validation the folds are grouped by repeat, each repeat with its mean, and the table ends
        with the std between repeat means and the pooled std within repeats.
        """
        from rich.console import Console
        from rich.table import Table

        names = self.metric_names
        repeats = self.repeats
        n_repeats = max(repeats, default=0) + 1
        scheme = f"{self.n_folds}-fold CV" if n_repeats == 1 else f"{n_repeats}×{self.n_folds // n_repeats}-fold CV"
        table = Table(
            title=f"{scheme}, best epoch {self.best_epoch + 1} by {self.monitor} ({self.mode})",
            caption=self.stopped_because,
            caption_justify="left",
        )
        table.add_column("fold")
        for n in names:
            table.add_column(n, justify="right")
        summaries = [self.metric(n) for n in names]
        for f, h in enumerate(self.history):
            if n_repeats > 1 and f and repeats[f] != repeats[f - 1]:
                table.add_section()
            table.add_row(
                str(f) if n_repeats == 1 else f"{f} (repeat {repeats[f]})",
                *(f"{h[self.best_epoch][n]:.4f}" for n in names),
            )
            if n_repeats > 1 and (f + 1 == self.n_folds or repeats[f + 1] != repeats[f]):
                row = [f"{m.repeat_means[repeats[f]]:.4f}" for m in summaries]
                table.add_row(f"repeat {repeats[f]} mean", *row, style="italic")
        table.add_section()
        table.add_row("mean ± std", *(str(m) for m in summaries), style="bold")
        if n_repeats > 1:
            table.add_row("std between repeats", *(f"{m.between_repeat_std:.4f}" for m in summaries))
            table.add_row("std within repeats", *(f"{m.within_repeat_std:.4f}" for m in summaries))
        console = Console(file=io.StringIO(), record=True, highlight=False, width=max(100, 20 * (len(names) + 1)))
        console.print(table)
        text = console.export_text()
        if print_table:
            print(text, end="")
        return text

    def compare(
        self,
        other: CVResult,
        metric: str | None = None,
        rope: float = 0.01,
        independent: bool = False,
        mode: str | None = None,
    ) -> Comparison:
        """Compare this run (A) with ``other`` (B) on the same folds: corrected t-test and Bayesian correlated t-test.

        See `lcv_core.results.compare`.

        Args:
            other: The run to compare with, validated on the same folds.
            metric: The metric at each run's best epoch (default: this run's monitor).
            rope: Half-width of the region of practical equivalence in the metric's units (0.01: one point of
                accuracy).
            independent: The runs used different folds on purpose; pair fold i with fold i by number only.
            mode: ``max`` or ``min`` (default: this run's mode for its monitor, else ``min`` for losses and errors).

        Raises:
            FoldsDifferError: The runs' ``folds.json`` differ (the message names the folds) and ``independent`` is
                false.
        """
        from lcv_core.results.compare import compare_runs

        runs = [r._run_scores(label) for r, label in ((self, "A"), (other, "B"))]
        return compare_runs(runs, metric, rope=rope, mode=mode, independent=independent, fix="pass independent=True")[0]

    def _run_scores(self, name: str) -> RunScores:
        from lcv_core.results.compare import FoldSplit, RunScores

        folds_file = self.run_dir / "folds.json" if self.run_dir is not None else None
        folds = FoldSplit.read(folds_file) if folds_file is not None and folds_file.is_file() else None
        per_fold = {n: m.per_fold for n, m in self.metrics.items()}
        return RunScores(name, per_fold, self.monitor, self.mode, max(self.repeats, default=0) + 1, folds)


def _summary_dict(m: MetricSummary) -> dict[str, Any]:
    out: dict[str, Any] = {"mean": m.mean, "std": m.std, "ci95": list(m.ci95), "per_fold": m.per_fold}
    if m.n_repeats > 1:
        out.update(
            repeats=m.repeats,
            repeat_means=m.repeat_means,
            between_repeat_std=m.between_repeat_std,
            within_repeat_std=m.within_repeat_std,
        )
    return out
