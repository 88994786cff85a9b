"""Bad input: each case is one clear LcvError, raised before any training step runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lcv_config import LcvError
from lcv_core import Callback, CrossValidationTrainer


class NoTraining(Callback):
    """Fails the test if any batch is trained."""

    def on_train_batch_start_per_fold(self, **kwargs: Any) -> None:
        raise AssertionError("training started before the bad input was reported")


def _fit(model: Any, data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path) -> None:
    CrossValidationTrainer(**trainer_kwargs, callbacks=[NoTraining()], default_root_dir=str(tmp_path / "run")).fit(
        model, data
    )


def test_datamodule_without_folds(tiny, trainer_kwargs, tmp_path: Path) -> None:
    class JustLightning:
        def train_dataloader(self) -> None: ...

    with pytest.raises(LcvError, match=r"The datamodule \(JustLightning\) has no train_val_dataloaders\(\)"):
        _fit(tiny, JustLightning(), trainer_kwargs, tmp_path)
    assert not (tmp_path / "run").exists(), "nothing is written for bad input"


def test_fewer_than_two_folds(fold_data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    one = fold_data().train_val_dataloaders()[:1]
    with pytest.raises(LcvError, match="Cross-validation needs at least 2 folds; the datamodule gave 1"):
        _fit(tiny, one, trainer_kwargs, tmp_path)


def test_a_fold_with_an_empty_validation_loader(fold_data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    pairs = fold_data().train_val_dataloaders()
    empty = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)), batch_size=16)
    pairs[2] = (pairs[2][0], empty)
    with pytest.raises(LcvError, match="Fold 2 has no validation batches"):
        _fit(tiny, pairs, trainer_kwargs, tmp_path)


def test_a_fold_that_is_not_a_pair(fold_data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    pairs: list[Any] = fold_data().train_val_dataloaders()
    pairs[1] = pairs[1][0]
    with pytest.raises(LcvError, match=r"Fold 1 is not a \(train_loader, val_loader\) pair: DataLoader"):
        _fit(tiny, pairs, trainer_kwargs, tmp_path)


@pytest.mark.parametrize("missing", ["training_step", "configure_optimizers"])
def test_model_missing_a_required_method(data, trainer_kwargs, tmp_path: Path, missing: str) -> None:
    class Partial(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(8, 3)

    if missing == "configure_optimizers":
        Partial.training_step = lambda self, batch, batch_idx: self.layer(batch[0]).sum()  # type: ignore[method-assign]
    with pytest.raises(LcvError, match=f"Partial does not define {missing}\\(\\)"):
        _fit(Partial, data, trainer_kwargs, tmp_path)


def test_factory_returning_the_same_module(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    shared = tiny()
    with pytest.raises(LcvError, match="Fold 1's parameter 'net.0.weight' is the same tensor as one of fold 0's"):
        _fit(lambda: shared, data, trainer_kwargs, tmp_path)


def test_factory_returning_modules_that_share_a_layer(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    layer = nn.Linear(16, 3)

    def factory() -> LightningModule:
        m = tiny()
        m.net[3] = layer
        return m

    with pytest.raises(LcvError, match="parameter 'net.3.weight' is the same tensor"):
        _fit(factory, data, trainer_kwargs, tmp_path)


def test_factory_returning_something_else(data, trainer_kwargs, tmp_path: Path) -> None:
    with pytest.raises(LcvError, match="The model must be a LightningModule .* got Linear"):
        _fit(lambda: nn.Linear(8, 3), data, trainer_kwargs, tmp_path)


def test_model_kwargs_with_an_instance(data, tiny, trainer_kwargs) -> None:
    with pytest.raises(LcvError, match="model_kwargs are for a model class or factory, not an instance"):
        CrossValidationTrainer(**trainer_kwargs).fit(tiny(), data, model_kwargs={"lr": 0.1})


def test_model_kwargs_reach_the_class(data, tiny, trainer_kwargs) -> None:
    lrs: list[float] = []

    class Seen(Callback):
        def on_fold_start(self, *, module: Any, **kwargs: Any) -> None:
            lrs.append(module.lr)

    CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, callbacks=[Seen()]).fit(
        tiny, data, model_kwargs={"lr": 0.25}
    )
    assert lrs == [0.25] * 5


def test_resume_last_without_a_run_directory(data, tiny, trainer_kwargs) -> None:
    with pytest.raises(LcvError, match="ckpt_path='last' needs default_root_dir"):
        CrossValidationTrainer(**trainer_kwargs, callbacks=[NoTraining()]).fit(tiny, data, ckpt_path="last")


def test_resume_from_a_missing_checkpoint_names_the_path(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(LcvError, match=r"Checkpoint .*run/checkpoints/last.ckpt does not exist"):
        CrossValidationTrainer(**trainer_kwargs, callbacks=[NoTraining()], default_root_dir=str(run)).fit(
            tiny, data, ckpt_path="last"
        )
    assert not run.exists(), "nothing may be written before the error"


def test_monitor_never_logged_lists_the_logged_metrics(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, monitor="val_los")
    with pytest.raises(
        LcvError, match=r"monitor is 'val_los'.*Did you mean 'val_loss'\?.*Logged: train_loss, val_acc, val_loss"
    ):
        trainer.fit(tiny, data)
    assert trainer.current_epoch == 0, "the error comes at the first validated epoch"


def test_zero_validation_batches_by_limit(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    with pytest.raises(LcvError, match="limit_val_batches=0 leaves every fold without validation batches"):
        _fit(tiny, data, {**trainer_kwargs, "limit_val_batches": 0}, tmp_path)


def test_a_validation_iterable_that_yields_nothing(fold_data, tiny, trainer_kwargs) -> None:
    class Empty:
        def __iter__(self) -> Any:
            return iter(())

    pairs = [(train, Empty()) for train, _ in fold_data().train_val_dataloaders()]
    with pytest.raises(LcvError, match="Fold 0 ran no validation batch in epoch 1"):
        CrossValidationTrainer(**trainer_kwargs).fit(tiny, pairs)


def test_sequential_schedule_refuses_a_plateau_scheduler_on_the_fold_mean(data, tiny, trainer_kwargs) -> None:
    class Plateau(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "cv/val_loss_mean"}}

    with pytest.raises(LcvError, match="monitors the fold mean 'cv/val_loss_mean'.*schedule='interleaved'"):
        CrossValidationTrainer(**trainer_kwargs, schedule="sequential", callbacks=[NoTraining()]).fit(Plateau, data)


def test_invalid_trainer_setting_names_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_epochs"):
        CrossValidationTrainer(max_epochs=0)


def test_a_plain_lightning_datamodule_is_pointed_to_lightning_folds(tiny, trainer_kwargs, tmp_path: Path) -> None:
    from lightning.pytorch import LightningDataModule

    class MNISTDataModule(LightningDataModule):
        def train_dataloader(self) -> None: ...

    with pytest.raises(LcvError, match=r"MNISTDataModule is a LightningDataModule.*lcv_data\.LightningFolds\(dm, "):
        _fit(tiny, MNISTDataModule(), trainer_kwargs, tmp_path)
