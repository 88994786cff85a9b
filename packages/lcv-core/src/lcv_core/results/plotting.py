"""Learning curves of a cross-validated fit: each fold thin, the fold mean bold with a ±std band, best epoch marked."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lcv_config import LcvError
from lcv_config.errors import did_you_mean
from lcv_core.core.statistics import sample_std

if TYPE_CHECKING:
    from lcv_core.results.cv_result import CVResult

DEFAULT_FILENAME = "learning_curves.png"
"""The file name ``CVResult.plot()`` writes in the run directory when no path is given."""


def _logged_metrics(result: CVResult) -> list[str]:
    """Return every metric any fold logged in any epoch, val metrics first, then train, then the rest."""
    names = {k for h in result.history for row in h for k in row}

    def order(name: str) -> tuple[int, str]:
        rank = 0 if name.startswith("val") else 1 if name.startswith("train") else 2
        return rank, name

    return sorted(names, key=order)


def _check_metrics(result: CVResult, metrics: Sequence[str] | str | None) -> list[str]:
    available = _logged_metrics(result)
    if metrics is None:
        if not available:
            raise LcvError("CVResult.plot(): the result has no logged metrics to plot (the history is empty).")
        return available
    chosen = [metrics] if isinstance(metrics, str) else list(metrics)
    if not chosen:
        raise LcvError(f"CVResult.plot(metrics=[]): name at least one metric. Available: {', '.join(available)}.")
    for name in chosen:
        if name not in available:
            raise LcvError(
                f"CVResult.plot(metrics=[..., {name!r}]): no fold logged '{name}'.{did_you_mean(name, available)} "
                f"Available: {', '.join(available) or '(none)'}."
            )
    return chosen


def _resolve_path(result: CVResult, path: str | Path | None) -> Path:
    if path is not None:
        return Path(path)
    if result.run_dir is None:
        raise LcvError(
            "CVResult.plot() has nowhere to write: the result has no run_dir (the trainer had no default_root_dir). "
            "Pass path='learning_curves.png' or train with default_root_dir set."
        )
    return Path(result.run_dir) / DEFAULT_FILENAME


def plot_learning_curves(
    result: CVResult, path: str | Path | None = None, metrics: Sequence[str] | str | None = None
) -> Path:
    """Draw one subplot per metric and save the figure as a PNG.

    Every fold's curve is a thin line, the fold mean a bold line with a ±1 std band over folds, and the
    best epoch (by the fold mean of ``result.monitor``) a dashed vertical line. Epochs a fold did not
    reach or did not validate are left out of that fold's line and of the mean.

    Args:
        result: The cross-validation result to draw.
        path: Where to write the PNG; default ``<run_dir>/learning_curves.png``.
        metrics: Metric names to draw (default: every logged metric, validation metrics first).

    Returns:
        The path of the written PNG.

    Raises:
        LcvError: A metric was never logged (the message lists those that were), or there is no path and no
            run directory.
    """
    names = _check_metrics(result, metrics)
    target = _resolve_path(result, path)
    # Imported here, as matplotlib is slow to import. A bare Figure renders with Agg and never touches pyplot's
    # global backend or a display.
    from matplotlib.figure import Figure

    n = len(names)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    best = result.best_epoch + 1
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        for fold, h in enumerate(result.history):
            points = [(e + 1, row[name]) for e, row in enumerate(h) if name in row]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linewidth=0.8, alpha=0.5, label=f"fold {fold}")
        epochs, means, stds = [], [], []
        for e in range(max(len(h) for h in result.history)):
            values = [h[e][name] for h in result.history if e < len(h) and name in h[e]]
            if values:
                epochs.append(e + 1)
                means.append(statistics.fmean(values))
                stds.append(sample_std(values))
        if epochs:
            ax.plot(epochs, means, color="black", linewidth=2.2, label="fold mean")
            lower = [m - s for m, s in zip(means, stds, strict=True)]
            upper = [m + s for m, s in zip(means, stds, strict=True)]
            ax.fill_between(epochs, lower, upper, color="black", alpha=0.15, linewidth=0, label="± std")
        ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"{result.n_folds}-fold CV, best epoch {best} by {result.monitor} ({result.mode})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png")
    return target
