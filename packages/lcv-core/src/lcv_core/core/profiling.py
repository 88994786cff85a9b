"""Profiling of the fold loop with Lightning's profilers (``TrainerConfig.profiler``).

Action names carry the fold, so the summary shows where each fold spends its time::

    [fold 0] training_step      [fold 0] backward      [fold 0] optimizer_step
    [fold 0] validation_step    [fold 0] train_dataloader_next    [fold 0] val_dataloader_next
    [Callback] on_train_epoch_start_per_fold   (callback hooks, summed over folds and callbacks)
"""

from __future__ import annotations

import difflib
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from lightning.pytorch.profilers import AdvancedProfiler, Profiler, SimpleProfiler

from lcv_config import LcvError

PROFILERS = ("simple", "advanced")
"""The profiler names ``TrainerConfig.profiler`` accepts (besides a ``Profiler`` object and ``None``)."""

SUMMARY_FILE = "profiler.txt"
"""The file in the run directory that receives the profiler's summary at the end of a fit."""


def make_profiler(spec: str | Profiler | None) -> Profiler | None:
    """Return the profiler for ``TrainerConfig.profiler``: ``"simple"``, ``"advanced"``, a ``Profiler`` or ``None``.

    Raises:
        LcvError: An unknown name (with the closest valid one) or an object that is not a Lightning ``Profiler``.
    """
    if spec is None or isinstance(spec, Profiler):
        return spec
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "simple":
            return SimpleProfiler(extended=True)
        if name == "advanced":
            return AdvancedProfiler()
        close = difflib.get_close_matches(name, PROFILERS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise LcvError(
            f"TrainerConfig.profiler={spec!r} is not a profiler.{hint} Use one of: {', '.join(PROFILERS)}, "
            "a lightning.pytorch.profilers.Profiler object, or None."
        )
    raise LcvError(
        f"TrainerConfig.profiler is a {type(spec).__name__}; expected 'simple', 'advanced', a "
        "lightning.pytorch.profilers.Profiler object (e.g. PyTorchProfiler()), or None."
    )


def profile(profiler: Profiler | None, action: str) -> AbstractContextManager[Any]:
    """Return a context that records ``action`` on ``profiler``; a no-op ``nullcontext`` when it is ``None``."""
    if profiler is None:
        return nullcontext()
    return profiler.profile(action)


def finish(profiler: Profiler | None, run_dir: Path | None, fabric: Any) -> str | None:
    """Print the profiler's summary and write it to ``<run_dir>/profiler.txt`` (rank 0 only); return the summary."""
    if profiler is None:
        return None
    summary = profiler.summary()
    if fabric.is_global_zero:
        fabric.print(summary)
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / SUMMARY_FILE).write_text(summary + "\n", encoding="utf-8")
    return summary
