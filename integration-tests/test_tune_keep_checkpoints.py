"""``tune.keep_checkpoints``: a real Optuna study keeps its best trials' checkpoints only, with one or two workers.

Every trial keeps its ``config.yaml`` and record; a completed one keeps its metrics; only the best ``keep_checkpoints``
completed trials (by the study's own values) keep ``checkpoints/last.ckpt``, pruned and failed trials keep none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from lcv_config import ConfigError, ExperimentConfig
from lcv_core import tune

BASE: dict[str, Any] = {
    "name": "keep-checkpoints",
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
    "trainer": {"accelerator": "cpu", "max_epochs": 3, "enable_progress_bar": False},
}
# SGD: lr 30 diverges on digits (pruned by the threshold pruner), the others learn at different speeds
LRS = [0.01, 0.05, 0.2, 30.0]


def _config(keep: int | None, **tune_extra: Any) -> ExperimentConfig:
    data = json.loads(json.dumps(BASE))
    data["tune"] = {
        "space": {"optimizer.cfg.lr": {"type": "categorical", "choices": LRS}},
        "sampler": {"name": "grid", "cfg": {"seed": 0}},
        "pruner": {"name": "threshold", "cfg": {"upper": 100.0}},
        "keep_checkpoints": keep,
        **tune_extra,
    }
    return ExperimentConfig.model_validate(data)


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="lcv", storage=f"sqlite:///{run_dir / 'study.db'}")


def _with_checkpoints(run_dir: Path) -> set[int]:
    return {int(p.name.split("_")[1]) for p in run_dir.glob("trial_*") if (p / "checkpoints" / "last.ckpt").is_file()}


def _check_kept(run_dir: Path, keep: int) -> None:
    study = _study(run_dir)
    assert len(study.trials) == len(LRS)
    complete = sorted(
        (t for t in study.trials if t.state.name == "COMPLETE" and t.value == t.value), key=lambda t: t.value
    )
    assert len(complete) > keep, "the study must have completed trials beyond the kept ones"
    assert _with_checkpoints(run_dir) == {t.number for t in complete[:keep]}
    assert study.best_trial.number in _with_checkpoints(run_dir)
    for trial in study.trials:
        folder = run_dir / f"trial_{trial.number}"
        assert (folder / "config.yaml").is_file(), f"trial {trial.number} lost its config"
        if trial.state.name == "COMPLETE":
            assert (folder / "metrics.json").is_file(), f"trial {trial.number} lost its metrics"
    records = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["number"] for r in records) == [t.number for t in study.trials]


def test_only_the_best_trials_keep_their_checkpoints(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = tune(_config(keep=2), n_trials=len(LRS), run_dir=run_dir, print_summary=False)
    _check_kept(run_dir, keep=2)
    not_complete = [t for t in _study(run_dir).trials if t.state.name != "COMPLETE"]
    assert not_complete and all(t.number not in _with_checkpoints(run_dir) for t in not_complete)
    assert result.best_value == _study(run_dir).best_value


def test_two_workers_keep_the_best_trial_by_default(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = _config(keep=None)
    data = config.model_dump(exclude_unset=True)
    del data["tune"]["keep_checkpoints"]  # the default
    config = ExperimentConfig.model_validate(data)
    assert config.tune is not None and config.tune.keep_checkpoints == 1
    tune(config, n_trials=len(LRS), workers=2, run_dir=run_dir, print_summary=False)
    _check_kept(run_dir, keep=1)


def test_minus_one_keeps_every_trials_checkpoints(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    data = json.loads(json.dumps(BASE))
    data["tune"] = {
        "space": {"optimizer.cfg.lr": {"type": "categorical", "choices": [0.05, 0.2]}},
        "keep_checkpoints": -1,
    }
    tune(ExperimentConfig.model_validate(data), n_trials=2, run_dir=run_dir, print_summary=False)
    assert _with_checkpoints(run_dir) == {0, 1}


def test_a_keep_below_minus_one_is_refused_naming_the_key() -> None:
    data = json.loads(json.dumps(BASE))
    data["tune"] = {"space": {"optimizer.cfg.lr": {"type": "float", "low": 0.01, "high": 0.1}}, "keep_checkpoints": -2}
    with pytest.raises((ConfigError, ValueError), match="keep_checkpoints"):
        ExperimentConfig.model_validate(data)
