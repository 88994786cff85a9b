"""Generate the pictures of the documentation site into ``docs/images/``.

Run from the repository root with lcv-core, lcv-data and optuna installed::

    python scripts/make_docs_images.py            # both pictures
    python scripts/make_docs_images.py --only optuna

It writes

- ``docs/images/learning_curves.png``: the learning curves of a 5-fold cross-validation of the demo's MLP on
  scikit-learn's digits (``CVResult.plot``), about a minute of CPU;
- ``docs/images/optuna_history.png``: Optuna's optimization-history plot of a small study whose trials are
  3-fold cross-validations of the same model with a sampled learning rate and width.

Everything is seeded; nothing is downloaded. The diagram of the fold loop is a mermaid block in
``docs/concepts.md`` and needs no image.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
MAX_BYTES = 200_000
"""Every picture must stay below this size, so the repository stays small."""


def _trainer_and_data(n_splits: int, max_epochs: int, run_dir: Path | None, seed: int = 0) -> tuple[Any, Any]:
    from lcv_core.trainer import CrossValidationTrainer
    from lcv_data.datamodule import CrossValDataModule

    datamodule = CrossValDataModule(
        "digits",
        splitter="stratified_kfold",
        splitter_kwargs={"n_splits": n_splits, "shuffle": True},
        fitted_transforms=["standardize"],
        dataloaders={"default": {"batch_size": 64}},
        seed=seed,
    )
    trainer = CrossValidationTrainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        monitor="val_loss",
        mode="min",
        seed=seed,
        enable_progress_bar=False,
        default_root_dir=str(run_dir) if run_dir is not None else None,
    )
    return trainer, datamodule


def _learner(lr: float = 1e-3, hidden: int = 256) -> Any:
    from lcv_core.learners import SupervisedLearner

    return SupervisedLearner(
        model={"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [hidden, hidden]}},
        criterion="CrossEntropyLoss",
        optimizer={"name": "Adam", "cfg": {"lr": lr}},
    )


def learning_curves(path: Path) -> Path:
    """Cross-validate the demo's MLP on digits (5 folds, 12 epochs) and save its learning curves to ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer, datamodule = _trainer_and_data(n_splits=5, max_epochs=12, run_dir=Path(tmp))
        result = trainer.fit(lambda: _learner(), datamodule)
        print(result.metric("val_acc"))
        result.plot(path, metrics=["train_loss", "val_loss", "val_acc"])
    return path


def optuna_history(path: Path, n_trials: int = 12) -> Path:
    """Tune learning rate and width with Optuna (3-fold CV, 3 epochs per trial) and save the history plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_optimization_history

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # plots are "experimental"

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        hidden = trial.suggest_categorical("hidden", [32, 64, 128])
        trainer, datamodule = _trainer_and_data(n_splits=3, max_epochs=3, run_dir=None)
        result = trainer.fit(lambda: _learner(lr, hidden), datamodule)
        return float(result.metric("val_loss").mean)

    study = optuna.create_study(
        study_name="digits-mlp", direction="minimize", sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.optimize(objective, n_trials=n_trials)
    print(f"best fold-mean val_loss {study.best_value:.4f} with {study.best_params}")
    ax = plot_optimization_history(study, target_name="fold-mean val_loss")
    ax.set_yscale("log")
    fig = plt.gcf()  # the figure plot_optimization_history drew on
    fig.set_size_inches(7, 4)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close("all")
    return path


def main(argv: list[str] | None = None) -> None:
    """Write the requested pictures and check that each stays below :data:`MAX_BYTES`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=["curves", "optuna"], help="make only this picture")
    args = parser.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    written = []
    if args.only in (None, "curves"):
        written.append(learning_curves(IMAGES / "learning_curves.png"))
    if args.only in (None, "optuna"):
        written.append(optuna_history(IMAGES / "optuna_history.png"))
    for path in written:
        size = path.stat().st_size
        print(f"{path}: {size / 1000:.0f} kB")
        if size > MAX_BYTES:
            raise SystemExit(f"{path} is {size} bytes, more than {MAX_BYTES}: lower the dpi or the figure size.")


if __name__ == "__main__":
    main()
