"""Keep only the best trials' checkpoints (``tune.keep_checkpoints``): the others' ``checkpoints/`` go when they end.

A trial's ``last.ckpt`` holds every fold's weights, optimizer states and best-epoch weights (7 MB for the digits
example), so a study of a hundred trials would keep hundreds of megabytes nobody resumes. What stays of every trial is
its record in ``trials.jsonl`` and its folder's ``config.yaml``, ``metrics.json``/``metrics.csv``, plot and logs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from lcv_core.tuning.objective import TRIALS_FILE

CHECKPOINTS = "checkpoints"
"""The folder of a trial's run directory that holds its checkpoints (``last.ckpt``, ``epoch=<e>/``)."""


def finished_trials(run_dir: Path) -> list[dict[str, Any]]:
    """Return the records of the trials that ended (``trials.jsonl``), skipping a line another worker is writing."""
    path = run_dir / TRIALS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a record being appended right now: its trial is seen at the next cleanup
            continue
        if isinstance(row, dict) and isinstance(row.get("number"), int):
            rows.append(row)
    return rows


def _ranked(rows: list[dict[str, Any]], direction: str) -> list[int]:
    complete = [
        r
        for r in rows
        if r.get("state") == "COMPLETE" and isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])
    ]
    sign = 1.0 if direction == "minimize" else -1.0
    complete.sort(key=lambda r: (sign * float(r["value"]), int(r["number"])))  # ties: the earlier trial
    return [int(r["number"]) for r in complete]


def prune_checkpoints(run_dir: str | Path, keep: int | None, direction: str) -> list[Path]:
    """Delete the ``checkpoints/`` folders of finished trials that are not among the best ``keep``; return them.

    Only trials with a record in ``trials.jsonl`` are touched (a record is written when a trial's fit has ended, so
    a running trial, or one whose worker died, keeps its files). Pruned and failed trials keep no checkpoints;
    completed ones are ranked by their value in ``direction`` (``"minimize"`` or ``"maximize"``). Safe with several
    workers: each removes only folders no trial writes any more, and removing one twice is harmless.

    Args:
        run_dir: The study's run directory (``trial_<n>/`` folders and ``trials.jsonl``).
        keep: How many of the best completed trials keep their checkpoints; ``None`` or negative keeps all.
        direction: The study's direction.
    """
    if keep is None or keep < 0:
        return []
    run_dir = Path(run_dir)
    rows = finished_trials(run_dir)
    best = set(_ranked(rows, direction)[:keep])
    removed: list[Path] = []
    for number in sorted({int(r["number"]) for r in rows} - best):
        folder = run_dir / f"trial_{number}" / CHECKPOINTS
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
