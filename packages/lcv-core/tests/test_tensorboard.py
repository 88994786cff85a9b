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
