"""Exploring Lightning's debugging and inspection tools, fold by fold.

Callbacks that accumulate ``training_step`` outputs per batch, write gradient histograms to TensorBoard and inspect
the initial weights; ``fast_dev_run`` and ``overfit_batches`` to find bugs quickly; the simple profiler; and an
Optuna sweep with early stopping from ``config.yaml``. Run it with ``python examples/exploring_lightning/run.py``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.loggers.tensorboard import TensorBoardLogger
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import load_config
from lcv_core.callbacks.base import Callback
from lcv_core.trainer import CrossValidationTrainer
from lcv_core.tuning import tune
from lcv_data.datamodule import CrossValDataModule

CONFIG = Path(__file__).resolve().parent / "config.yaml"


class LitClassifier(LightningModule):
    """A small classifier whose ``training_step`` returns a dict of outputs, as in many Lightning tutorials."""

    def __init__(self, lr: float = 1e-2, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class scores."""
        return self.net(x)  # type: ignore[no-any-return]  # nn.Sequential is untyped

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Return the loss and the batch accuracy (the accuracy is for the metrics callback)."""
        x, y = batch
        out = self(x)
        loss = nn.functional.cross_entropy(out, y)
        self.log("train_loss", loss, on_epoch=True)
        return {"loss": loss, "acc": (out.argmax(-1) == y).float().mean().detach()}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log validation loss and accuracy."""
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class BatchOutputs(Callback):
    """Accumulate what ``training_step`` returned, batch by batch, per fold and epoch."""

    def __init__(self) -> None:
        self.outputs: dict[int, dict[int, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
        """``outputs[fold][epoch]``: one ``{"loss": ..., "acc": ...}`` per training batch."""
        self._epoch: dict[int, int] = {}

    def on_train_epoch_start_per_fold(self, *, trainer: Any, fold: int, epoch: int, **kwargs: Any) -> None:
        """Remember which epoch the fold is in."""
        self._epoch[fold] = epoch

    def on_train_batch_end_per_fold(self, *, trainer: Any, fold: int, outputs: Any, **kwargs: Any) -> None:
        """Store the batch's outputs as floats."""
        values = {k: float(v) for k, v in outputs.items()} if isinstance(outputs, dict) else {"loss": float(outputs)}
        self.outputs[fold][self._epoch[fold]].append(values)

    def epoch_means(self, fold: int, key: str = "loss") -> list[float]:
        """The mean of ``key`` over each epoch's batches of ``fold``."""
        return [sum(b[key] for b in batches) / len(batches) for _, batches in sorted(self.outputs[fold].items())]


class GradientHistograms(Callback):
    """Write each fold's gradient histograms to the trainer's TensorBoard logger every ``every_n_steps`` steps."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps
        self.written = 0
        """Histograms written so far."""
        self._steps: dict[int, int] = defaultdict(int)

    def on_after_backward(self, *, trainer: Any, fold: int, **kwargs: Any) -> None:
        """Add one histogram per parameter with a gradient."""
        module: nn.Module = trainer.folds[fold].module
        step = self._steps[fold]
        self._steps[fold] += 1
        if step % self.every_n_steps:
            return
        writers = [lg.experiment for lg in trainer.fabric.loggers if isinstance(lg, TensorBoardLogger)]
        for writer in writers:
            for name, p in module.named_parameters():
                if p.grad is not None:
                    writer.add_histogram(f"fold_{fold}/grad/{name}", p.grad.detach().float().cpu(), step)
                    self.written += 1


class InitInspection(Callback):
    """Record each fold's initial weights per layer (mean, std, and the uniform bound PyTorch's init should keep)."""

    def __init__(self) -> None:
        self.layers: dict[int, dict[str, dict[str, float]]] = {}
        """``layers[fold][name]``: ``mean``, ``std``, ``max_abs`` and ``bound`` (``1/sqrt(fan_in)``)."""

    def on_fold_start(self, *, trainer: Any, fold: int, **kwargs: Any) -> None:
        """Inspect the weights before the first step."""
        module: nn.Module = trainer.folds[fold].module
        stats = {}
        for name, p in module.named_parameters():
            if p.ndim == 2:
                w = p.detach().float()
                stats[name] = {
                    "mean": float(w.mean()),
                    "std": float(w.std()),
                    "max_abs": float(w.abs().max()),
                    "bound": 1 / math.sqrt(w.shape[1]),
                }
        self.layers[fold] = stats


def make_datamodule(n_splits: int, seed: int = 0) -> CrossValDataModule:
    """Digits with per-fold standardisation and stratified folds."""
    return CrossValDataModule(
        "digits",
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": n_splits, "shuffle": True},
        fitted_transforms=["standardize"],
        dataloaders={"default": {"batch_size": 64}},
        seed=seed,
    )


def main(
    n_splits: int = 5,
    max_epochs: int = 5,
    overfit_epochs: int = 30,
    n_trials: int = 10,
    tune_epochs: int = 20,
    patience: int = 2,
    min_delta: float = 0.0,
    run_dir: str | Path = "runs/exploring_lightning",
) -> dict[str, Any]:
    """Run each tool once; return what it showed."""
    run_dir = Path(run_dir)
    datamodule = make_datamodule(n_splits)
    common: dict[str, Any] = {"accelerator": "cpu", "seed": 0, "enable_progress_bar": False, "monitor": "val_loss"}

    # 1. fast_dev_run: one batch per fold, one epoch, nothing written.
    smoke = BatchOutputs()
    dev = CrossValidationTrainer(
        **common,
        fast_dev_run=True,
        max_epochs=max_epochs,
        default_root_dir=str(run_dir / "fast_dev_run"),
        callbacks=[smoke],
    )
    dev_result = dev.fit(LitClassifier, datamodule)

    # 2. overfit_batches: two batches, trained and validated on, should be learnt almost perfectly.
    overfit = BatchOutputs()
    over = CrossValidationTrainer(**common, overfit_batches=2, max_epochs=overfit_epochs, callbacks=[overfit])
    over_result = over.fit(LitClassifier, datamodule, model_kwargs={"lr": 1e-2})

    # 3. A full run with the inspection callbacks, TensorBoard and the simple profiler.
    outputs, histograms, init = BatchOutputs(), GradientHistograms(every_n_steps=5), InitInspection()
    trainer = CrossValidationTrainer(
        **common,
        max_epochs=max_epochs,
        profiler="simple",
        default_root_dir=str(run_dir / "cv"),
        loggers=[TensorBoardLogger(root_dir=str(run_dir / "cv" / "tensorboard"), name="")],
        callbacks=[outputs, histograms, init],
    )
    result = trainer.fit(LitClassifier, datamodule)
    print(result.summary(print_table=False))

    # 4. An Optuna sweep with early stopping, from the config.
    overrides = [
        f"trainer.max_epochs={tune_epochs}",
        f"data.splitter.cfg.n_splits={n_splits}",
        f"callbacks.0.cfg.patience={patience}",
        f"callbacks.0.cfg.min_delta={min_delta}",
    ]
    study = tune(load_config(CONFIG, overrides), n_trials=n_trials, run_dir=run_dir / "sweep")

    return {
        "fast_dev_run_epochs": dev_result.n_epochs,
        "fast_dev_run_batches": {f: len(b) for f, epochs in smoke.outputs.items() for b in epochs.values()},
        "fast_dev_run_dir": run_dir / "fast_dev_run",
        "overfit_first_loss": over_result.history[0][0]["train_loss"],
        "overfit_last_loss": over_result.history[0][-1]["train_loss"],
        "overfit_val_acc": over_result.metric("val_acc").mean,
        "overfit_batches_per_epoch": {f: len(b) for f, epochs in overfit.outputs.items() for b in epochs.values()},
        "val_acc": result.metric("val_acc").mean,
        "batch_outputs": outputs,
        "history": result.history,
        "histograms_written": histograms.written,
        "tensorboard_dir": run_dir / "cv" / "tensorboard",
        "init": init.layers,
        "profiler_report": run_dir / "cv" / "profiler.txt",
        "sweep": study,
        "sweep_trials": [json.loads(line) for line in (run_dir / "sweep" / "trials.jsonl").read_text().splitlines()],
    }


if __name__ == "__main__":
    main()
