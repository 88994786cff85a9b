"""One tuning trial: the objective that cross-validates a trial's config on the study's frozen folds and records it."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from lcv_config import ExperimentConfig, TrialPruned
from lcv_config.loading import dump_config
from lcv_config.protocols import Trial
from lcv_config.schema import TuneConfig
from lcv_core.tuning.params import apply_params

FOLDS_FILE = "folds.json"
"""The frozen folds every trial trains on, in the study's run directory."""
TRIALS_FILE = "trials.jsonl"
"""One JSON line per trial run on this machine: number, params, value, state, epochs."""


def freeze_folds(config: ExperimentConfig, run_dir: Path) -> Path | None:
    """Compute the folds once and save them in the run directory; ``None`` if the datamodule cannot save folds."""
    from lcv_core.configure import build_datamodule

    path = run_dir / FOLDS_FILE
    if path.exists():
        return path  # joining an existing run directory: keep its folds
    datamodule = build_datamodule(config)
    if not hasattr(datamodule, "save_folds"):
        return None
    if hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    datamodule.save_folds(tmp)
    tmp.replace(path)
    return path


class TrialObjective:
    """One trial: apply the parameters, cross-validate on the frozen folds, report the fold mean every epoch."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, folds: Path | None, worker: int) -> None:
        self.config = config
        self.run_dir = run_dir
        self.folds = folds
        self.worker = worker

    def __call__(self, trial: Trial) -> float:
        """Run one trial's cross-validation with its parameters; return the fold mean of the monitor."""
        from lcv_core.callbacks.pruning import TunerPruning
        from lcv_core.configure import configure_all

        params = dict(trial.params)
        trial_dir = self.run_dir / f"trial_{trial.number}"
        record: dict[str, Any] = {"number": trial.number, "params": params, "worker": self.worker}
        pruning = TunerPruning(trial, monitor=self.config.trainer.monitor, mode=self.config.trainer.mode)
        try:
            cfg = apply_params(self.config, params)
            cfg.trainer.callbacks = [*(cfg.trainer.callbacks or []), pruning]
            trainer, factory, datamodule = configure_all(cfg, run_dir=trial_dir)
            if self.folds is not None and hasattr(datamodule, "load_folds"):
                datamodule.load_folds(self.folds)
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
            result = trainer.fit(factory, datamodule)
            summary = result.metric(self.config.trainer.monitor)
            value = summary.mean
            trial.set_user_attr("per_fold", [v if math.isfinite(v) else None for v in summary.per_fold])
            trial.set_user_attr("std", summary.std if math.isfinite(summary.std) else None)
            trial.set_user_attr("best_epoch", result.best_epoch)
            record.update(value=value, state="COMPLETE" if math.isfinite(value) else "FAIL")
            return float(value)
        except TrialPruned:
            record.update(value=pruning.means[-1] if pruning.means else None, state="PRUNED")
            raise
        except BaseException as exc:
            record.update(value=None, state="FAIL", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            record["epochs"] = len(pruning.means)
            self._append(record)
            self._prune_checkpoints()

    def _prune_checkpoints(self) -> None:
        """Delete the checkpoints of the ended trials that are not among the best ``tune.keep_checkpoints``."""
        from lcv_core.tuning.cleanup import prune_checkpoints

        tune_cfg = self.config.tune or TuneConfig()
        direction = tune_cfg.direction or ("minimize" if self.config.trainer.mode == "min" else "maximize")
        try:
            prune_checkpoints(self.run_dir, tune_cfg.keep_checkpoints, direction)
        except OSError as exc:  # disk space is not worth a trial: say so, keep tuning
            warnings.warn(f"Could not delete the checkpoints of earlier trials: {exc}", UserWarning, stacklevel=2)

    def _append(self, record: dict[str, Any]) -> None:
        value = record.get("value")
        if isinstance(value, float) and not math.isfinite(value):
            record["value"] = None
        with (self.run_dir / TRIALS_FILE).open("a", encoding="utf-8") as fh:  # one short append per line
            fh.write(json.dumps(record, default=str) + "\n")


def read_trials(run_dir: str | Path) -> list[dict[str, Any]]:
    """Return the trial records of a run directory (``trials.jsonl``), sorted by trial number."""
    path = Path(run_dir) / TRIALS_FILE
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(rows, key=lambda r: int(r["number"]))
