"""A TensorBoard logger in a cross-validated fit gets every fold's metrics and the fold mean, one step per epoch."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from lcv_core.trainer import CrossValidationTrainer

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError:  # lcv-core's optional extra "tensorboard"
    if os.environ.get("CI", "").lower() == "true":
        raise  # CI installs the extra: a missing tensorboard there is a broken environment, not a skip
    pytest.skip("tensorboard is not installed (pip install 'lcv-core[tensorboard]')", allow_module_level=True)

from lightning.fabric.loggers import TensorBoardLogger


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_fold_and_fold_mean_scalars_reach_tensorboard(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    logger = TensorBoardLogger(root_dir=str(tmp_path), name="tb", version=0)
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, loggers=[logger])
    result = trainer.fit(tiny, fold_data(n_folds=3, n=90))
    log_dir = tmp_path / "tb" / "version_0"
    assert list(log_dir.glob("events.out.tfevents.*"))
    scalars = _scalars(log_dir)
    for fold in range(3):
        for name in ("val_loss", "val_acc", "train_loss"):
            steps = scalars[f"fold_{fold}/{name}"]
            assert [step for step, _ in steps] == [0, 1, 2]  # step = epoch, the same axis for every fold
            expected = [row[name] for row in result.history[fold]]
            assert [value for _, value in steps] == pytest.approx(expected, rel=1e-5)
    for epoch, (step, mean) in enumerate(scalars["cv/val_loss_mean"]):
        assert step == epoch
        assert mean == pytest.approx(statistics.fmean(h[epoch]["val_loss"] for h in result.history), rel=1e-5)
    std = [value for _, value in scalars["cv/val_acc_std"]]
    assert std == pytest.approx([statistics.stdev(h[e]["val_acc"] for h in result.history) for e in range(3)], rel=1e-5)


def _hparams(run: Path) -> tuple[dict[str, Any], list[str]]:
    """Return the hyperparameters of the session in ``run`` and the metric tags of its experiment."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, [m.name.tag for m in experiment.metric_infos]


CONFIG_YAML = "seed: 0\nmodel: {name: mlp, cfg: {hidden: [16, 16], dropout: null}}\noptimizer: {cfg: {lr: 0.1}}\n"


def test_cv_logger_writes_a_run_per_fold_and_one_for_the_mean_with_plain_tags(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    from lcv_core.loggers import TensorBoardCVLogger

    logger = TensorBoardCVLogger(root_dir=tmp_path, version="")
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, loggers=[logger])
    trainer.experiment_config_yaml = CONFIG_YAML  # as configure_all sets it: the trainer logs it as hyperparameters
    result = trainer.fit(tiny, fold_data(n_folds=3, n=90))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold_0", "fold_1", "fold_2", "mean"]
    for fold in range(3):
        scalars = _scalars(tmp_path / f"fold_{fold}")
        assert not any("/" in tag for tag in scalars)  # `val_loss`, not `fold_0/val_loss`: folds share one chart
        for name in ("val_loss", "val_acc", "train_loss"):
            assert [step for step, _ in scalars[name]] == [0, 1, 2]
            expected = [row[name] for row in result.history[fold]]
            assert [value for _, value in scalars[name]] == pytest.approx(expected, rel=1e-5)
    mean = _scalars(tmp_path / "mean")
    assert [value for _, value in mean["val_loss"]] == pytest.approx(result.curve("val_loss"), rel=1e-5)
    assert len(mean["val_loss_std"]) == 3
    hparams, metric_tags = _hparams(tmp_path / "mean")
    assert hparams["optimizer.cfg.lr"] == pytest.approx(0.1) and hparams["seed"] == 0
    assert hparams["model.cfg.hidden"] == "[16, 16]" and hparams["model.cfg.dropout"] == "null"
    assert {"best/val_loss", "best/val_acc"} <= set(metric_tags)
    best = result.metric("val_loss")
    assert mean["best/val_loss"] == [(result.best_epoch, pytest.approx(best.mean, rel=1e-5))]


def test_cv_logger_of_a_run_that_stops_early_still_has_its_hyperparameters(tmp_path: Path) -> None:
    from lcv_core.loggers import TensorBoardCVLogger

    logger = TensorBoardCVLogger(root_dir=tmp_path, name="tb")
    logger.log_hyperparams({"trainer": {"max_epochs": 5}})
    logger.log_metrics({"fold_0/val_loss": 1.0, "fold_1/val_loss": 2.0, "cv/val_loss_mean": 1.5}, step=0)
    logger.finalize("success")  # as TunerPruning ends a pruned fit: no summary
    assert logger.log_dir == str(tmp_path / "tb" / "version_0")
    hparams, metric_tags = _hparams(Path(logger.log_dir) / "mean")
    assert hparams == {"trainer.max_epochs": 5} and metric_tags == []
    assert TensorBoardCVLogger(root_dir=tmp_path, name="tb").version == "version_1"  # the next run's folder


def test_config_loggers_write_under_logs_by_name(tmp_path: Path) -> None:
    from lcv_config import load_config
    from lcv_core.configure import build_loggers

    config = load_config(
        base={
            "name": "x",
            "data": {"dataset": "fake"},
            "model": {"name": "mlp", "cfg": {"in_features": 2, "out_features": 2}},
            "loggers": ["csv", "tensorboard", {"name": "csv", "cfg": {"flush_logs_every_n_steps": 1}}],
        }
    )
    csv, board, second = build_loggers(config, tmp_path)
    assert Path(csv.log_dir) == tmp_path / "logs" / "csv"
    assert Path(board.log_dir) == tmp_path / "logs" / "tensorboard"
    assert Path(second.log_dir) == tmp_path / "logs" / "csv_1"
