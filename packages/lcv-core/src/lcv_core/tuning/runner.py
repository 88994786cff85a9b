"""Tune an experiment: each trial applies its parameters to a copy of the config and cross-validates on frozen folds.

The backend (``tune.backend``, a plugin in ``lcv.tuners``) proposes parameters keyed by config path
(``optimizer.cfg.lr``); every trial trains on the same folds (computed once, saved as ``folds.json``), reports the fold
mean of ``trainer.monitor`` after every epoch through [`TunerPruning`][lcv_core.TunerPruning], and returns
the best epoch's fold mean. The study's best parameters are written as a ready-to-run ``best.yaml``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcv_config import ConfigError, ExperimentConfig, LcvError
from lcv_config.loading import dump_config, load_config
from lcv_config.schema import TuneConfig
from lcv_core.tuning.cleanup import prune_checkpoints
from lcv_core.tuning.objective import FOLDS_FILE, TRIALS_FILE, read_trials
from lcv_core.tuning.params import apply_params, check_space, check_space_paths
from lcv_core.tuning.workers import make_tuner, prepare_run_dir, run_worker, split_trials, worker_command, worker_seed

BEST_FILE = "best.yaml"
"""The base config with the best parameters applied."""


@dataclass
class TuneResult:
    """What [`tune()`][lcv_core.tune] returns."""

    best_params: dict[str, Any]
    """The best trial's parameters, keyed by config path."""
    best_value: float
    """The best trial's objective: the fold mean of ``trainer.monitor`` at its best epoch."""
    best_config: ExperimentConfig
    """The base config with `best_params` applied (also written as ``best.yaml``)."""
    run_dir: Path
    """The study's run directory: ``folds.json``, ``best.yaml``, ``trials.jsonl``, ``trial_<n>/``."""
    trials: list[dict[str, Any]] = field(default_factory=list)
    """The trials run from this run directory: ``number``, ``params``, ``value``, ``state``, ``epochs``."""
    tuner: Any = None
    """The backend's tuner object (e.g. ``OptunaTuner``, whose ``study`` holds every trial)."""
    problems: list[str] = field(default_factory=list)
    """What went wrong although a best config was found: fewer trials finished than asked for, a worker that died
    for good. Empty when the study ran as asked; ``lcv tune`` exits 1 when it is not."""


def tune(
    config: ExperimentConfig | str | Path,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    run_dir: str | Path | None = None,
    print_summary: bool = True,
) -> TuneResult:
    """Tune the experiment ``config`` describes; write ``best.yaml`` and print a summary table.

    Args:
        config: An experiment config (or a config file) with a ``tune`` section.
        n_trials: Trials to run in all (split among local workers); default ``tune.n_trials``.
        timeout: Time budget in seconds per worker; default ``tune.timeout``.
        workers: Local worker processes sharing one study; the study is created once before any starts.
        storage: Study storage URL (default ``tune.storage``, else a SQLite ``study.db`` in the run directory).
        study: Study name (default ``tune.study``, else the backend's default); machines sharing a storage and a
            study name work on one study.
        run_dir: The study's run directory; default ``<output_dir>/<name>/<timestamp>``.
        print_summary: Print the table of trials.

    Raises:
        ConfigError: No search space, a space key not in the config, a trial config that is invalid, bad settings.
        LcvError: No trial finished. A worker that dies is started again for the trials it had left (up to 3
            times); a trial that failed or a worker that stayed dead is listed in `TuneResult.problems`, and
            ``best.yaml`` is still written from the trials that finished.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}.", "workers")
    tune_cfg = config.tune or TuneConfig()
    n_trials = n_trials if n_trials is not None else tune_cfg.n_trials
    timeout = timeout if timeout is not None else tune_cfg.timeout
    if n_trials is None and timeout is None:
        raise ConfigError(
            "Tuning needs a budget: give n_trials (--n-trials, tune.n_trials) or timeout (--timeout, tune.timeout).",
            "tune.n_trials",
        )
    check_space(config)
    if run_dir is None:
        from lcv_core.loop.run_dir import create_run_dir

        run_dir = create_run_dir(config.output_dir, config.name)
    run_dir = Path(run_dir)
    problems: list[str] = []
    if workers == 1:
        try:
            tuner = run_worker(config, run_dir, n_trials=n_trials, timeout=timeout, storage=storage, study=study)
        except (ConfigError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a trial that raised: keep what the other trials found
            problems.append(f"the worker stopped: {type(exc).__name__}: {exc}")
            tuner = make_tuner(config, run_dir, storage=storage, study=study)
    else:
        prepare_run_dir(config, run_dir)
        tuner = make_tuner(config, run_dir, storage=storage, study=study)  # creates the study once, before workers
        problems += _run_local_workers(run_dir, split_trials(n_trials, workers), timeout, storage, study)
    direction = tune_cfg.direction or ("minimize" if config.trainer.mode == "min" else "maximize")
    prune_checkpoints(run_dir, tune_cfg.keep_checkpoints, direction)  # each trial did; once more for the last ones
    trials = read_trials(run_dir)
    try:
        best_params, best_value = tuner.best_params, tuner.best_value
    except Exception as exc:  # every backend has its own "no best yet" error
        if print_summary:
            print_table(trials, {}, None, run_dir)
        states = ", ".join(f"{r['number']}: {r['state']}" for r in trials) or "none ran"
        lost = f" {'; '.join(problems)}." if problems else ""
        raise LcvError(
            f"No trial finished, so there is no best config and no {BEST_FILE} ({exc}). Trials: {states}.{lost}"
        ) from None
    best_config = apply_params(config, best_params)
    (run_dir / BEST_FILE).write_text(dump_config(best_config), encoding="utf-8")
    if print_summary:
        print_table(trials, best_params, best_value, run_dir)
    finished = sum(r["state"] in ("COMPLETE", "PRUNED") for r in trials)
    failed = sum(r["state"] == "FAIL" for r in trials)
    if n_trials is not None and finished < n_trials and (failed or problems):
        # fewer trials with none lost is a search space run out (a grid) or the timeout, not a problem
        problems.insert(0, f"{finished} of {n_trials} trials finished ({failed} failed)")
    return TuneResult(best_params, best_value, best_config, run_dir, trials, tuner, problems)


_MAX_RESTARTS = 3
"""How often a local worker that died (killed, out of memory, a trial that raised) is started again."""


def _run_local_workers(
    run_dir: Path, shares: list[int | None], timeout: float | None, storage: str | None, study: str | None
) -> list[str]:
    """Run one process per share; start a worker that dies again for the trials it has left; return what was lost.

    A killed worker's trial in progress stays RUNNING in the study until its heartbeat is stale; then the next
    trial any worker starts marks it FAILED and the study retries it with the same parameters (Optuna's heartbeat
    and retry callback), so the replacement only runs the trials the dead one had not finished.
    """
    config_path = run_dir / "config.yaml"
    started = time.monotonic()

    restarts = dict.fromkeys(range(len(shares)), 0)

    def start(i: int, n: int | None) -> subprocess.Popen[bytes]:
        left = None if timeout is None else max(1.0, timeout - (time.monotonic() - started))
        index = i + restarts[i] * len(shares)  # a new index (so a new sampler seed) for a started-again worker
        return subprocess.Popen(worker_command(config_path, run_dir, index, n, left, storage, study))

    running = {i: start(i, n) for i, n in enumerate(shares)}
    problems: list[str] = []
    while running:
        time.sleep(0.2)
        for i, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[i]
            if code == 0:
                continue
            done = sum(
                isinstance(r.get("worker"), int) and r["worker"] % len(shares) == i for r in read_trials(run_dir)
            )
            left = None if shares[i] is None else shares[i] - done
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            out_of_time = timeout is not None and time.monotonic() - started >= timeout
            if (left is None or left > 0) and restarts[i] < _MAX_RESTARTS and not out_of_time:
                restarts[i] += 1
                print(
                    f"lcv tune: worker {i} died ({how}) after {done} trial(s); starting it again for the "
                    f"{'remaining' if left is None else left} trial(s) (restart {restarts[i]} of {_MAX_RESTARTS}). "
                    "A trial it left running is retried with the same parameters once its heartbeat is stale.",
                    file=sys.stderr,
                )
                running[i] = start(i, left)
            elif left is None or left > 0:
                problems.append(f"worker {i} died ({how}) with {'its' if left is None else left} trial(s) left")
    return problems


def print_table(
    trials: list[dict[str, Any]], best_params: Mapping[str, Any], best_value: float | None, run_dir: Path
) -> None:
    """Print one row per trial (trial, params, value, state, epochs) and where the best config was written."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lcv tune", title_justify="left", show_edge=False)
    for column in ("trial", "params", "value", "state", "epochs"):
        table.add_column(column, overflow="fold")
    for row in trials:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in row.get("params", {}).items())
        value = row.get("value")
        table.add_row(
            str(row["number"]), params, "-" if value is None else f"{value:.4g}", row["state"], str(row.get("epochs"))
        )
    console = Console(highlight=False)
    console.print(table)
    if best_value is None:
        return
    best = ", ".join(f"{k}={_fmt(v)}" for k, v in best_params.items())
    console.print(f"best value {best_value:.4g} with {best}")
    console.print(f"best config: {run_dir / BEST_FILE}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = [
    "BEST_FILE",
    "FOLDS_FILE",
    "TRIALS_FILE",
    "TuneResult",
    "apply_params",
    "check_space_paths",
    "make_tuner",
    "print_table",
    "read_trials",
    "run_worker",
    "tune",
    "worker_seed",
]
