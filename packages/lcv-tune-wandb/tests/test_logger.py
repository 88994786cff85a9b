"""WandbCVLogger: a CV run's rows reach an offline W&B run on one growing step axis."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcv_config import ConfigError
from lcv_tune_wandb.logger import WandbCVLogger, resolve_mode
from lcv_tune_wandb.offline import read_offline_run


def _only_run(save_dir: Path) -> Path:
    runs = sorted((save_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def test_rows_with_steps_going_backwards_are_all_kept(tmp_path: Path) -> None:
    logger = WandbCVLogger(project="digits", group="exp", save_dir=tmp_path, config={"seed": 3})
    # what the trainer does: fold 0's per-step values, fold 1's (its step restarts at 0), then the epoch row
    logger.log_metrics({"fold_0/loss_step": 2.0}, step=0)
    logger.log_metrics({"fold_0/loss_step": 1.5}, step=1)
    logger.log_metrics({"fold_1/loss_step": 2.2}, step=0)
    logger.log_metrics({"fold_0/val_loss": 1.0, "fold_1/val_loss": 1.2, "cv/val_loss_mean": 1.1, "epoch": 0}, step=0)
    logger.log_metrics({"cv/val_loss_mean": 0.9, "cv/val_loss_std": float("nan"), "epoch": 1}, step=1)
    logger.log_hyperparams({"optimizer": {"name": "Adam", "cfg": {"lr": 0.01}}})
    logger.log_summary({"cv/val_loss_mean": 0.9})
    logger.finalize("success")

    run = read_offline_run(_only_run(tmp_path), wait=30)
    assert run.group == "exp"
    assert run.config["seed"] == 3
    assert run.config["optimizer"] == {"name": "Adam", "cfg": {"lr": 0.01}}
    steps = [row["_step"] for row in run.history]
    assert steps == sorted(steps) and len(set(steps)) == 5  # nothing dropped for going backwards
    assert [row.get("fold_1/loss_step") for row in run.history][2] == 2.2
    assert [row["trainer/step"] for row in run.history] == [0, 1, 0, 0, 1]
    assert "cv/val_loss_std" not in run.history[-1]  # NaN (one fold) is left out, not logged as NaN
    assert run.summary["cv/val_loss_mean"] == 0.9
    assert run.exit_code == 0


def test_failed_status_records_exit_code_one(tmp_path: Path) -> None:
    logger = WandbCVLogger(save_dir=tmp_path)
    logger.log_metrics({"cv/val_loss_mean": 1.0, "epoch": 0}, step=0)
    logger.finalize("failed")
    assert read_offline_run(_only_run(tmp_path), wait=30).exit_code == 1


def test_auto_mode_is_offline_without_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"


def test_unknown_mode_is_refused_with_a_suggestion() -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown W&B mode 'ofline'\. Did you mean 'offline'.*Valid: offline, online, auto"
    ):
        WandbCVLogger(mode="ofline")
