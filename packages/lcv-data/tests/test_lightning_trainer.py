"""A plain lightning.Trainer trains on one chosen fold, tests on the holdout, and runs the after-device hook."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from lcv_data.datamodule import CrossValDataModule
from lcv_data.transforms import Standardize


class TinyClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(64, 10)
        self.seen: dict[str, int] = {"train": 0, "val": 0, "test": 0}
        self.flags: set[float] = set()

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        x, y = batch
        self.seen[split] += len(x)
        self.flags.add(float(x[0, 0]))
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log(f"{split}_loss", loss)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _mark(value: float) -> Any:
    def mark(batch: Any) -> Any:
        x, y = batch
        x = x.clone()
        x[:, 0] = value  # a marker the model sees: which split's after-device transform ran
        return x, y

    return mark


def test_plain_trainer_fits_the_chosen_fold_and_tests_on_the_holdout(digits: Any) -> None:
    dm = CrossValDataModule(
        digits,
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": 4, "shuffle": True},
        holdout=0.2,
        fitted_transforms=[Standardize()],
        batch_transforms={"train": {"after": [_mark(-7.0)]}, "val": {"after": [_mark(7.0)]}},
        dataloaders={"default": {"batch_size": 128}},
        fold=2,
    )
    model = TinyClassifier()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    assert dm.folds is not None and dm.test_indices is not None
    train_idx, val_idx = dm.folds[2]
    assert model.seen["train"] == len(train_idx)
    assert model.seen["val"] == len(val_idx)
    assert model.flags == {-7.0, 7.0}, "each split's after-device transform ran on its own batches"
    assert len(train_idx) + len(val_idx) + len(dm.test_indices) == 1797
    results = trainer.test(model, datamodule=dm, verbose=False)
    assert model.seen["test"] == len(dm.test_indices) == 360
    assert results[0]["test_loss"] > 0
