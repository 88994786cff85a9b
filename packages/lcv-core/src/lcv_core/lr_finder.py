"""The learning-rate range test on one fold, with Lightning's algorithm (``Tuner.lr_find``).

The learning rate grows from ``min_lr`` to ``max_lr`` over ``num_training`` optimizer steps (exponentially or
linearly); the loss after each step is smoothed with a bias-corrected moving average (β = 0.98) and the test stops
early once the smoothed loss exceeds ``early_stop_threshold`` times the best one. The suggestion is the learning rate
where the smoothed loss falls fastest (the steepest negative gradient of loss over learning rate).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from lcv_config import LcvError
from lcv_config.errors import did_you_mean
from lcv_core.core.fold_models import ModelSpec, fold_seeds, fold_stream_seeds, make_fold_model
from lcv_core.core.rng import FoldRNG

MODES = ("exponential", "linear")
"""How the learning rate grows between ``min_lr`` and ``max_lr``."""

_BETA = 0.98  # Lightning's smoothing factor of the loss


@dataclass
class LRFinderResult:
    """The learning rates tried and the smoothed loss after each, with Lightning's ``suggestion()`` and ``plot()``."""

    results: dict[str, list[float]]
    """``{"lr": [...], "loss": [...]}``: one entry per training batch, the loss smoothed (NaN for a skipped batch)."""
    mode: str
    """``exponential`` or ``linear``."""
    min_lr: float
    """The first learning rate tried."""
    max_lr: float
    """The learning rate the test would have reached at its last step."""
    num_training: int
    """The number of optimizer steps asked for."""
    fold: int
    """The fold whose training data the test ran on."""
    stopped_early: bool = False
    """Whether the loss diverged before ``num_training`` steps (fewer points than asked for)."""
    _optimal_idx: int | None = field(default=None, repr=False)

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """Return the learning rate where the smoothed loss falls fastest, or ``None`` with too few points.

        Args:
            skip_begin: Points left out at the start (the first losses are noisy).
            skip_end: Points left out at the end (the loss is often already diverging there).
        """
        n = len(self.results["loss"])
        idx = torch.arange(n)[skip_begin : max(skip_begin, n - skip_end)]
        losses = torch.tensor(self.results["loss"], dtype=torch.float64)[idx]
        lrs = torch.tensor(self.results["lr"], dtype=torch.float64)[idx]
        finite = torch.isfinite(losses)
        losses, lrs, idx = losses[finite], lrs[finite], idx[finite]
        if len(losses) < 2:
            self._optimal_idx = None
            return None
        gradients = torch.gradient(losses, spacing=[lrs])[0]  # d loss / d lr, as Lightning's suggestion()
        self._optimal_idx = int(idx[int(torch.argmin(gradients))])
        return self.results["lr"][self._optimal_idx]

    def plot(self, path: str | Path, suggest: bool = True) -> Path:
        """Save the loss over the learning rate (log axis for ``exponential``) as an image; return its path.

        Args:
            path: The image file (``.png``, ``.svg``, ``.pdf``).
            suggest: Mark the suggested learning rate with a red point.
        """
        import matplotlib

        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt

        lrs, losses = self.results["lr"], self.results["loss"]
        fig, ax = plt.subplots(figsize=(6, 4))
        try:
            ax.plot(lrs, losses)
            if self.mode == "exponential":
                ax.set_xscale("log")
            ax.set_xlabel("Learning rate")
            ax.set_ylabel("Loss (smoothed)")
            ax.set_title(f"Learning-rate range test, fold {self.fold}")
            if suggest and self.suggestion() is not None and self._optimal_idx is not None:
                i = self._optimal_idx
                ax.plot(lrs[i], losses[i], markersize=10, marker="o", color="red", label=f"suggested {lrs[i]:.2e}")
                ax.legend()
            out = Path(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=100, bbox_inches="tight")
        finally:
            plt.close(fig)
        return out


def _check_args(min_lr: float, max_lr: float, num_training: int, mode: str, early_stop_threshold: float | None) -> None:
    if mode not in MODES:
        raise LcvError(
            f"lr_find(mode={mode!r}): unknown mode.{did_you_mean(mode, MODES)} Use one of: {', '.join(MODES)}."
        )
    if not 0 < min_lr < max_lr:
        raise LcvError(
            f"lr_find(min_lr={min_lr!r}, max_lr={max_lr!r}): expected 0 < min_lr < max_lr, e.g. min_lr=1e-8, max_lr=1."
        )
    steps: Any = num_training  # checked here: configs pass anything
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise LcvError(f"lr_find(num_training={num_training!r}): expected an int >= 2 (the number of steps to try).")
    if early_stop_threshold is not None and early_stop_threshold <= 0:
        raise LcvError(
            f"lr_find(early_stop_threshold={early_stop_threshold!r}): expected a positive factor (e.g. 4.0) or None "
            "to never stop early."
        )


def _lr_at(step: int, min_lr: float, max_lr: float, num_training: int, mode: str) -> float:
    """The learning rate of optimizer step ``step`` (0-based), exactly as Lightning's range-test schedulers."""
    if step == 0:
        return min_lr
    r = (step + 1) / num_training
    if mode == "exponential":
        return float(min_lr * (max_lr / min_lr) ** r)
    return float(min_lr + r * (max_lr - min_lr))


def lr_find(
    model: ModelSpec,
    datamodule: Any,
    fold: int = 0,
    min_lr: float = 1e-8,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: Literal["exponential", "linear"] = "exponential",
    early_stop_threshold: float | None = 4.0,
    model_kwargs: Mapping[str, Any] | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
) -> LRFinderResult:
    """Run the learning-rate range test on one fold's training data and return the loss curve.

    The fold's model is built as [`CrossValidationTrainer.fit()`][lcv_core.CrossValidationTrainer.fit] builds it (same
    seed, same precision and device from ``trainer_kwargs``); its optimizer comes from ``configure_optimizers`` (its
    schedulers are not
    used) and gets the test's learning rate before every step. The training batches cycle until
    ``num_training`` steps are done. Nothing is written and the given model is left untouched: the weights the
    test trained are restored to their initial values afterwards.

    Args:
        model: A LightningModule class (built with ``model_kwargs``), a factory, or an instance (copied).
        datamodule: An object with ``train_val_dataloaders()`` or a list of ``(train, val)`` loaders.
        fold: The fold whose training loader is used.
        min_lr: The first learning rate.
        max_lr: The last learning rate.
        num_training: The number of optimizer steps (points of the curve).
        mode: ``exponential`` (a log-spaced sweep, the default) or ``linear``.
        early_stop_threshold: Stop once the smoothed loss exceeds this factor times the best one; ``None``: never.
        model_kwargs: Keyword arguments for a model class or factory.
        trainer_kwargs: [`TrainerConfig`][lcv_config.TrainerConfig] fields (``accelerator``, ``precision``, ``seed``,
            ...).

    Raises:
        LcvError: Bad arguments, a fold that does not exist, a module with manual optimization or several
            optimizers, or a training loader that yields no loss.

    Example:
        >>> result = lr_find(MyModule, datamodule, num_training=50)  # doctest: +SKIP
        >>> lr = result.suggestion()  # doctest: +SKIP
        >>> result.plot("lr_find.png")  # doctest: +SKIP
    """
    from lcv_core.loop.trainer import CrossValidationTrainer

    _check_args(min_lr, max_lr, num_training, mode, early_stop_threshold)
    trainer = CrossValidationTrainer(**{"enable_progress_bar": False, **dict(trainer_kwargs or {})})
    cfg = trainer.config
    seed = cfg.seed if cfg.seed is not None else 0
    trainer.fabric.seed_everything(seed, workers=True, verbose=False)
    trainer.datamodule = datamodule
    loaders = trainer.fold_loaders(datamodule)
    n_folds = len(loaders)
    fold_arg: Any = fold  # checked here: configs pass anything
    if isinstance(fold_arg, bool) or not isinstance(fold_arg, int) or not 0 <= fold < n_folds:
        raise LcvError(f"lr_find(fold={fold!r}): the datamodule has {n_folds} folds; use a fold in 0..{n_folds - 1}.")
    module = make_fold_model(model, fold, fold_seeds(seed, n_folds)[fold], model_kwargs)
    if not module.automatic_optimization:
        raise LcvError(
            f"lr_find needs automatic optimization; {type(module).__name__} sets automatic_optimization=False "
            "and steps its optimizers itself."
        )
    initial = copy.deepcopy(module.state_dict())
    train, val = loaders[fold]
    state = trainer.setup_fold(fold, module, train, val, FoldRNG(fold_stream_seeds(seed, n_folds)[fold]))
    if len(state.optimizers) != 1:
        raise LcvError(
            f"lr_find works with one optimizer; {type(module).__name__}.configure_optimizers returned "
            f"{len(state.optimizers)}."
        )
    optimizer = state.optimizers[0]
    lrs: list[float] = []
    losses: list[float] = []
    avg_loss, best_loss, step, diverged = 0.0, 0.0, 0, False
    try:
        with state.rng.active():
            module.train()
            while step < num_training and not diverged:
                steps_before = step
                for batch_idx, batch in trainer.fold_loop.batches(state, state.train_loader, None):
                    lr = _lr_at(step, min_lr, max_lr, num_training, mode)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    lrs.append(lr)
                    outputs = trainer.fold_loop.call_step(state, "training_step", batch, batch_idx)
                    loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
                    if loss is None:  # a skipped batch: no step, as in Lightning
                        losses.append(math.nan)
                        continue
                    trainer.fabric.backward(loss)
                    if cfg.gradient_clip_val and cfg.gradient_clip_algorithm == "norm":
                        trainer.fabric.clip_gradients(state.wrapped, optimizer, max_norm=cfg.gradient_clip_val)
                    elif cfg.gradient_clip_val:
                        trainer.fabric.clip_gradients(state.wrapped, optimizer, clip_val=cfg.gradient_clip_val)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    avg_loss = _BETA * avg_loss + (1 - _BETA) * float(loss.detach())
                    smoothed = avg_loss / (1 - _BETA ** (step + 1))  # Lightning's bias correction, step counted from 1
                    if early_stop_threshold is not None and step > 1:
                        # a non-finite loss has diverged too (Lightning would run on with NaNs)
                        diverged = not math.isfinite(smoothed) or smoothed > early_stop_threshold * best_loss
                    if smoothed < best_loss or step == 1:
                        best_loss = smoothed
                    losses.append(smoothed)
                    if diverged or step >= num_training:
                        break
                if step == steps_before:
                    raise LcvError(
                        f"lr_find: fold {fold}'s training loader gave no batch with a loss (training_step returned "
                        "None for every batch, or the loader is empty)."
                    )
    finally:
        module.load_state_dict(initial)
    return LRFinderResult(
        results={"lr": lrs, "loss": losses},
        mode=mode,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
        fold=fold,
        stopped_early=diverged,
    )
