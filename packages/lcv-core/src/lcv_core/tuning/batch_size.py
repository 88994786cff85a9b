"""The batch-size finder on one fold, with Lightning's algorithm (``Tuner.scale_batch_size``).

``power`` doubles the batch size after every trial that fits in memory and halves it after the first that does not;
``binsearch`` doubles until a trial fails, then bisects between the last size that fitted and the first that did
not. A trial is ``steps_per_trial`` training steps (forward, backward, optimizer step) on the fold's training data.
A trial fails when it raises an out-of-memory error, recognised by its message as Lightning does (``CUDA out of
memory``, cuDNN's ``CUDNN_STATUS_NOT_SUPPORTED``, ``DefaultCPUAllocator: can't allocate memory``); any other error
propagates.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.utilities.memory import is_oom_error

from lcv_config import LcvError
from lcv_config.errors import did_you_mean
from lcv_core.core.fold_models import ModelSpec, fold_seeds, fold_stream_seeds, make_fold_model
from lcv_core.core.rng import FoldRNG

MODES = ("power", "binsearch")
"""How the batch size is searched (Lightning's modes)."""


def scale_batch_size(
    model: ModelSpec,
    datamodule: Any,
    fold: int = 0,
    mode: Literal["power", "binsearch"] = "power",
    steps_per_trial: int = 3,
    init_val: int = 2,
    max_trials: int = 25,
    max_val: int = 8192,
    margin: float = 0.05,
    batch_arg_name: str = "batch_size",
    model_kwargs: Mapping[str, Any] | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Find the largest training batch size that fits in memory on one fold; return it.

    The size is tried through the datamodule's ``batch_arg_name`` attribute (as Lightning sets
    ``datamodule.batch_size``): the finder sets it and asks ``train_val_dataloaders()`` for the fold's loaders
    again. The datamodule keeps the size found (with ``binsearch``, after ``margin``), so a ``fit`` with the same
    datamodule uses it for every fold; the folds are alike in size, so one fold decides for all. The model is
    built as ``fit`` builds that fold's model and is left untouched (its initial weights are restored).

    Args:
        model: A LightningModule class (built with ``model_kwargs``), a factory, or an instance (copied).
        datamodule: An object with ``train_val_dataloaders()`` whose loaders read ``batch_arg_name``.
        fold: The fold whose training data the trials run on.
        mode: ``power`` (double until out of memory, then halve once) or ``binsearch`` (then bisect).
        steps_per_trial: Training steps per tried size.
        init_val: The first size tried.
        max_trials: The most sizes tried.
        max_val: The largest size tried.
        margin: ``binsearch`` only: the size found is reduced by this fraction, as a safety margin.
        batch_arg_name: The datamodule's batch-size attribute.
        model_kwargs: Keyword arguments for a model class or factory.
        trainer_kwargs: `TrainerConfig` fields (``accelerator``, ``precision``, ``seed``, ...).

    Raises:
        LcvError: Bad arguments, a datamodule without ``batch_arg_name``, a fold that does not exist, or a first
            size that already runs out of memory.

    Example:
        >>> size = scale_batch_size(MyModule, datamodule, mode="binsearch")  # doctest: +SKIP
        >>> datamodule.batch_size  # the size found, used by every fold of the next fit  # doctest: +SKIP
        >>> result = CrossValidationTrainer(max_epochs=10).fit(MyModule, datamodule)  # doctest: +SKIP
    """
    _check_args(mode, steps_per_trial, init_val, max_trials, max_val, margin)
    if not hasattr(datamodule, batch_arg_name):
        raise LcvError(
            f"scale_batch_size sets the datamodule's '{batch_arg_name}', but {type(datamodule).__name__} has no such "
            f"attribute. Give the datamodule a '{batch_arg_name}' that train_val_dataloaders() reads (as a "
            "LightningDataModule's batch_size), or name it with batch_arg_name=."
        )
    trial = _Trial(model, datamodule, fold, steps_per_trial, batch_arg_name, model_kwargs, trainer_kwargs)
    try:
        size = _power(trial, init_val, max_trials, max_val) if mode == "power" else None
        if mode == "binsearch":
            size = _binsearch(trial, init_val, max_trials, max_val)
            size = max(1, int(size * (1 - margin)))
    finally:
        trial.restore()
    assert size is not None  # noqa: S101  # one of the two modes ran
    setattr(datamodule, batch_arg_name, size)
    return size


def _check_args(mode: str, steps: int, init_val: int, max_trials: int, max_val: int, margin: float) -> None:
    if mode not in MODES:
        raise LcvError(
            f"scale_batch_size(mode={mode!r}): unknown mode.{did_you_mean(mode, MODES)} Use one of: {', '.join(MODES)}."
        )
    for name, value in (("steps_per_trial", steps), ("init_val", init_val), ("max_trials", max_trials)):
        given: Any = value  # checked here: configs pass anything
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise LcvError(f"scale_batch_size({name}={value!r}): expected an int >= 1.")
    if max_val < init_val:
        raise LcvError(f"scale_batch_size(max_val={max_val!r}): expected at least init_val ({init_val}).")
    if not 0.0 <= margin < 1.0:
        raise LcvError(f"scale_batch_size(margin={margin!r}): expected a fraction in [0, 1).")


class _Trial:
    """Runs ``steps_per_trial`` training steps of one fold at a batch size; restores the model afterwards."""

    def __init__(
        self,
        model: ModelSpec,
        datamodule: Any,
        fold: int,
        steps: int,
        batch_arg_name: str,
        model_kwargs: Mapping[str, Any] | None,
        trainer_kwargs: Mapping[str, Any] | None,
    ) -> None:
        from lcv_core.loop.trainer import CrossValidationTrainer

        self.trainer = CrossValidationTrainer(**{"enable_progress_bar": False, **dict(trainer_kwargs or {})})
        self.datamodule, self.fold, self.steps, self.name = datamodule, fold, steps, batch_arg_name
        self.original = getattr(datamodule, batch_arg_name)
        cfg = self.trainer.config
        self.seed = cfg.seed if cfg.seed is not None else 0
        self.trainer.fabric.seed_everything(self.seed, workers=True, verbose=False)
        self.trainer.datamodule = datamodule
        n_folds = len(self.trainer.fold_loaders(datamodule))
        fold_arg: Any = fold  # checked here: configs pass anything
        if isinstance(fold_arg, bool) or not isinstance(fold_arg, int) or not 0 <= fold < n_folds:
            raise LcvError(
                f"scale_batch_size(fold={fold!r}): the datamodule has {n_folds} folds; use a fold in 0..{n_folds - 1}."
            )
        self.n_folds = n_folds
        self.module = make_fold_model(model, fold, fold_seeds(self.seed, n_folds)[fold], model_kwargs)
        self.initial = copy.deepcopy(self.module.state_dict())

    def fits(self, size: int) -> bool:
        """Whether ``steps`` training steps at batch size ``size`` run without running out of memory."""
        setattr(self.datamodule, self.name, size)
        try:
            self._run()
        except RuntimeError as exc:
            if not is_oom_error(exc):
                raise
            return False
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return True

    def _run(self) -> None:
        trainer, fold = self.trainer, self.fold
        train, val = trainer.fold_loaders(self.datamodule)[fold]
        rng = FoldRNG(fold_stream_seeds(self.seed, self.n_folds)[fold])
        state = trainer.setup_fold(fold, self.module, train, val, rng)
        steps = 0
        with state.rng.active():
            self.module.train()
            while steps < self.steps:
                before = steps
                for batch_idx, batch in trainer.fold_loop.batches(state, state.train_loader, None):
                    outputs = trainer.fold_loop.call_step(state, "training_step", batch, batch_idx)
                    loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
                    if loss is not None and self.module.automatic_optimization:
                        trainer.fabric.backward(loss)
                        for optimizer in state.optimizers:
                            optimizer.step()
                            optimizer.zero_grad(set_to_none=True)
                    steps += 1
                    if steps >= self.steps:
                        break
                if steps == before:
                    raise LcvError(f"scale_batch_size: fold {fold}'s training loader gave no batch.")

    def restore(self) -> None:
        """Put the initial weights back and the datamodule's batch size as it was."""
        self.module.load_state_dict(self.initial)
        setattr(self.datamodule, self.name, self.original)


def _first_fit(trial: _Trial, size: int) -> None:
    if not trial.fits(size):
        raise LcvError(
            f"scale_batch_size: even the first batch size ({size}) runs out of memory; start lower with init_val=1, "
            "or use a smaller model or precision='bf16-mixed'."
        )


def _power(trial: _Trial, size: int, max_trials: int, max_val: int) -> int:
    """Double while a size fits; on the first that does not, the last that did (Lightning's ``power`` mode)."""
    _first_fit(trial, size)
    for _ in range(max_trials - 1):
        bigger = min(size * 2, max_val)
        if bigger == size or not trial.fits(bigger):
            break
        size = bigger
    return size


def _binsearch(trial: _Trial, size: int, max_trials: int, max_val: int) -> int:
    """Double until a size does not fit, then bisect between the last fit and the first failure."""
    _first_fit(trial, size)
    low, high, count = size, None, 1
    fits: Callable[[int], bool] = trial.fits
    while count < max_trials:
        candidate = min(low * 2, max_val) if high is None else (low + high) // 2
        if candidate <= low:
            break
        count += 1
        if fits(candidate):
            low = candidate
        else:
            high = candidate
            if high - low <= 1:
                break
    return low


__all__ = ["MODES", "scale_batch_size"]
