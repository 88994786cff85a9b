"""The PyTorch Lightning tutorial's autoencoder, cross-validated on scikit-learn's 8x8 digits.

The ``LitAutoEncoder`` is the tutorial's (an encoder and a decoder of ``nn.Linear`` layers, trained on the
reconstruction error), the data a plain ``LightningDataModule`` as in the tutorial, split into folds by
``LightningFolds``; lcv trains one model per fold with early stopping and checkpoints on the fold mean, TensorBoard
logs, gradient accumulation, bf16 mixed precision on the CPU and gradient clipping. Afterwards: test on the
datamodule's test set, predict with the fold ensemble, use a fold's checkpoint as a plain ``nn.Module``, resume
training, and run the learning-rate finder on one fold. Run it with
``python examples/lightning_tutorial_autoencoder/run.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.loggers.tensorboard import TensorBoardLogger
from lightning.pytorch import LightningDataModule, LightningModule
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.early_stopping import EarlyStopping
from lcv_core.inference import predict, test
from lcv_core.lr_finder import lr_find
from lcv_core.trainer import CrossValidationTrainer
from lcv_data import LightningFolds


def make_encoder(latent: int = 3) -> nn.Sequential:
    """The tutorial's encoder, for 64-pixel images."""
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, latent))


def make_decoder(latent: int = 3) -> nn.Sequential:
    """The tutorial's decoder."""
    return nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 64))


class LitAutoEncoder(LightningModule):
    """The Lightning tutorial's autoencoder, unchanged but for the image size and a ``test_step``."""

    def __init__(self, lr: float = 1e-3, latent: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.encoder = make_encoder(latent)
        self.decoder = make_decoder(latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction of ``x``."""
        return self.decoder(self.encoder(x))  # type: ignore[no-any-return]  # nn.Sequential is untyped

    def _loss(self, batch: Any) -> torch.Tensor:
        x, _ = batch  # labels are not used: the target is the image itself
        return nn.functional.mse_loss(self(x), x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The reconstruction error of a training batch."""
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log the validation reconstruction error."""
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Log the test reconstruction error."""
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Return reconstructions (the fold ensemble averages them)."""
        out: torch.Tensor = self(batch[0])
        return out

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, as in the tutorial."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class DigitsDataModule(LightningDataModule):
    """The tutorial's ``MNISTDataModule`` on digits scaled to 0..1: a training set, a 20% test set, its own loaders.

    A plain LightningDataModule, as you would write it for ``lightning.Trainer``; lcv splits its training set into
    folds (``LightningFolds``) without changing it.
    """

    def __init__(self, batch_size: int = 32, subset: int | None = None) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.subset = subset

    def setup(self, stage: str) -> None:
        x, y = load_digits(return_X_y=True)
        full = TensorDataset(torch.tensor(x[: self.subset] / 16.0, dtype=torch.float32), torch.tensor(y[: self.subset]))
        self.digits_train, self.digits_test = random_split(
            full, [0.8, 0.2], generator=torch.Generator().manual_seed(42)
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.digits_train, batch_size=self.batch_size, shuffle=True)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.digits_test, batch_size=256)


def make_datamodule(n_splits: int, subset: int | None, seed: int = 0) -> LightningFolds:
    """Stratified folds of the datamodule's training set (each fold keeps its loader settings); its test set as is."""
    return LightningFolds(
        DigitsDataModule(batch_size=32, subset=subset),
        "stratified_kfold",
        splitter_kwargs={"n_splits": n_splits, "shuffle": True},
        seed=seed,
    )


def make_trainer(run_dir: Path, max_epochs: int, patience: int) -> tuple[CrossValidationTrainer, ModelCheckpoint]:
    """The trainer: the tutorial's callbacks and Trainer flags, acting on the fold mean."""
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=1, save_last=True)
    trainer = CrossValidationTrainer(
        accelerator="cpu",
        precision="bf16-mixed",  # mixed precision works on the CPU with bfloat16
        gradient_clip_val=0.5,
        max_epochs=max_epochs,
        seed=0,
        default_root_dir=str(run_dir),
        enable_progress_bar=False,
        loggers=[TensorBoardLogger(root_dir=str(run_dir / "tensorboard"), name="autoencoder")],
        callbacks=[
            EarlyStopping(monitor="val_loss", patience=patience),
            checkpoint,
            GradientAccumulationScheduler(scheduling={0: 1, 1: 2}),  # from epoch 1 on: 2 batches per step
        ],
    )
    return trainer, checkpoint


def plain_autoencoder(checkpoint: str | Path) -> nn.Sequential:
    """Load a fold's checkpoint as the tutorial does (``load_from_checkpoint``) and keep the plain networks."""
    model = LitAutoEncoder.load_from_checkpoint(checkpoint)  # a fold checkpoint is a Lightning checkpoint
    return nn.Sequential(model.encoder, model.decoder).eval()


def main(
    n_splits: int = 5,
    max_epochs: int = 10,
    patience: int = 3,
    subset: int | None = None,
    lr_find_steps: int = 100,
    run_dir: str | Path = "runs/lightning_tutorial_autoencoder",
) -> dict[str, Any]:
    """Train, test, predict, reload, resume and find a learning rate; return what a user would look at."""
    run_dir = Path(run_dir)
    datamodule = make_datamodule(n_splits, subset)
    trainer, checkpoint = make_trainer(run_dir, max_epochs, patience)
    result = trainer.fit(LitAutoEncoder, datamodule)
    print(result.summary(print_table=False))

    scores = test(result, datamodule.test_dataloader())
    print(f"holdout test_loss {scores.metrics['test_loss']}")
    ensemble = predict(result, datamodule.test_dataloader(), ensemble="mean")
    test_x = torch.cat([x for x, _ in datamodule.test_dataloader()])
    ensemble_mse = float(nn.functional.mse_loss(ensemble.ensemble.float(), test_x))

    # A fold's best checkpoint as a plain nn.Module: its embeddings and its validation error (under bf16 autocast,
    # as the trainer validated).
    model = plain_autoencoder(checkpoint.best_model_paths[0])
    _, val_loader = datamodule.train_val_dataloaders()[0]
    val_x = torch.cat([x for x, _ in val_loader])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        embedding = model[0](val_x)
        reloaded = float(nn.functional.mse_loss(model(val_x).float(), val_x))

    best_written = all(Path(p).is_file() for p in checkpoint.best_model_paths)

    # Resume: one more epoch from last.ckpt.
    resumed_trainer, _ = make_trainer(run_dir, max_epochs + 1, patience)
    resumed = resumed_trainer.fit(LitAutoEncoder, datamodule, ckpt_path="last")

    # The learning-rate finder on fold 0.
    finder = lr_find(
        LitAutoEncoder,
        datamodule,
        fold=0,
        min_lr=1e-5,
        max_lr=1.0,
        num_training=lr_find_steps,
        trainer_kwargs={"accelerator": "cpu", "seed": 0},
    )
    suggestion = finder.suggestion()
    plot = finder.plot(run_dir / "lr_finder.png")
    print(f"suggested learning rate: {suggestion}")

    return {
        "val_loss": result.metric("val_loss").mean,
        "n_epochs": result.n_epochs,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "test_loss": scores.metrics["test_loss"].mean,
        "test_per_fold": scores.per_fold,
        "ensemble_mse": ensemble_mse,
        "ensemble_shape": tuple(ensemble.ensemble.shape),
        "n_test": len(test_x),
        "best_checkpoints_written": best_written,
        "last_checkpoint": run_dir / "checkpoints" / "last.ckpt",
        "embedding_shape": tuple(embedding.shape),
        "fold0_best_val_loss": result.history[0][result.best_epoch]["val_loss"],
        "fold0_reloaded_val_loss": reloaded,
        "resumed_n_epochs": resumed.n_epochs,
        "resumed_history": resumed.history,
        "tensorboard_dir": run_dir / "tensorboard",
        "lr_suggestion": suggestion,
        "lr_finder_points": len(finder.results["lr"]),
        "lr_finder_plot": plot,
    }


if __name__ == "__main__":
    main()
