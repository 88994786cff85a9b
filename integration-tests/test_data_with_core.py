"""lcv-core's CrossValidationTrainer over lcv-data's datamodules: fitted transforms, dict samples, a holdout."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn

from lcv_core.inference import test
from lcv_core.trainer import CrossValidationTrainer
from lcv_data.adapters import from_setup_function
from lcv_data.datamodule import CrossValDataModule
from lcv_data.datasets import load_digits
from lcv_data.transforms import Standardize

TRAINER = {"accelerator": "cpu", "devices": 1, "seed": 0, "enable_progress_bar": False}


class Digits(LightningModule):
    """A linear classifier on standardized digits: it only learns well if the inputs are scaled."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _metrics(self, batch: Any, prefix: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log(f"{prefix}_loss", loss)
        self.log(f"{prefix}_acc", (logits.argmax(1) == y).float().mean())
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._metrics(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._metrics(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._metrics(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


def test_cv_over_standardized_digits_with_a_holdout_tested_per_fold() -> None:
    dm = CrossValDataModule(
        load_digits(),
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": 3, "shuffle": True},
        holdout=0.2,
        fitted_transforms=[Standardize()],
        dataloaders={"default": {"batch_size": 64}, "val": {"batch_size": 512}},
    )
    trainer = CrossValidationTrainer(**TRAINER, max_epochs=3)
    result = trainer.fit(Digits, dm)
    assert result.n_folds == 3
    assert result.metric("val_acc").mean > 0.9
    models = result.models or [f.module for f in trainer.folds]
    assert dm.test_indices is not None and len(dm.test_indices) == 360
    for k, model in enumerate(models):
        # each fold's model sees the holdout scaled with its own fold's training statistics
        tested = test([model], dm.test_dataloader(fold=k))
        assert tested.per_fold[0]["test_acc"] > 0.9, f"fold {k}: {tested.per_fold[0]}"


class Regressor(LightningModule):
    """A custom training step over dict batches, NeuroMANCER style."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = nn.functional.mse_loss(self.net(batch["X"]), batch["Y"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", nn.functional.mse_loss(self.net(batch["X"]), batch["Y"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.05)


def test_cv_over_a_setup_function_with_dict_batches() -> None:
    def setup(n: int = 120) -> tuple[Any, Any, Any, int]:
        g = torch.Generator().manual_seed(0)
        X = torch.randn(n, 3, generator=g)
        Y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
        half = n // 2
        return {"X": X[:half], "Y": Y[:half]}, {"X": X[half:], "Y": Y[half:]}, None, 16

    dm = from_setup_function(setup, "kfold", splitter_kwargs={"n_splits": 3, "shuffle": True})
    result = CrossValidationTrainer(**TRAINER, max_epochs=8).fit(Regressor, dm)
    assert result.n_folds == 3
    first, last = result.metric("val_loss", 0).mean, result.metric("val_loss", 7).mean
    assert last < first / 4, f"val_loss went from {first} to {last}"


class DigitsWithPredict(Digits):
    """Digits with a ``predict_step``: the trainer then returns out-of-fold predictions."""

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(x), dim=1)


def test_out_of_fold_predictions_come_from_the_fold_that_held_each_sample_out() -> None:
    dataset = load_digits()
    dm = CrossValDataModule(
        dataset,
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": 3, "shuffle": True},
        fitted_transforms=[Standardize()],
        dataloaders={"default": {"batch_size": 64}},
    )
    result = CrossValidationTrainer(**TRAINER, max_epochs=2, monitor="val_acc", mode="max").fit(DigitsWithPredict, dm)
    oof = result.oof_predictions
    y = dataset.tensors[1]
    assert oof.shape == (len(y), 10)
    assert torch.allclose(oof.sum(dim=1), torch.ones(len(y)), atol=1e-5)  # every sample predicted once
    # In dataset order, so its accuracy is each fold's best-epoch accuracy weighted by the fold's size.
    sizes = [len(val) for _train, val in dm.folds]
    expected = sum(n * acc for n, acc in zip(sizes, result.metric("val_acc").per_fold, strict=True)) / len(y)
    assert (oof.argmax(dim=1) == y).float().mean().item() == pytest.approx(expected, abs=1e-6)


class Float64MLP(LightningModule):
    """A small MLP trained in float64, so two schedules can be compared to 1e-6."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


@pytest.mark.parametrize("limit_train_batches", [None, 3])
def test_vectorized_gathers_every_folds_batch_at_once_with_interleaved_numbers(limit_train_batches) -> None:
    from lcv_core.vectorized.engine import _Gather

    g = torch.Generator().manual_seed(0)
    x = torch.randn(103, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    def datamodule() -> CrossValDataModule:
        # 5 folds of 103 samples: training sets of 82 or 83, so batch 20 leaves last batches of 2 and 3 (ragged)
        return CrossValDataModule(
            X=x, y=y, splitter="kfold", splitter_kwargs={"n_splits": 5, "shuffle": True}, seed=3,
            dataloaders={"default": {"batch_size": 20}},
        )  # fmt: skip

    dm = datamodule()
    dm.setup("fit")
    assert _Gather.usable([train for train, _ in dm.train_val_dataloaders()])  # the one-gather path runs below
    histories = {}
    for schedule in ("interleaved", "vectorized"):
        trainer = CrossValidationTrainer(
            **TRAINER, max_epochs=3, precision="64-true", schedule=schedule, limit_train_batches=limit_train_batches
        )
        histories[schedule] = trainer.fit(Float64MLP, datamodule()).history
    for fold, (a, b) in enumerate(zip(histories["interleaved"], histories["vectorized"], strict=True)):
        for epoch, (ra, rb) in enumerate(zip(a, b, strict=True)):
            assert set(ra) == set(rb)
            for name in ra:
                assert ra[name] == pytest.approx(rb[name], rel=1e-6, abs=1e-6), (fold, epoch, name)
    assert histories["vectorized"][0][-1]["train_loss"] < histories["vectorized"][0][0]["train_loss"]


def _scaled(batch: Any) -> Any:
    x, y = batch
    return x * 2.0, y


@pytest.mark.parametrize("stage", ["before", "after"])
def test_vectorized_applies_before_batch_transforms_and_falls_back_for_device_ones(stage, capsys) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    histories = {}
    for schedule in ("interleaved", "vectorized"):
        dm = CrossValDataModule(
            X=x, y=y, splitter="kfold", splitter_kwargs={"n_splits": 3}, batch_transforms={"train": {stage: [_scaled]}},
            dataloaders={"default": {"batch_size": 16}},
        )  # fmt: skip
        trainer = CrossValidationTrainer(**TRAINER, max_epochs=2, precision="64-true", schedule=schedule)
        histories[schedule] = trainer.fit(Float64MLP, dm).history
    out = capsys.readouterr().out
    # "before" transforms run in the loader, so the folds' batches are gathered one by one and stacked;
    # "after" ones run on the device per fold batch, so vectorized says why it runs interleaved instead
    assert ("falls back to 'interleaved': the datamodule transforms batches on the device" in out) == (stage == "after")
    for a, b in zip(histories["interleaved"], histories["vectorized"], strict=True):
        assert a[-1]["train_loss"] == pytest.approx(b[-1]["train_loss"], rel=1e-6)
