"""Bugs a user would notice that the other suites once let through (issue #21): random streams, resume, NaN."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_core import CrossValidationTrainer
from lcv_core.demos import TinyClassifier


class Draws(TinyClassifier):
    """Records the first random number each fold draws in each epoch (dropout, shuffling come from that stream)."""

    draws: dict[tuple[int, int], float] = {}

    def on_train_epoch_start(self) -> None:
        Draws.draws[(self.trainer.fold, self.current_epoch)] = float(torch.rand(()))


@pytest.mark.parametrize("schedule", ["interleaved", "sequential"])
def test_every_fold_draws_its_own_random_numbers_whatever_the_schedule(data, trainer_kwargs, schedule: str) -> None:
    Draws.draws = {}
    CrossValidationTrainer(**trainer_kwargs, schedule=schedule).fit(Draws, data)
    draws = dict(Draws.draws)
    assert len(draws) == 10 and len(set(draws.values())) == 10  # 5 folds x 2 epochs, all different
    Draws.draws = {}
    other = "sequential" if schedule == "interleaved" else "interleaved"
    CrossValidationTrainer(**trainer_kwargs, schedule=other).fit(Draws, data)
    assert Draws.draws == draws  # a fold's stream does not depend on the schedule


class Scheduled(TinyClassifier):
    """Adam (stateful) with StepLR(step_size=2), logging the learning rate of every epoch."""

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=0.01)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)}

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.optimizers().param_groups[0]["lr"])


def test_resume_at_an_odd_epoch_restores_scheduler_and_optimizer_state(data, trainer_kwargs, tmp_path: Path) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 5}
    whole = CrossValidationTrainer(**kwargs, default_root_dir=str(tmp_path / "whole")).fit(Scheduled, data)
    part = {**kwargs, "max_epochs": 3, "default_root_dir": str(tmp_path / "part")}
    CrossValidationTrainer(**part).fit(Scheduled, data)  # stops after epoch 3: StepLR is mid-period
    resumed = CrossValidationTrainer(**{**part, "max_epochs": 5}).fit(Scheduled, data, ckpt_path="last")
    lrs = [row["lr"] for row in whole.history[0]]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])
    assert resumed.history == whole.history  # epoch by epoch, every fold, the learning rate included


class NaNInFoldTwo(TinyClassifier):
    """A fold whose validation loss turns NaN in its second epoch."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self.trainer.fold == 2 and self.current_epoch == 1:
            self.log("val_loss", torch.tensor(math.nan))


def test_a_non_finite_fold_metric_is_a_warning_naming_fold_and_epoch(data, trainer_kwargs) -> None:
    with pytest.warns(UserWarning, match=r"Fold 2 logged val_loss = nan in epoch 2"):
        result = CrossValidationTrainer(**trainer_kwargs).fit(NaNInFoldTwo, data)
    assert result.best_epoch == 0  # the epoch whose fold mean is finite
