"""Every fold checkpoint is a Lightning checkpoint of that fold's module: load_from_checkpoint, Trainer.fit resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lcv_core import CrossValidationTrainer, ModelCheckpoint
from lcv_core.demos import TinyClassifier


class Saved(TinyClassifier):
    """The demo classifier with its hyperparameters saved, as Lightning's docs teach."""

    def __init__(self, lr: float = 0.1, hidden: int = 16) -> None:
        super().__init__(lr=lr, hidden=hidden, dropout=0.0)
        self.save_hyperparameters()


def test_load_from_checkpoint_gives_each_folds_best_model(data, trainer_kwargs, tmp_path: Path) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 3, "default_root_dir": str(tmp_path)}
    result = CrossValidationTrainer(**kwargs, callbacks=[ModelCheckpoint()]).fit(
        Saved, data, model_kwargs={"hidden": 12}
    )
    paths = result.checkpoints["best"]
    assert len(paths) == 5
    for i, path in enumerate(paths):
        state = torch.load(path, weights_only=True)  # data only
        assert state["pytorch-lightning_version"] and state["hyper_parameters"] == {"lr": 0.1, "hidden": 12}
        model = Saved.load_from_checkpoint(path)
        assert model.hparams.hidden == 12
        for name, value in result.models[i].state_dict().items():
            assert torch.equal(model.state_dict()[name], value), (i, name)


def test_lightning_trainer_continues_a_fold_from_its_checkpoint(data, trainer_kwargs, tmp_path: Path) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 2, "default_root_dir": str(tmp_path)}
    result = CrossValidationTrainer(**kwargs, callbacks=[ModelCheckpoint(save_top_k=-1)]).fit(Saved, data)
    last = Path(tmp_path) / "checkpoints" / "epoch=1" / "fold_0.ckpt"
    assert last.is_file(), sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    starts: list[tuple[int, int]] = []

    class Starts(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            starts.append((trainer.current_epoch, trainer.global_step))

    train, val = data.train_val_dataloaders()[0]
    pl.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Starts()],
    ).fit(Saved(), train, val, ckpt_path=str(last))
    assert len(result.history[0]) == 2
    # fold 0 takes 8 optimizer steps per epoch (120 samples, batches of 16): Lightning goes on at the third epoch
    assert starts == [(2, 16), (3, 24)]
