"""From torch_mate: a configuration-only experiment, run with ``lcv cv`` and with ``configure_all`` from Python.

Run it with ``python examples/from_torch_mate/run.py``: it runs ``config.yaml`` three ways: through the ``lcv cv``
command; through :func:`lcv_core.configure.configure_all` with the model given as a class object; and with a custom
learner (``torch_mate_parts.MarginLearner``, by dotted path) that overrides ``configure_model`` and ``shared_step``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # what `python run.py` does anyway; needed when run.py is imported from elsewhere
    sys.path.insert(0, str(HERE))

import torch_mate_parts  # noqa: E402  # importable only once HERE is on sys.path

from lcv_config import Component, load_config  # noqa: E402
from lcv_config.cli import main as lcv  # noqa: E402
from lcv_core.configure import configure_all  # noqa: E402

CONFIG = HERE / "config.yaml"


def tiny_overrides(n_splits: int, max_epochs: int, limit_train_batches: int | None) -> list[str]:
    """``key=value`` overrides of the config, as on the command line."""
    return [
        f"trainer.max_epochs={max_epochs}",
        f"data.splitter.cfg.n_splits={n_splits}",
        *([f"trainer.limit_train_batches={limit_train_batches}"] if limit_train_batches else []),
    ]


def run_cli(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """``lcv cv config.yaml key=value ... --run-dir DIR``; return the exit code and the run's ``metrics.json``."""
    code = lcv(["cv", str(CONFIG), *overrides, "--run-dir", str(run_dir)])
    return {"exit_code": code, "metrics": json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))}


def run_with_class_object(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """The same config from Python, with the model given as a class object instead of a dotted path."""
    config = load_config(CONFIG, overrides)
    config = config.model_copy(update={"model": Component(name=torch_mate_parts.TinyConvNet, cfg={"channels": 8})})
    trainer, make_learner, datamodule = configure_all(config, run_dir=run_dir)
    result = trainer.fit(make_learner, datamodule)
    return {
        "val_acc": result.metric("val_acc").mean,
        "n_folds": result.n_folds,
        "lr_per_fold": [f.optimizers[0].param_groups[0]["lr"] for f in trainer.folds],  # after StepLR's steps
        "train_batches_counted": datamodule.batch_transforms["train"]["before"][0].count,
    }


def run_custom_learner(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """The config with ``learner.name=torch_mate_parts.MarginLearner``, a learner with its own network and metric."""
    config = load_config(CONFIG, [*overrides, "learner.name=torch_mate_parts.MarginLearner"])
    trainer, make_learner, datamodule = configure_all(config, run_dir=run_dir)
    result = trainer.fit(make_learner, datamodule)
    print(result.summary(print_table=False))
    return {
        "val_acc": result.metric("val_acc").mean,
        "val_margin": result.metric("val_margin").mean,
        "model_type": type(result.models[0].model).__name__,
    }


def main(
    n_splits: int = 5,
    max_epochs: int = 10,
    limit_train_batches: int | None = None,
    run_dir: str | Path = "runs/from_torch_mate",
) -> dict[str, Any]:
    """Run the config three ways; return each run's scores (files go to ``run_dir/{cli,python,custom}``)."""
    run_dir = Path(run_dir)
    overrides = tiny_overrides(n_splits, max_epochs, limit_train_batches)
    return {
        "cli": run_cli(overrides, run_dir / "cli"),
        "python": run_with_class_object(overrides, run_dir / "python"),
        "custom": run_custom_learner(overrides, run_dir / "custom"),
    }


if __name__ == "__main__":
    main()
