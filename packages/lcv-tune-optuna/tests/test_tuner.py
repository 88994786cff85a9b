from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

import lcv_tune_optuna
from lcv_config import ConfigError, LcvError, Trial, TrialPruned, find_plugin, load_plugin
from lcv_config.testing import TunerContract
from lcv_tune_optuna import OptunaTuner


class TestOptunaTunerContract(TunerContract):
    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> OptunaTuner:
        return OptunaTuner(space=space, direction=direction, workdir=workdir, seed=0)


def test_public_api() -> None:
    assert lcv_tune_optuna.__all__ == [
        "DEFAULT_STUDY",
        "PRUNER_ALIASES",
        "SAMPLER_ALIASES",
        "OptunaTrial",
        "OptunaTuner",
        "__version__",
        "default_storage_url",
        "make_pruner",
        "make_sampler",
        "open_storage",
        "suggest",
    ]


def test_registered_as_optuna_tuner() -> None:
    assert find_plugin("lcv.tuners", "optuna").value == "lcv_tune_optuna.tuner:OptunaTuner"
    assert load_plugin("lcv.tuners", "optuna") is OptunaTuner


def test_default_storage_is_a_sqlite_file_in_workdir(tmp_path: Path) -> None:
    tuner = OptunaTuner(space={"x": {"type": "float", "low": 0.0, "high": 1.0}}, workdir=tmp_path, seed=1)
    tuner.optimize(lambda t: float(t.params["x"]), n_trials=3)
    db = tmp_path / "study.db"
    assert db.is_file()
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT s.study_name, COUNT(t.trial_id) FROM studies s JOIN trials t ON t.study_id = s.study_id "
            "GROUP BY s.study_name"
        ).fetchall()
    assert rows == [("lcv", 3)]


def test_second_tuner_on_same_storage_continues_the_study(tmp_path: Path) -> None:
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    numbers: list[int] = []

    def objective(trial: Trial) -> float:
        numbers.append(trial.number)
        return float(trial.params["x"]) ** 2

    OptunaTuner(space=space, storage=url, study="s1", workdir=tmp_path).optimize(objective, n_trials=3)
    second = OptunaTuner(space=space, storage=url, study="s1", workdir=tmp_path)
    second.optimize(objective, n_trials=2)
    assert numbers == [0, 1, 2, 3, 4]
    assert len(second.study.trials) == 5
    assert second.best_value == min(t.value for t in second.study.trials if t.value is not None)


def test_existing_study_with_other_direction_is_refused(tmp_path: Path) -> None:
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    OptunaTuner(space=space, direction="minimize", workdir=tmp_path)
    with pytest.raises(ConfigError, match="already exists .* direction 'minimize', not 'maximize'"):
        OptunaTuner(space=space, direction="maximize", workdir=tmp_path)


def test_journal_storage(tmp_path: Path) -> None:
    space = {"x": {"type": "int", "low": 0, "high": 10}}
    first = OptunaTuner(space=space, storage="journal/study.log", workdir=tmp_path, seed=0)
    first.optimize(lambda t: float(t.params["x"]), n_trials=3)
    log = tmp_path / "journal" / "study.log"
    assert log.is_file() and log.stat().st_size > 0
    assert not (tmp_path / "study.db").exists()
    second = OptunaTuner(space=space, storage=str(log), workdir=tmp_path)
    second.optimize(lambda t: float(t.params["x"]), n_trials=2)
    assert [t.number for t in second.study.trials] == [0, 1, 2, 3, 4]
    assert second.best_value == min(t.params["x"] for t in second.study.trials)


def _curve(x: float, step: int) -> float:
    # Every trial improves with epochs, but trials with large x stay far worse at every step.
    return x + 1.0 / (step + 1)


def test_median_pruner_prunes_bad_curves_early(tmp_path: Path) -> None:
    tuner = OptunaTuner(
        space={"x": {"type": "float", "low": 0.0, "high": 10.0}},
        workdir=tmp_path,
        sampler="random",
        pruner={"name": "median", "cfg": {"n_startup_trials": 3, "n_warmup_steps": 1}},
        seed=3,
        heartbeat_interval=None,
    )
    steps_run: dict[int, int] = {}

    def objective(trial: Trial) -> float:
        x = float(trial.params["x"])
        for step in range(10):
            trial.report(_curve(x, step), step)
            steps_run[trial.number] = step + 1
            if trial.should_prune():
                raise TrialPruned(f"pruned at step {step}")
        return _curve(x, 9)

    tuner.optimize(objective, n_trials=20)
    states = {t.number: t.state for t in tuner.study.trials}
    pruned = [n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED]
    complete = [n for n, s in states.items() if s == optuna.trial.TrialState.COMPLETE]
    assert len(pruned) >= 3, states
    assert all(steps_run[n] < 10 for n in pruned)
    assert all(steps_run[n] == 10 for n in complete)
    # Pruned trials are the bad ones: each pruned x is worse than the best finished x.
    xs = {t.number: t.params["x"] for t in tuner.study.trials}
    assert min(xs[n] for n in pruned) > min(xs[n] for n in complete)
    assert tuner.best_value == pytest.approx(min(_curve(xs[n], 9) for n in complete))


def test_conditional_parameters_are_sampled_only_when_active(tmp_path: Path) -> None:
    space = {
        "optimizer.name": {"type": "categorical", "choices": ["Adam", "SGD"]},
        "optimizer.cfg.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer.name": "SGD"}},
        "model.cfg.hidden": {"type": "categorical", "choices": [[16, 16], [32]]},
        "model.cfg.width": {"type": "int", "low": 16, "high": 64, "step": 16},
    }
    tuner = OptunaTuner(space=space, workdir=tmp_path, sampler="random", seed=0, heartbeat_interval=None)
    seen: list[dict[str, Any]] = []

    def objective(trial: Trial) -> float:
        seen.append(trial.params)
        return float(trial.params["model.cfg.width"])

    tuner.optimize(objective, n_trials=12)
    for params in seen:
        assert ("optimizer.cfg.momentum" in params) == (params["optimizer.name"] == "SGD")
        assert params["model.cfg.hidden"] in ([16, 16], [32])
        assert params["model.cfg.width"] in (16, 32, 48, 64)
    assert {p["optimizer.name"] for p in seen} == {"Adam", "SGD"}
    assert tuner.best_params["model.cfg.hidden"] in ([16, 16], [32])


def test_list_and_mapping_choices_round_trip_as_themselves_from_the_storage(tmp_path: Path) -> None:
    choices = [[128, 128], [64], {"width": 32, "depth": 2}, "[64]"]
    space = {"model.cfg.hidden": {"type": "categorical", "choices": choices}}
    tuner = OptunaTuner(space=space, workdir=tmp_path, sampler="random", seed=0, heartbeat_interval=None)
    seen: list[Any] = []

    def objective(trial: Trial) -> float:
        seen.append(trial.params["model.cfg.hidden"])
        return float(choices.index(trial.params["model.cfg.hidden"]))  # the first choice is the best

    tuner.study.enqueue_trial({"model.cfg.hidden": "[128, 128]"})
    tuner.optimize(objective, n_trials=8)
    assert all(value in choices for value in seen)
    assert isinstance(tuner.study.best_params["model.cfg.hidden"], str)  # Optuna keeps primitives only
    # A second tuner on the same storage (another worker, a later lcv tune) reads the stored labels back.
    again = OptunaTuner(space=space, workdir=tmp_path, heartbeat_interval=None)
    assert again.best_params == {"model.cfg.hidden": [128, 128]}
    assert again.best_value == 0.0


def test_grid_sampler_takes_its_grid_from_the_space(tmp_path: Path) -> None:
    space = {"a": {"type": "categorical", "choices": ["x", "y"]}, "b": {"type": "int", "low": 1, "high": 3}}
    tuner = OptunaTuner(space=space, workdir=tmp_path, sampler="grid")
    seen: list[tuple[str, int]] = []
    tuner.optimize(lambda t: seen.append((t.params["a"], t.params["b"])) or 0.0, n_trials=6)
    assert sorted(seen) == [("x", 1), ("x", 2), ("x", 3), ("y", 1), ("y", 2), ("y", 3)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampler": "tpee"}, r"Unknown sampler 'tpee'\. Did you mean 'tpe'.*Available: .*TPESampler"),
        ({"sampler": {"name": "TPESamplr"}}, r"Did you mean 'TPESampler'( or '\w+')?\?.*Available: BruteForceSampler"),
        ({"pruner": "medain"}, r"Unknown pruner 'medain'\. Did you mean 'median'.*Available: .*MedianPruner"),
        (
            {"pruner": {"name": "MedianPruner", "cfg": {"n_startup": 2}}},
            r"Invalid arguments for pruner MedianPruner.*"
            r"n_startup_trials",
        ),
        (
            {"sampler": "grid", "space": {"x": {"type": "float", "low": 0, "high": 1}}},
            r"GridSampler needs a finite grid",
        ),
        ({"storage": "study.txt"}, r"neither a URL nor a file"),
        (
            {"heartbeat_intervall": 5},
            r"Unknown Optuna tuner option 'heartbeat_intervall'. Did you mean 'heartbeat_interval'",
        ),
    ],
)
def test_bad_config_is_refused_with_the_fix(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    space = kwargs.pop("space", {"x": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match=message):
        OptunaTuner(space=space, workdir=tmp_path, **kwargs)
    assert not (tmp_path / "study.db").exists() or "storage" not in kwargs


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model.cfg.act": {"type": "categorical", "choices": []}}, r"model\.cfg\.act.*at least 1 item"),
        ({"optimizer.cfg.lr": {"type": "float", "low": 1.0, "high": 0.1}}, r"optimizer\.cfg\.lr.*must not exceed high"),
    ],
)
def test_bad_space_is_refused_with_its_path(tmp_path: Path, space: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        OptunaTuner(space=space, workdir=tmp_path)
    assert info.value.path is not None and info.value.path.startswith(f"tune.space.{next(iter(space))}")


def test_unreachable_postgres_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    start = time.monotonic()
    with pytest.raises(
        LcvError,
        match=r"Cannot open the study storage 'postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/db'"
        r".*(refused|failed)",
    ) as info:
        OptunaTuner(space={"x": [1, 2]}, storage="postgresql+psycopg://u:secret@127.0.0.1:1/db", workdir=tmp_path)
    assert time.monotonic() - start < 15
    assert "secret" not in str(info.value)


def test_missing_postgres_driver_says_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(LcvError, match=r"pip install 'lcv-tune-optuna\[postgres\]'"):
        OptunaTuner(space={"x": [1, 2]}, storage="postgresql+psycopg://u:p@127.0.0.1:1/db", workdir=tmp_path)


def test_sql_storage_has_heartbeats_on_by_default_so_killed_trials_are_retried(tmp_path: Path) -> None:
    tuner = OptunaTuner(space={"x": [1, 2]}, workdir=tmp_path)
    assert isinstance(tuner.storage, optuna.storages.RDBStorage)
    assert tuner.storage.get_heartbeat_interval() == 60
    assert isinstance(
        tuner.storage.get_heartbeat_stale_trial_callback(), optuna.storages.RetryHeartbeatStaleTrialCallback
    )
    off = OptunaTuner(space={"x": [1, 2]}, workdir=tmp_path / "off", heartbeat_interval=None)
    assert off.storage.get_heartbeat_interval() is None


def test_best_before_any_finished_trial_is_a_clear_error(tmp_path: Path) -> None:
    tuner = OptunaTuner(space={"x": [1, 2]}, workdir=tmp_path)
    with pytest.raises(LcvError, match="no finished trial yet"):
        _ = tuner.best_params
