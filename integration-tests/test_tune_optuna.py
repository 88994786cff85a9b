"""``lcv tune`` on digits with the Optuna backend: study.db, a valid best.yaml, and pruning that really prunes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest
import yaml

if TYPE_CHECKING:
    from conftest import LcvCli

BASE = {
    "name": "digits-tune",
    "seed": 0,
    "data": {
        "dataset": "digits",
        "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 2, "shuffle": True}},
        "fitted_transforms": ["standardize"],
        "dataloaders": {"default": {"batch_size": 128}},
    },
    "model": {"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [32]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "SGD", "cfg": {"lr": 0.05}},
    "trainer": {"accelerator": "cpu", "max_epochs": 2, "enable_progress_bar": False},
}


def write_config(path: Path, tune: dict[str, object], **trainer: object) -> Path:
    data = json.loads(json.dumps(BASE))
    data["trainer"].update(trainer)
    data["tune"] = tune
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_study(
    tmp_path_factory: pytest.TempPathFactory, lcv_cli: LcvCli
) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp = tmp_path_factory.mktemp("tune")
    space = {"optimizer.cfg.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}
    config = write_config(
        tmp / "tune.yaml", {"space": space, "sampler": {"name": "tpe", "cfg": {"n_startup_trials": 2}}}
    )
    run_dir = tmp / "run"
    result = lcv_cli.run(["tune", str(config), "--n-trials", "3", "--run-dir", str(run_dir)], cwd=tmp)
    return result, run_dir


def test_tune_writes_study_db_and_a_best_config_that_validates(
    small_study: tuple[subprocess.CompletedProcess[str], Path], lcv_cli: LcvCli
) -> None:
    result, run_dir = small_study
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "study.db").exists() and (run_dir / "folds.json").exists()
    assert sorted(p.name for p in run_dir.glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]
    study = optuna.load_study(study_name="lcv", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert all(len(t.user_attrs["per_fold"]) == 2 and t.user_attrs["std"] >= 0 for t in study.trials)
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["optimizer"]["cfg"]["lr"] == pytest.approx(study.best_params["optimizer.cfg.lr"])
    checked = lcv_cli.run(["config", "validate", str(run_dir / "best.yaml")], cwd=run_dir)
    assert checked.returncode == 0, checked.stderr
    assert "COMPLETE" in result.stdout and "best config" in result.stdout


def test_compare_the_best_trial_with_the_runner_up(
    small_study: tuple[subprocess.CompletedProcess[str], Path], lcv_cli: LcvCli, tmp_path: Path
) -> None:
    result, run_dir = small_study
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="lcv", storage=f"sqlite:///{run_dir / 'study.db'}")
    ranked = sorted((t for t in study.trials if t.value is not None), key=lambda t: (t.value, t.number))
    out = tmp_path / "compare.json"
    compared = lcv_cli.run(["compare", str(run_dir), "--json", str(out)], cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-3000:]
    best, second = (f"trial_{t.number}" for t in ranked[:2])
    assert f"{best} = {run_dir / best}" in compared.stdout and f"{second} = {run_dir / second}" in compared.stdout
    (c,) = json.loads(out.read_text(encoding="utf-8"))["comparisons"]
    assert [c["a"], c["b"]] == [best, second]  # the study's best trial first, then the runner-up
    assert c["mean_a"] == pytest.approx(ranked[0].value) and c["mean_b"] == pytest.approx(ranked[1].value)
    assert c["p_a_better"] + c["p_equivalent"] + c["p_b_better"] == pytest.approx(1.0)

    too_many = lcv_cli.run(["compare", str(run_dir), "--top", "4"], cwd=tmp_path)
    assert too_many.returncode == 2 and "has 3 finished trial(s)" in too_many.stderr
    assert "Traceback" not in too_many.stderr


def test_space_key_not_in_config_exits_2_with_suggestion(tmp_path: Path, lcv_cli: LcvCli) -> None:
    config = write_config(
        tmp_path / "bad.yaml", {"space": {"optimizer.cfg.lrr": {"type": "float", "low": 0.1, "high": 1}}}
    )
    result = lcv_cli.run(["tune", str(config), "--n-trials", "1", "--run-dir", str(tmp_path / "run")], cwd=tmp_path)
    assert result.returncode == 2
    assert "Did you mean 'optimizer.cfg.lr'" in result.stderr
    assert not (tmp_path / "run" / "study.db").exists()


def test_median_pruner_stops_diverging_trials_within_a_few_epochs(tmp_path: Path, lcv_cli: LcvCli) -> None:
    # lr >= 10 with plain SGD diverges on digits; lr 0.05 learns. The median pruner judges the fold mean each epoch.
    tune = {
        "space": {"optimizer.cfg.lr": {"type": "float", "low": 0.05, "high": 30.05, "step": 10.0}},
        "sampler": {"name": "grid", "cfg": {"seed": 0}},
        "pruner": {"name": "median", "cfg": {"n_startup_trials": 1, "n_warmup_steps": 0}},
    }
    config = write_config(tmp_path / "prune.yaml", tune, max_epochs=5)
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["tune", str(config), "--n-trials", "4", "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="lcv", storage=f"sqlite:///{run_dir / 'study.db'}")
    later = study.trials[1:]  # the first trial is the pruner's startup trial
    pruned = [t for t in later if t.state.name == "PRUNED"]
    assert pruned, [(t.params, t.state.name) for t in study.trials]
    assert all(t.params["optimizer.cfg.lr"] > 10 for t in pruned)
    assert all(len(t.intermediate_values) <= 2 for t in pruned)  # stopped within two of five epochs
    good = [t for t in study.trials if t.params["optimizer.cfg.lr"] < 1]
    assert good and all(t.state.name == "COMPLETE" and len(t.intermediate_values) == 5 for t in good)
    assert "PRUNED" in result.stdout
