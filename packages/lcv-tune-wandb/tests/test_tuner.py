from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

import lcv_tune_wandb
from lcv_config import ConfigError, LcvError, Trial, TrialPruned, find_plugin, load_plugin
from lcv_config.testing import TunerContract
from lcv_tune_wandb import WandbTuner, read_offline_run


class TestWandbTunerContract(TunerContract):
    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> WandbTuner:
        return WandbTuner(space=space, direction=direction, workdir=workdir, seed=0)


def test_public_api() -> None:
    assert lcv_tune_wandb.__all__ == [
        "DEFAULT_METRIC",
        "DEFAULT_STUDY",
        "METHODS",
        "OfflineRun",
        "WandbCVLogger",
        "WandbTrial",
        "WandbTuner",
        "__version__",
        "flatten_parameters",
        "read_offline_run",
        "space_to_sweep",
        "validate_sweep",
    ]


def test_registered_as_wandb_tuner() -> None:
    assert find_plugin("lcv.tuners", "wandb").value == "lcv_tune_wandb.tuner:WandbTuner"
    assert load_plugin("lcv.tuners", "wandb") is WandbTuner


def test_grid_sweep_runs_exactly_the_grid(tmp_path: Path) -> None:
    space = {
        "optimizer.name": {"type": "categorical", "choices": ["Adam", "SGD"]},
        "model.cfg.hidden": {"type": "int", "low": 16, "high": 48, "step": 16},
    }
    tuner = WandbTuner(space=space, workdir=tmp_path, sampler="grid")
    seen: list[tuple[str, int]] = []

    def objective(trial: Trial) -> float:
        seen.append((trial.params["optimizer.name"], trial.params["model.cfg.hidden"]))
        return float(trial.params["model.cfg.hidden"])

    tuner.optimize(objective, n_trials=100)  # the grid ends the sweep, not n_trials
    assert sorted(seen) == sorted(itertools.product(["Adam", "SGD"], [16, 32, 48]))
    assert all(isinstance(h, int) for _, h in seen)
    assert tuner.best_value == 16.0
    assert tuner.best_params["model.cfg.hidden"] == 16


def test_grid_continues_in_a_second_tuner_on_the_same_workdir(tmp_path: Path) -> None:
    space = {"x": {"type": "categorical", "choices": [1, 2, 3, 4]}}
    seen: list[tuple[int, int]] = []

    def objective(trial: Trial) -> float:
        seen.append((trial.number, trial.params["x"]))
        return float(trial.params["x"])

    WandbTuner(space=space, workdir=tmp_path, sampler="grid", study="s").optimize(objective, n_trials=2)
    WandbTuner(space=space, workdir=tmp_path, sampler="grid", study="s").optimize(objective, n_trials=10)
    assert [n for n, _ in seen] == [0, 1, 2, 3]
    assert sorted(x for _, x in seen) == [1, 2, 3, 4]


def test_random_sweep_stays_within_bounds_and_distributions(tmp_path: Path) -> None:
    space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "units": {"type": "int", "low": 2, "high": 5},
        "drop": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
    }
    tuner = WandbTuner(space=space, workdir=tmp_path, sampler="random", seed=1)
    seen: list[dict[str, Any]] = []
    tuner.optimize(lambda t: seen.append(t.params) or float(t.params["lr"]), n_trials=8)
    assert len(seen) == 8
    assert all(1e-4 <= p["lr"] <= 1e-1 for p in seen)
    assert all(isinstance(p["units"], int) and 2 <= p["units"] <= 5 for p in seen)
    assert all(p["drop"] in (0.0, 0.25, 0.5) for p in seen)
    assert len({p["lr"] for p in seen}) == 8


def test_bayes_sweep_stays_within_bounds_and_learns_from_the_runs(tmp_path: Path) -> None:
    """The engine's Gaussian-process proposals stay in the space and use the finished runs' values."""
    space = {
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "units": {"type": "int", "low": 2, "high": 5},
        "act": ["relu", "tanh"],
    }
    tuner = WandbTuner(space=space, workdir=tmp_path, sampler="bayes", seed=0)
    seen: list[dict[str, Any]] = []

    def objective(trial: Trial) -> float:
        seen.append(trial.params)
        return (float(trial.params["x"]) - 1.0) ** 2  # best at x = 1

    tuner.optimize(objective, n_trials=10)
    assert len(seen) == 10
    assert all(-2.0 <= p["x"] <= 2.0 for p in seen)
    assert all(isinstance(p["units"], int) and 2 <= p["units"] <= 5 for p in seen)
    assert all(p["act"] in ("relu", "tanh") for p in seen)
    assert tuner.best_value == min((p["x"] - 1.0) ** 2 for p in seen)
    assert abs(tuner.best_params["x"] - 1.0) < 0.5  # ten proposals of a 1-d bowl get near its bottom


def test_each_trial_is_an_offline_run_with_the_logged_metric(tmp_path: Path) -> None:
    tuner = WandbTuner(space={"x": [1.0, 2.0]}, workdir=tmp_path, sampler="grid", study="mystudy")

    def objective(trial: Trial) -> float:
        x = float(trial.params["x"])
        for step in range(3):
            trial.report(x * 10 + step, step)
        trial.set_user_attr("fold_scores", [x, x + 1])
        return x

    tuner.optimize(objective, n_trials=2)
    run_dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2
    runs = sorted((read_offline_run(d, wait=30) for d in run_dirs), key=lambda r: r.config["x"])
    for run, x in zip(runs, (1.0, 2.0), strict=True):
        assert run.group == "mystudy"
        assert run.config == {"x": x}
        assert [(row["_step"], row["objective"]) for row in run.history] == [(s, x * 10 + s) for s in range(3)]
        assert run.summary["objective"] == x
        assert run.summary["fold_scores"] == [x, x + 1]
        assert run.summary["lcv_state"] == "finished"
        assert run.exit_code == 0
    state = json.loads((tmp_path / "mystudy.sweep.json").read_text())
    assert [r["value"] for r in state["runs"]] == [1.0, 2.0]


def test_failing_objective_ends_its_run_failed_and_raises(tmp_path: Path) -> None:
    tuner = WandbTuner(space={"x": [1, 2]}, workdir=tmp_path, sampler="grid")

    def objective(trial: Trial) -> float:
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        tuner.optimize(objective, n_trials=2)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir, wait=30)
    assert run.exit_code == 1
    assert run.summary["lcv_state"] == "failed"
    with pytest.raises(LcvError, match="no finished trial"):
        _ = tuner.best_value


def test_hyperband_stops_a_trial_whose_curve_is_bad(tmp_path: Path) -> None:
    tuner = WandbTuner(
        space={"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]},
        workdir=tmp_path,
        sampler="grid",
        pruner={"name": "hyperband", "cfg": {"min_iter": 2, "eta": 2}},
    )
    steps: dict[int, int] = {}

    def objective(trial: Trial) -> float:
        x = float(trial.params["x"])
        for step in range(8):
            trial.report(x + 1.0 / (step + 1), step)
            steps[trial.number] = step + 1
            if trial.should_prune():
                raise TrialPruned()
        return x

    tuner.optimize(objective)
    states = {r["params"]["x"]: r["lcv_state"] for r in tuner.runs}
    assert states[0.0] == "finished"
    assert "pruned" in states.values(), states
    assert all(steps[r["number"]] < 8 for r in tuner.runs if r["lcv_state"] == "pruned")
    assert tuner.best_params == {"x": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "message", "path"),
    [
        (
            {"sweep": {"method": "grid", "parameters": {"a": {"values": [1]}}, "metrc": {"name": "loss"}}},
            r"at 'metrc': Additional properties are not allowed.*Did you mean 'metric'",
            "tune.options.sweep.metrc",
        ),
        (
            {"sweep": {"method": "random", "parameters": {"lr": {"min": 0.1, "max": 0.01}}}},
            r"at 'parameters\.lr'.*lr: min 0\.1 is not less than max 0\.01",
            "tune.options.sweep.parameters.lr",
        ),
        (
            {"sweep": {"method": "grdi", "parameters": {"a": {"values": [1]}}}},
            r"at 'method': 'grdi' is not one of",
            "tune.options.sweep.method",
        ),
        ({"sampler": "grdi"}, r"Unknown W&B sweep method 'grdi'\. Did you mean 'grid'", "tune.sampler"),
        ({"pruner": "hyperbnd"}, r"Did you mean 'hyperband'", "tune.pruner"),
        ({"projct": "p"}, r"Unknown W&B tuner option 'projct'\. Did you mean 'project'", "tune.options.projct"),
        ({"mode": "online"}, r"mode: online .* needs an account: set WANDB_API_KEY", "tune.options.mode"),
        ({"mode": "offlin"}, r"Unknown W&B tuner mode 'offlin'.*Valid: auto, local, online", "tune.options.mode"),
    ],
)
def test_malformed_sweep_config_is_refused_naming_the_key(
    tmp_path: Path, kwargs: dict[str, Any], message: str, path: str
) -> None:
    space: dict[str, Any] = {} if "sweep" in kwargs else {"x": [1, 2]}
    with pytest.raises(ConfigError, match=message) as info:
        WandbTuner(space=space, workdir=tmp_path, **kwargs)
    assert info.value.path == path
    assert not (tmp_path / "wandb").exists()


def test_grid_over_a_continuous_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'lr' is a continuous range") as info:
        WandbTuner(space={"lr": {"type": "float", "low": 0.1, "high": 1.0}}, workdir=tmp_path, sampler="grid")
    assert info.value.path == "tune.space.lr"


def test_native_sweep_config_with_nested_parameters(tmp_path: Path) -> None:
    sweep = {
        "method": "grid",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"optimizer": {"parameters": {"lr": {"values": [0.1, 0.01]}}}, "batch_size": {"value": 8}},
    }
    tuner = WandbTuner(space={}, workdir=tmp_path, sweep=sweep)
    seen: list[dict[str, Any]] = []
    tuner.optimize(lambda t: seen.append(t.params) or float(t.params["optimizer.lr"]), n_trials=5)
    assert sorted(p["optimizer.lr"] for p in seen) == [0.01, 0.1]
    assert all(p["batch_size"] == 8 for p in seen)
    assert tuner.best_params == {"optimizer.lr": 0.01, "batch_size": 8}
    (run_dir, *_) = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert "val_loss" in read_offline_run(run_dir, wait=30).summary


def test_conditional_parameter_dropped_when_inactive(tmp_path: Path) -> None:
    space = {
        "optimizer.name": {"type": "categorical", "choices": ["Adam", "SGD"]},
        "optimizer.cfg.momentum": {"type": "categorical", "choices": [0.5, 0.9], "when": {"optimizer.name": "SGD"}},
    }
    tuner = WandbTuner(space=space, workdir=tmp_path, sampler="grid")
    seen: list[dict[str, Any]] = []
    tuner.optimize(lambda t: seen.append(t.params) or 0.0)
    for params in seen:
        assert ("optimizer.cfg.momentum" in params) == (params["optimizer.name"] == "SGD")


def test_a_second_controller_of_the_same_study_is_refused(tmp_path: Path) -> None:
    tuner = WandbTuner(space={"x": [1, 2]}, workdir=tmp_path, study="s", sampler="grid")
    lock = tmp_path / "s.sweep.lock"
    lock.write_text(str(os.getppid()))  # a live process holds the study
    with pytest.raises(
        LcvError, match=rf"already has a controller \(process {os.getppid()}\).*one controller per study"
    ):
        tuner.optimize(lambda t: 0.0, n_trials=1)
    assert not (tmp_path / "wandb").exists()
    lock.write_text("999999999")  # a controller that died: its lock is taken over
    tuner.optimize(lambda t: float(t.params["x"]), n_trials=1)
    assert tuner.best_value == 1.0
    assert not lock.exists()


def test_sigterm_during_a_trial_prunes_it_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """W&B's agent stops a run with SIGTERM: the trial ends pruned at its next check, the process lives on."""
    import signal

    tuner = WandbTuner(space={"x": [1.0, 2.0]}, workdir=tmp_path, sampler="grid", study="term")
    steps: list[int] = []

    def objective(trial: Trial) -> float:
        for step in range(5):
            trial.report(float(step), step)
            steps.append(step)
            if trial.number == 0 and step == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            if trial.should_prune():
                raise TrialPruned()
        return float(trial.params["x"])

    tuner.optimize(objective, n_trials=2)
    assert [r["lcv_state"] for r in tuner.runs] == ["pruned", "finished"]
    assert steps == [0, 1, 0, 1, 2, 3, 4]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed after the trial


def test_auto_mode_runs_locally_without_an_api_key(tmp_path: Path) -> None:
    assert WandbTuner(space={"x": [1, 2]}, workdir=tmp_path).mode == "local"
