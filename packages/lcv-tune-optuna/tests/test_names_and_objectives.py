"""Every pruner and sampler the tuning guide names builds by name; multi-objective studies run with pruning off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from lcv_config import ConfigError
from lcv_config.space import parse_space
from lcv_tune_optuna._components import make_pruner, make_sampler
from lcv_tune_optuna.tuner import OptunaTuner

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}}


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("median", "MedianPruner"),
        ({"name": "percentile", "cfg": {"percentile": 25.0}}, "PercentilePruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("hyperband", "HyperbandPruner"),
        ({"name": "patient", "cfg": {"wrapped_pruner": "median", "patience": 2}}, "PatientPruner"),
        ({"name": "threshold", "cfg": {"upper": 1.0}}, "ThresholdPruner"),
        ("wilcoxon", "WilcoxonPruner"),
        ("MedianPruner", "MedianPruner"),
    ],
)
def test_pruner_names_build(spec: Any, cls: str) -> None:
    assert type(make_pruner(spec)).__name__ == cls


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", "TPESampler"),
        ("cmaes", "CmaEsSampler"),
        ("random", "RandomSampler"),
        ("grid", "GridSampler"),
        ("qmc", "QMCSampler"),
        ("gp", "GPSampler"),
        ("nsga2", "NSGAIISampler"),
        ("NSGAIISampler", "NSGAIISampler"),
    ],
)
def test_sampler_names_build(name: str, cls: str) -> None:
    assert type(make_sampler(name, parse_space(SPACE), seed=0)).__name__ == cls


def test_unknown_pruner_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Unknown pruner 'medain'. Did you mean 'median'"):
        make_pruner("medain")


def test_multi_objective_study_runs_with_pruning_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tuner = OptunaTuner(SPACE, workdir=tmp_path, sampler="nsga2", seed=0, directions=["minimize", "maximize"])
    assert "Pruning is off in multi-objective studies" in caplog.text

    def objective(trial: Any) -> list[float]:
        trial.report(1.0, 0)  # ignored, not an Optuna error
        assert trial.should_prune() is False
        x = trial.params["x"]
        return [x, x * x]

    tuner.optimize(objective, n_trials=4)  # type: ignore[arg-type]  # a multi-objective objective returns a list
    states = [t.state for t in tuner.study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4
    assert all(t.intermediate_values == {} for t in tuner.study.trials)
    assert tuner.best_value == min(t.values[0] for t in tuner.study.best_trials)


def test_multi_objective_with_a_pruner_says_pruning_is_off(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Pruning is off in multi-objective studies.*Remove tune.pruner"):
        OptunaTuner(SPACE, workdir=tmp_path, pruner="median", directions=["minimize", "maximize"])


def test_bad_directions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directions must list at least two"):
        OptunaTuner(SPACE, workdir=tmp_path, directions=["minimise", "maximize"])
