"""W&B end to end, offline: ``loggers: [wandb]`` on ``lcv cv``, and ``lcv tune`` with ``backend: wandb``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from lcv_tune_wandb import read_offline_run

if TYPE_CHECKING:
    from conftest import LcvCli

BASE = {
    "name": "iris-wandb",
    "seed": 0,
    "data": {
        "dataset": "iris",
        "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 2, "shuffle": True}},
        "fitted_transforms": ["standardize"],
        "dataloaders": {"default": {"batch_size": 32}},
    },
    "model": {"name": "mlp", "cfg": {"in_features": 4, "out_features": 3, "hidden": [16]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "Adam", "cfg": {"lr": 0.05}},
    "trainer": {"accelerator": "cpu", "max_epochs": 3, "enable_progress_bar": False},
}


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / ".wandb-data"))


def test_cv_with_the_wandb_logger_writes_one_offline_run(tmp_path: Path, offline: None, lcv_cli: LcvCli) -> None:
    config = {**BASE, "loggers": [{"name": "wandb", "cfg": {"project": "iris", "mode": "offline"}}]}
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["cv", str(path), "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (offline_run,) = (run_dir / "logs" / "wandb" / "wandb").glob("offline-run-*")  # the logger's folder: logs/wandb/
    run = read_offline_run(offline_run, wait=30)
    assert run.exit_code == 0
    epochs = [row for row in run.history if "cv/val_loss_mean" in row]
    assert [row["epoch"] for row in epochs] == [0, 1, 2]  # one row per epoch, none dropped
    assert {"fold_0/val_loss", "fold_1/val_loss", "cv/val_loss_std"} <= set(epochs[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    best = metrics["summary"]["val_loss"]
    assert run.summary["cv/val_loss_mean"] == pytest.approx(best["mean"])
    assert run.summary["cv/val_loss_std"] == pytest.approx(best["std"])
    images = [row for row in run.history if row.get("learning_curves._type") == "image-file"]
    assert len(images) == 1 and (offline_run / "files" / images[0]["learning_curves.path"]).is_file()
    assert run.config["optimizer"] == {"name": "Adam", "cfg": {"lr": 0.05}}  # the resolved config


def test_tune_with_the_wandb_backend_runs_a_grid_offline(tmp_path: Path, offline: None, lcv_cli: LcvCli) -> None:
    config = {
        **BASE,
        "tune": {
            "backend": "wandb",
            "space": {"optimizer.cfg.lr": [0.001, 0.05]},
            "sampler": "grid",
            "options": {"mode": "local"},
        },
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["tune", str(path), "--n-trials", "5", "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [read_offline_run(d, wait=30) for d in sorted(run_dir.rglob("offline-run-*")) if d.is_dir()]
    trials = [r for r in runs if "optimizer.cfg.lr" in r.config]
    assert sorted(r.config["optimizer.cfg.lr"] for r in trials) == [0.001, 0.05]  # exactly the grid
    for trial in trials:
        assert len(trial.history) >= 3  # the fold mean, once per epoch
    best = yaml.safe_load((run_dir / "best.yaml").read_text(encoding="utf-8"))
    assert best["optimizer"]["cfg"]["lr"] in (0.001, 0.05)
