"""From NeuroMANCER's LitTrainer: a ``data_setup_function``, a ``Problem`` that returns its losses (trained unchanged),
patience with warmup, gradient clipping, the best weights back in the plain model, the simple profiler, and an offline
W&B sweep.

Run it with ``python examples/from_neuromancer/run.py`` (W&B runs offline; no account needed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # what `python run.py` does anyway; needed when run.py is imported from elsewhere
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from oscillator import Problem, SystemNet, data_setup_function  # noqa: E402

from lcv_config import load_config  # noqa: E402
from lcv_core.callbacks.checkpoint import ModelCheckpoint  # noqa: E402
from lcv_core.callbacks.early_stopping import EarlyStopping  # noqa: E402
from lcv_core.inference import test  # noqa: E402
from lcv_core.learners import LossReturningLearner  # noqa: E402
from lcv_core.trainer import CrossValidationTrainer  # noqa: E402
from lcv_core.tuning import tune  # noqa: E402
from lcv_data.adapters import from_setup_function  # noqa: E402

CONFIG = HERE / "config.yaml"


def make_problem(lr: float = 3e-3) -> LossReturningLearner:
    """NeuroMANCER's ``Problem``, unchanged, with its optimizer: lcv logs every loss it returns per stage."""
    return LossReturningLearner(Problem(hidden=64), optimizer={"name": "Adam", "cfg": {"lr": lr}})


def load_plain_model(checkpoint: str | Path) -> SystemNet:
    """Load a fold's best weights from its checkpoint and keep the plain ``SystemNet`` (no lcv needed to use it)."""
    learner = make_problem()
    learner.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    return learner.model.system.eval()  # type: ignore[no-any-return]  # the Problem's network


def main(
    nsim: int = 1000,
    n_splits: int = 5,
    max_epochs: int = 20,
    patience: int = 3,
    warmup: int = 3,
    n_trials: int = 4,
    sweep_epochs: int = 5,
    run_dir: str | Path = "runs/from_neuromancer",
) -> dict[str, Any]:
    """Cross-validate the problem, reload the best weights, test on the holdout, then sweep lr and batch size."""
    os.environ.setdefault("WANDB_MODE", "offline")
    run_dir = Path(run_dir)
    datamodule = from_setup_function(
        data_setup_function, "kfold", splitter_kwargs={"n_splits": n_splits, "shuffle": True}, nsim=nsim
    )
    checkpoint = ModelCheckpoint(save_top_k=1)
    trainer = CrossValidationTrainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        seed=0,
        monitor="val_loss",
        gradient_clip_val=1.0,  # LitTrainer's `clip`
        profiler="simple",  # LitTrainer's `profiler="simple"`
        default_root_dir=str(run_dir / "cv"),
        enable_progress_bar=False,
        callbacks=[EarlyStopping(monitor="val_loss", patience=patience, warmup=warmup), checkpoint],
    )
    result = trainer.fit(make_problem, datamodule)
    print(result.summary(print_table=False))

    # The best weights of fold 0, in the plain model, scored on fold 0's validation data (the reference loss).
    model = load_plain_model(result.checkpoints["best"][0])
    _, val_loader = datamodule.train_val_dataloaders()[0]
    squared, count = 0.0, 0
    with torch.no_grad():
        for batch in val_loader:
            squared += float(torch.nn.functional.mse_loss(model(batch["X"]), batch["Y"], reduction="sum")) / 2
            count += len(batch["X"])
    scores = test(result, datamodule.test_dataloader())
    print(f"holdout test_loss {scores.metrics['test_loss']}")

    # The sweep: config-only, over the learning rate and the batch size the setup function returns.
    overrides = [
        f"trainer.max_epochs={sweep_epochs}",
        f"data.dataset.cfg.nsim={nsim}",
        f"data.splitter.cfg.n_splits={n_splits}",
    ]
    sweep = tune(load_config(CONFIG, overrides), n_trials=n_trials, run_dir=run_dir / "sweep")
    return {
        "result": result,
        "val_loss": result.metric("val_loss").mean,
        "best_epoch": result.best_epoch,
        "n_epochs": result.n_epochs,
        "stop_reason": result.stop_reason,
        "best_checkpoints": result.checkpoints["best"],
        "fold0_best_val_reference": result.history[0][result.best_epoch]["val_reference"],
        "fold0_reloaded_val_reference": squared / count,
        "test_loss": scores.metrics["test_loss"].mean,
        "train_physics": result.metric("train_physics").mean,
        "sweep": sweep,
    }


if __name__ == "__main__":
    main()
