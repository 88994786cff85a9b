"""From lightning-cv: your LightningModule and your datamodule, k-fold CV on Fabric, and Optuna tuning of the lr.

Run it with ``python examples/from_lightning_cv/run.py``. Nothing here is lcv-specific except the trainer, the
callback base class and the pruning callback: the module and the datamodule are the ones a lightning-cv user has.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import optuna
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.utilities.model_summary.model_summary import summarize
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lcv_config import TrainerConfig
from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.pruning import TunerPruning
from lcv_core.trainer import CrossValidationTrainer


class DigitsClassifier(LightningModule):
    """A plain LightningModule: an MLP on 8x8 digit images (what you already have)."""

    def __init__(self, lr: float = 1e-3, hidden: int = 64) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class scores."""
        return self.net(x)  # type: ignore[no-any-return]  # nn.Sequential is untyped

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on a training batch."""
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)  # on_step: also logged at every optimizer step
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Log validation loss and accuracy (lcv turns them into fold means)."""
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the learning rate being tuned."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class DigitsCVDataModule(LightningDataModule):
    """A LightningDataModule with lightning-cv's ``train_val_dataloaders()``: one (train, val) pair per fold."""

    def __init__(self, n_splits: int = 5, batch_size: int = 64, subset: int | None = None, seed: int = 0) -> None:
        super().__init__()
        x, y = load_digits(return_X_y=True)
        x, y = x[:subset], y[:subset]
        self.x = torch.tensor(x / 16.0, dtype=torch.float32)
        self.y = torch.tensor(y, dtype=torch.long)
        self.n_splits, self.batch_size, self.seed = n_splits, batch_size, seed

    def train_val_dataloaders(self) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        """Return one ``(train_loader, val_loader)`` pair per stratified fold (split with a fixed seed)."""
        splitter = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.seed)
        pairs = []
        for train_idx, val_idx in splitter.split(self.x, self.y):
            train = TensorDataset(self.x[train_idx], self.y[train_idx])
            val = TensorDataset(self.x[val_idx], self.y[val_idx])
            pairs.append((DataLoader(train, batch_size=self.batch_size, shuffle=True), DataLoader(val, batch_size=256)))
        return pairs


class FoldModelSummary(Callback):
    """Print the layer table once at train start and record each fold's parameter count (per-fold hook)."""

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth
        self.text = ""
        """The printed layer table."""
        self.parameters_per_fold: dict[int, int] = {}
        """Each fold's number of trainable parameters, recorded in ``on_fold_start``."""

    def on_train_start(self, *, trainer: Any, **kwargs: Any) -> None:
        """Print fold 0's summary once (every fold has the same architecture)."""
        self.text = repr(summarize(trainer.folds[0].module, max_depth=self.max_depth))
        sys.stderr.write(self.text + "\n")

    def on_fold_start(self, *, trainer: Any, fold: int, **kwargs: Any) -> None:
        """Record the fold's parameter count."""
        module = trainer.folds[fold].module
        self.parameters_per_fold[fold] = sum(p.numel() for p in module.parameters() if p.requires_grad)


class LearningRateLogger(Callback):
    """lightning-cv's ``LearningRateMonitor`` as it is written there, plus the one line lcv needs."""

    def on_before_log_metrics(self, trainer: Any, metrics: dict[str, Any], optimizer: Any) -> None:
        """Add the fold's learning rate to the metrics the loggers are about to get."""
        if optimizer is None:  # lcv also calls this hook once per epoch, for the fold means: no single optimizer
            return
        metrics["lr"] = optimizer.param_groups[0]["lr"]


class StopBelow(Callback):
    """A lightning-cv callback: once per epoch, after every fold validated it, stop when the fold mean is low enough."""

    def __init__(self, val_loss: float) -> None:
        self.val_loss = val_loss
        self.epochs: list[int] = []
        """The epochs ``on_train_fold_end`` was called for (once each)."""

    def on_train_fold_end(self, trainer: Any) -> None:
        """Read the epoch's fold mean; ``trainer.should_stop = True`` ends the fit after this epoch."""
        self.epochs.append(trainer.current_epoch)
        if trainer.epoch_metrics["cv/val_loss_mean"] < self.val_loss:
            trainer.should_stop = True


def trainer_config(max_epochs: int, run_dir: Path | None) -> TrainerConfig:
    """The trainer config, as lightning-cv's ``CrossValidationTrainerConfig`` (the same class, another name)."""
    return TrainerConfig(
        accelerator="cpu",
        max_epochs=max_epochs,
        monitor="val_loss",
        mode="min",
        seed=0,
        enable_progress_bar=False,
        default_root_dir=str(run_dir) if run_dir is not None else None,
    )


def tune_lr(datamodule: DigitsCVDataModule, *, n_trials: int, max_epochs: int, storage: str) -> optuna.Study:
    """Search the learning rate with Optuna; trials report the fold mean each epoch and bad ones are pruned."""

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        # An Optuna trial is an lcv Trial as it is; a prune raises optuna.TrialPruned, so Optuna records it as PRUNED.
        pruning = TunerPruning(trial, monitor="val_loss")
        trainer = CrossValidationTrainer(trainer_config(max_epochs, None), callbacks=[pruning])
        return trainer.fit(DigitsClassifier, datamodule, model_kwargs={"lr": lr}).metric("val_loss").mean

    study = optuna.create_study(
        study_name="lr",
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        load_if_exists=True,
    )
    # Two known points first: a good learning rate, then one far too small, which the median pruner stops.
    study.enqueue_trial({"lr": 1e-2})
    study.enqueue_trial({"lr": 1e-5})
    study.optimize(objective, n_trials=n_trials)
    return study


def main(
    n_splits: int = 5,
    max_epochs: int = 10,
    n_trials: int = 8,
    tune_epochs: int = 5,
    subset: int | None = None,
    run_dir: str | Path = "runs/from_lightning_cv",
    stop_below: float = 0.1,
) -> dict[str, Any]:
    """Cross-validate the module, then tune its learning rate; return the numbers and files a user looks at."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir)
    datamodule = DigitsCVDataModule(n_splits=n_splits, subset=subset)

    summary, stop = FoldModelSummary(), StopBelow(val_loss=stop_below)
    callbacks = [summary, stop, LearningRateLogger()]
    trainer = CrossValidationTrainer(trainer_config(max_epochs, run_dir / "cv"), callbacks=callbacks)
    result = trainer.fit(DigitsClassifier, datamodule, model_kwargs={"lr": 1e-2})
    print(result.summary(print_table=False))

    run_dir.mkdir(parents=True, exist_ok=True)
    study = tune_lr(datamodule, n_trials=n_trials, max_epochs=tune_epochs, storage=f"sqlite:///{run_dir / 'study.db'}")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    print(f"best lr {study.best_params['lr']:.2e}: fold-mean val_loss {study.best_value:.4f}; {len(pruned)} pruned")
    return {
        "val_acc": result.metric("val_acc").mean,
        "val_loss": result.metric("val_loss").mean,
        "n_folds": result.n_folds,
        "n_epochs": result.n_epochs,
        "summary_text": summary.text,
        "parameters_per_fold": summary.parameters_per_fold,
        "stop_epochs": stop.epochs,
        "stop_reason": result.stop_reason,
        "metrics_csv": run_dir / "cv" / "logs" / "csv" / "metrics.csv",
        "metrics_json": run_dir / "cv" / "metrics.json",
        "last_checkpoint": run_dir / "cv" / "checkpoints" / "last.ckpt",
        "study_db": run_dir / "study.db",
        "best_lr": float(study.best_params["lr"]),
        "best_value": float(study.best_value),
        "n_trials": len(study.trials),
        "pruned_trials": {t.number: t.params["lr"] for t in pruned},
        "pruned_after_epoch": {t.number: max(t.intermediate_values) for t in pruned},  # the last epoch reported
        "intermediate_values": {t.number: dict(t.intermediate_values) for t in study.trials},
        "per_fold_user_attr": {t.number: t.user_attrs.get("per_fold") for t in study.trials},
        "finite": math.isfinite(study.best_value),
    }


if __name__ == "__main__":
    main()
