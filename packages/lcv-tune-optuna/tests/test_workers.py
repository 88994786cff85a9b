"""Several worker processes on one study: SQLite and a real PostgreSQL server; a killed worker's trial is retried."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from lcv_tune_optuna.tuner import OptunaTuner

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
HEARTBEAT = {"heartbeat_interval": 1, "grace_period": 2, "failed_trial_max_retry": 2}


def worker(storage: str, study: str, n_trials: int, seed: int, hang_marker: str | None) -> None:
    """One worker process: joins the study and runs a fast fake objective (or hangs in its trial, to be killed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuner = OptunaTuner(
        SPACE, storage=storage, study=study, seed=seed, workdir=Path(hang_marker or ".").parent, **HEARTBEAT
    )

    def objective(trial: Any) -> float:
        if hang_marker is not None:
            Path(hang_marker).write_text(json.dumps({"number": trial.number, "params": trial.params}))
            time.sleep(120)  # killed with SIGKILL before this ends
        time.sleep(0.05)
        return float((trial.params["x"] - 0.3) ** 2)

    tuner.optimize(objective, n_trials=n_trials)


def start_worker(storage: str, study: str, n_trials: int, seed: int, hang: Path | None = None) -> Any:
    # Forked, not spawned: a fresh interpreter spends seconds importing optuna and SQLAlchemy on a busy machine.
    proc = multiprocessing.get_context("fork").Process(
        target=worker, args=(storage, study, n_trials, seed, str(hang) if hang else None)
    )
    proc.start()
    return proc


def run_workers(tmp_path: Path, storage: str, n_workers: int, n_trials: int) -> optuna.Study:
    # The study is created once, here, before any worker starts: two workers creating it race on the schema.
    tuner = OptunaTuner(SPACE, storage=storage, study="shared", seed=0, workdir=tmp_path, **HEARTBEAT)
    procs = [start_worker(storage, "shared", n_trials, seed=i) for i in range(n_workers)]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    return tuner.study


def check_shared(study: optuna.Study, n_workers: int, n_trials: int) -> None:
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(n_workers * n_trials))  # unique across workers, none lost
    assert [t.state for t in trials].count(optuna.trial.TrialState.COMPLETE) == n_workers * n_trials
    xs = [t.params["x"] for t in trials]
    assert len(set(xs)) == len(xs)  # per-worker seeds: no two workers proposed the same point


@pytest.mark.parametrize("n_workers", [2, 4])
def test_workers_share_one_sqlite_study(tmp_path: Path, n_workers: int) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    check_shared(run_workers(tmp_path, storage, n_workers, n_trials=3), n_workers, 3)


@pytest.mark.parametrize("n_workers", [2, 4])
def test_workers_share_one_postgresql_study(tmp_path: Path, pg_url: str, n_workers: int) -> None:
    check_shared(run_workers(tmp_path, pg_url, n_workers, n_trials=3), n_workers, 3)


def test_killed_worker_trial_fails_and_is_retried_with_same_params_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    tuner = OptunaTuner(SPACE, storage=pg_url, study="kill", seed=0, workdir=tmp_path, **HEARTBEAT)
    marker = tmp_path / "started.json"
    victim = start_worker(pg_url, "kill", 1, seed=1, hang=marker)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert victim.is_alive(), f"the victim worker exited with {victim.exitcode}"
        assert time.monotonic() < deadline, "the victim worker never started its trial"
        time.sleep(0.1)
    time.sleep(0.3)
    started = json.loads(marker.read_text())
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=30)
    assert victim.exitcode == -signal.SIGKILL
    time.sleep(HEARTBEAT["grace_period"] + 1)  # let the heartbeat go stale
    survivor = start_worker(pg_url, "kill", 3, seed=2)
    survivor.join(timeout=120)
    assert survivor.exitcode == 0

    trials = {t.number: t for t in tuner.study.get_trials(deepcopy=False)}
    killed = trials[started["number"]]
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == pytest.approx(started["params"])  # the same parameters, run again
    done = [t for t in trials.values() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3  # the study still finished the trials it was asked for
