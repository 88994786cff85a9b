"""Pruning on the fold mean: 20 Optuna trials on digits with MedianPruner against none, same sampler seed.

Prints the total epochs trained and the best fold-mean validation loss of each study, and the ratios. Goal (issue #6):
the pruned study trains at most 60% of the epochs for a best score within one fold std of the unpruned best.

    .venv/bin/python benchmarks/tune_pruning.py            # 20 trials, 5 folds, 15 epochs
    .venv/bin/python benchmarks/tune_pruning.py --quick    # 6 trials, 2 folds, 4 epochs: a smoke run

Needs lcv-core, lcv-data and lcv-tune-optuna installed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna


def base_config(folds: int, epochs: int) -> dict[str, Any]:
    """Digits, an MLP, SGD whose learning rate (log scale, some values diverge) and momentum are tuned."""
    return {
        "name": "tune-pruning",
        "seed": 0,
        "data": {
            "dataset": "digits",
            "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": folds, "shuffle": True}},
            "fitted_transforms": ["standardize"],
            "dataloaders": {"default": {"batch_size": 64}},
        },
        "model": {"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [64]}},
        "criterion": "CrossEntropyLoss",
        "optimizer": {"name": "SGD", "cfg": {"lr": 0.01, "momentum": 0.0}},
        "trainer": {"accelerator": "cpu", "max_epochs": epochs, "enable_progress_bar": False},
        "tune": {
            "space": {
                "optimizer.cfg.lr": {"type": "float", "low": 1e-4, "high": 3.0, "log": True},
                "optimizer.cfg.momentum": {"type": "float", "low": 0.0, "high": 0.95},
            },
            "sampler": {"name": "tpe", "cfg": {"seed": 0}},
        },
    }


def run_study(pruner: Any, trials: int, folds: int, epochs: int, root: Path) -> tuple[int, float, float, float]:
    """Run one study; return (epochs trained, best fold mean, its fold std, seconds)."""
    from lcv_config import load_config
    from lcv_core.tuning import tune

    data = base_config(folds, epochs)
    data["tune"]["pruner"] = pruner
    start = time.perf_counter()
    result = tune(load_config(base=data), n_trials=trials, run_dir=root, print_summary=False)
    seconds = time.perf_counter() - start
    study = result.tuner.study
    epochs_trained = sum(len(t.intermediate_values) for t in study.trials)
    std = study.best_trial.user_attrs.get("std") or 0.0
    return epochs_trained, result.best_value, float(std), seconds


def main() -> None:
    """Run both studies and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 trials, 2 folds, 4 epochs")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    trials, folds, epochs = (6, 2, 4) if args.quick else (args.trials, 5, 15)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import torch

    torch.set_num_threads(1)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        pruners: dict[str, Any] = {"none": "nop", "median": {"name": "median", "cfg": {"n_startup_trials": 3}}}
        for name, pruner in pruners.items():
            rows[name] = run_study(pruner, trials, folds, epochs, Path(tmp) / name)
    print(f"digits, {trials} trials, {folds} folds, up to {epochs} epochs, TPE seed 0")
    print(f"{'pruner':<8} {'epochs':>7} {'best val_loss':>14} {'± std':>8} {'seconds':>8}")
    for name, (n, best, std, sec) in rows.items():
        print(f"{name:<8} {n:>7} {best:>14.4f} {std:>8.4f} {sec:>8.1f}")
    (n0, b0, s0, _), (n1, b1, _, _) = rows["none"], rows["median"]
    ratio = n1 / n0
    print(f"epochs ratio median/none: {ratio:.2f} (goal <= 0.60: {'met' if ratio <= 0.6 else 'not met'})")
    print(
        f"best score difference: {b1 - b0:+.4f} (goal within one std {s0:.4f}: {'met' if b1 - b0 <= s0 else 'not met'})"
    )


if __name__ == "__main__":
    main()
