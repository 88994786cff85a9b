"""The cross-validation trainer: k fold models on Lightning Fabric, stepping through epochs together."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers.csv_logs import CSVLogger
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader

from lcv_config import LcvError, TrainerConfig
from lcv_core import _checkpoint, _parallel
from lcv_core import profiling as _profiling
from lcv_core._fold import FoldState, aggregate, check_monitor, lr_schedulers_of, move_fold
from lcv_core._logging import batch_size_of, on_device
from lcv_core._models import (
    BestWeights,
    ModelSpec,
    check_no_shared_parameters,
    fold_seeds,
    fold_stream_seeds,
    make_fold_model,
)
from lcv_core._optim import configure_optimizers
from lcv_core._rng import FoldRNG
from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.results import CVResult

_END = object()  # sentinel: the loader is exhausted

VECTORIZE_PARAMETERS_CPU = 250_000
"""Above this many parameters per fold, ``schedule='vectorized'`` on the CPU says that it may not pay (measured in
``benchmarks/``: about 2x faster than ``interleaved`` at 700 parameters, on par at 85k, slower at 1.1M)."""


def _hook_targets(callbacks: Sequence[Any], hook: str) -> list[tuple[Any, set[str] | None]]:
    """Return ``(method, accepted keyword names or None for **kwargs)`` of each callback that implements ``hook``."""
    targets: list[tuple[Any, set[str] | None]] = []
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if not callable(method):
            continue
        if isinstance(callback, Callback) and getattr(type(callback), hook, None) is getattr(Callback, hook, None):
            continue  # the base class's no-op
        params = inspect.signature(method).parameters.values()
        accepted = None if any(p.kind is p.VAR_KEYWORD for p in params) else {p.name for p in params}
        targets.append((method, accepted))
    return targets


def _overridden(datamodule: Any, hook: str) -> Any:
    """Return the datamodule's ``hook`` unless it is LightningDataModule's no-op (then not called per batch).

    A datamodule that says it has no device-side transforms (``has_device_transforms`` is false, as lcv-data's
    ``CrossValDataModule`` without ``after`` batch transforms) does not get ``on_after_batch_transfer`` calls.
    """
    method = getattr(datamodule, hook, None)
    if not callable(method) or getattr(type(datamodule), hook, None) is getattr(LightningDataModule, hook):
        return None
    if hook == "on_after_batch_transfer" and getattr(datamodule, "has_device_transforms", True) is False:
        return None
    return method


def _lean(fabric: Fabric, profiler: Any) -> bool:
    """Whether steps may skip Fabric's wrappers: one device, full precision, no profiler (see ``_call_step``)."""
    from lightning.fabric.plugins.precision import Precision
    from lightning.fabric.strategies.single_device import SingleDeviceStrategy

    strategy = fabric.strategy
    return type(strategy) is SingleDeviceStrategy and type(strategy.precision) is Precision and profiler is None


def _unwrapped(loader: Any) -> Any:
    """The user's DataLoader behind Fabric's wrapper (its batches stay on the CPU, in the loader's order)."""
    return getattr(loader, "_dataloader", loader)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class CrossValidationTrainer:
    """Train one model per fold with Lightning Fabric; folds step through epochs together.

    After every epoch the validation metrics of all folds are aggregated into ``cv/<name>_mean`` and
    ``cv/<name>_std``, so early stopping, checkpointing and tuner pruning act on the fold mean.

    Args:
        config: A :class:`~lcv_config.TrainerConfig`, a mapping of its fields, or ``None``.
        **kwargs: Fields of :class:`~lcv_config.TrainerConfig`, overriding ``config``.

    Example:
        >>> trainer = CrossValidationTrainer(max_epochs=5, accelerator="cpu")  # doctest: +SKIP
        >>> result = trainer.fit(MyModule, datamodule)  # doctest: +SKIP
        >>> print(result.metric("val_acc"))  # doctest: +SKIP
    """

    def __init__(self, config: TrainerConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        base = config.model_dump() if isinstance(config, TrainerConfig) else dict(config or {})
        self.config = TrainerConfig(**{**base, **kwargs})
        cfg = self.config
        self.callbacks: list[Any] = _as_list(cfg.callbacks)
        if cfg.enable_progress_bar and not any(isinstance(c, RichProgressBar) for c in self.callbacks):
            self.callbacks.append(RichProgressBar())
        if cfg.fast_dev_run:  # as Lightning: one epoch, no checkpoints or other files, no loggers
            self.config = cfg = cfg.model_copy(update={"max_epochs": 1, "min_epochs": 0, "check_val_every_n_epoch": 1})
            self.callbacks = [c for c in self.callbacks if not isinstance(c, ModelCheckpoint)]
        self.run_dir = Path(cfg.default_root_dir) if cfg.default_root_dir and not cfg.fast_dev_run else None
        loggers = [] if cfg.fast_dev_run else _as_list(cfg.loggers)
        if not loggers and self.run_dir is not None:
            loggers = [CSVLogger(root_dir=str(self.run_dir), name="logs", version="")]
        self.fabric = Fabric(
            accelerator=cfg.accelerator,
            strategy=_parallel.strategy_for(cfg),
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            precision=cfg.precision,  # type: ignore[arg-type]  # validated by Fabric itself
            plugins=cfg.plugins,
            callbacks=self.callbacks,
            loggers=loggers,
        )
        self.folds: list[FoldState] = []
        self.profiler = _profiling.make_profiler(cfg.profiler)
        """The Lightning profiler of ``TrainerConfig.profiler`` (``None``: no profiling)."""
        self.accumulate_grad_batches = cfg.accumulate_grad_batches
        """Batches per optimizer step in the current epoch (a GradientAccumulationScheduler changes it)."""
        self.current_epoch = 0
        self.should_stop = False
        self.stop_reason: str | None = None
        self.epoch_metrics: dict[str, float] = {}
        self.checkpoint_paths: dict[str, Any] = {}
        """Checkpoints written by this fit: ``best`` (per-fold paths, set by ModelCheckpoint) and ``last``."""
        self.last_checkpoint_dirs: list[Path] = []
        """Extra folders that get ``last.ckpt`` after every epoch (ModelCheckpoint registers its ``dirpath``)."""
        self._finished = False
        self._hook_targets: dict[str, list[tuple[Any, set[str] | None]]] = {}
        self._lean = False
        self.datamodule: Any = None
        """The datamodule of the current fit (its ``on_after_batch_transfer`` runs on every batch)."""
        self.training = False
        """Whether a training batch is being served (Lightning's flag, read by datamodule hooks)."""
        self.validating = False
        """Whether a validation batch is being served."""
        self._split: list[list[list[int]]] | None = None
        self.experiment_config_yaml: str | None = None
        """The resolved experiment config as YAML (set by ``configure_all``); stored in every checkpoint."""
        self.min_folds = 2
        """The fewest folds ``fit`` accepts; ``lcv fit`` sets 1 to train one model with holdout validation."""
        self._best = BestWeights(self.config.monitor, self.config.mode, every_epoch=False)

    # -- public API ---------------------------------------------------------------------------------

    @property
    def n_folds(self) -> int:
        """The number of folds of the current fit."""
        return len(self.folds)

    def fit(
        self,
        model: ModelSpec,
        datamodule: Any,
        ckpt_path: str | Path | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> CVResult:
        """Train and validate one model per fold; return the per-fold history and fold-mean summary.

        Args:
            model: A LightningModule class (built with ``model_kwargs``), a factory returning one
                (called with ``fold=`` if it accepts it), or an instance copied per fold.
            datamodule: An object with ``train_val_dataloaders()`` or a list of ``(train, val)`` loaders.
            ckpt_path: Resume from this checkpoint: ``"last"`` (``<default_root_dir>/checkpoints/last.ckpt``) or a
                path. Training continues at the epoch after the checkpoint's.
            model_kwargs: Keyword arguments for a model class or factory.

        Raises:
            LcvError: Bad input, reported before training starts; an unreadable checkpoint or one whose folds
                differ from the datamodule's.
        """
        cfg = self.config
        start = time.perf_counter()
        path = _checkpoint.resolve_path(ckpt_path, self.run_dir) if ckpt_path is not None else None
        resume = _checkpoint.load(path) if path is not None else None
        seed = cfg.seed if cfg.seed is not None else 0
        _parallel.launch(self.fabric)  # DDP / parallel: start the other ranks and the process group, once
        self.fabric.seed_everything(seed, workers=True, verbose=False)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.datamodule = datamodule
        if hasattr(datamodule, "trainer"):  # as Lightning does: the datamodule's hooks read trainer.training
            datamodule.trainer = self
        loaders = self._debug_loaders(self._fold_loaders(datamodule))
        _parallel.check_folds(self, len(loaders))
        self._split = _checkpoint.split_indices(datamodule)
        if resume is not None:
            _checkpoint.check_compatible(resume, str(path), len(loaders), self._split)
            _checkpoint.check_schedule(resume, str(path), cfg.schedule)
        seeds = fold_seeds(seed, len(loaders))
        models = [make_fold_model(model, i, s, model_kwargs) for i, s in enumerate(seeds)]
        check_no_shared_parameters(models)
        streams = fold_stream_seeds(seed, len(loaders))
        self.folds = [
            self._setup_fold(i, m, tr, va, FoldRNG(s))
            for i, (m, (tr, va), s) in enumerate(zip(models, loaders, streams, strict=True))
        ]
        self._reset()
        if resume is not None:
            self._restore(resume)
        try:
            self._log_config()
            self.fabric.call("on_train_start", trainer=self)
            if cfg.schedule == "sequential":
                self._run_sequential()
            else:
                for f in self.folds:
                    self._start_fold(f)
                first_epoch = self.current_epoch + 1 if resume is not None else 0
                engine = self._vectorized_engine() if cfg.schedule == "vectorized" else None
                if engine is not None:
                    self._run_vectorized(engine, first_epoch)
                else:
                    self._run_interleaved(first_epoch)
                for f in self.folds:
                    self._end_fold(f)
            self.fabric.call("on_train_end", trainer=self)
        except BaseException as exc:
            self.fabric.call("on_exception", trainer=self, exception=exc)
            raise
        result = CVResult(
            history=[f.history for f in self.folds],
            monitor=cfg.monitor,
            mode=cfg.mode,
            wall_time=time.perf_counter() - start,
            run_dir=self.run_dir,
            stopped_epoch=self.current_epoch if self.stop_reason else None,
            stop_reason=self.stop_reason,
            checkpoints=dict(self.checkpoint_paths),
        )
        result.models = self._best.load_best([f.module for f in self.folds], result.best_epoch)
        result.oof_predictions = self._out_of_fold(result, datamodule)
        if self.run_dir is not None and self.fabric.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            result.to_json(self.run_dir / "metrics.json")
            result.write_csv(self.run_dir / "metrics.csv")
            if result.n_epochs > 0:
                result.checkpoints["plot"] = str(result.plot())
        self._finalize_loggers(result)
        _profiling.finish(self.profiler, self.run_dir, self.fabric)
        return result

    def _debug_loaders(self, loaders: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Apply ``fast_dev_run`` / ``overfit_batches`` (each says so in one line) to the fold loaders."""
        cfg = self.config
        if cfg.fast_dev_run:
            n = int(cfg.fast_dev_run)
            self.fabric.print(
                f"fast_dev_run={cfg.fast_dev_run!r}: every fold runs {n} training and {n} validation batch(es) of "
                "one epoch; no checkpoints, metric files or logger output are written."
            )
        if not cfg.overfit_batches:
            return loaders
        self.fabric.print(
            f"overfit_batches={cfg.overfit_batches!r}: every fold trains and validates on the same first "
            f"{cfg.overfit_batches} of its training batches, unshuffled."
        )
        from lightning.fabric.utilities.data import _update_dataloader
        from torch.utils.data import SequentialSampler

        pairs = []
        for train, _val in loaders:
            if isinstance(train, DataLoader) and not isinstance(train.sampler, SequentialSampler):
                train = _update_dataloader(train, SequentialSampler(train.dataset))  # type: ignore[arg-type]
            pairs.append((train, train))
        return pairs

    def _log_config(self) -> None:
        """Give the loggers the resolved experiment config as hyperparameters (when the run came from a config)."""
        if not self.experiment_config_yaml or not self.fabric.is_global_zero:
            return
        import yaml

        params = yaml.safe_load(self.experiment_config_yaml)
        for logger in self.fabric.loggers:
            # Fabric's CSVLogger raises NotImplementedError; the run directory has config.yaml anyway.
            with contextlib.suppress(NotImplementedError):
                logger.log_hyperparams(params)

    def _finalize_loggers(self, result: CVResult) -> None:
        """Give loggers that take them the best epoch's summary and the learning-curve plot, then close them."""
        summary: dict[str, float] = {}
        for name, m in result.metrics.items():
            summary[f"cv/{name}_mean"], summary[f"cv/{name}_std"] = m.mean, m.std
        summary["cv/best_epoch"] = result.best_epoch
        for logger in self.fabric.loggers:
            log_summary, log_image = getattr(logger, "log_summary", None), getattr(logger, "log_image", None)
            if self.fabric.is_global_zero:
                if callable(log_summary):
                    log_summary(summary)
                if callable(log_image) and "plot" in result.checkpoints:
                    log_image("learning_curves", result.checkpoints["plot"])
            logger.finalize("success")

    def _out_of_fold(self, result: CVResult, datamodule: Any) -> Any:
        """Each sample's prediction from the fold that held it out, when the module defines ``predict_step``.

        Needs the validation indices (a datamodule with ``folds``, as lcv-data's) and an unshuffled validation
        loader, whose order is the order of those indices; otherwise ``None``.
        """
        if self._split is None or not result.models or self.config.overfit_batches or self.config.fast_dev_run:
            return None
        if type(result.models[0]).predict_step is LightningModule.predict_step:
            return None
        from lcv_core.inference import out_of_fold_predictions

        n_samples = getattr(datamodule, "n_samples", None)
        if n_samples is None:
            n_samples = 1 + max(max(val, default=-1) for _train, val in self._split)
        val_loaders = [_unwrapped(f.val_loader) for f in self.folds]
        return out_of_fold_predictions(result.models, val_loaders, [val for _train, val in self._split], n_samples)

    # -- vectorized schedule ------------------------------------------------------------------------

    def _vectorized_engine(self) -> Any:
        """Return the batched engine of the ``vectorized`` schedule, or ``None`` (printed why) to run interleaved."""
        from lcv_core._vectorized import VectorizedFolds, can_vectorize

        modules = [f.module for f in self.folds]
        loaders = [(f.train_loader, f.val_loader) for f in self.folds]
        optimizers = [(f.optimizers, f.schedulers) for f in self.folds]
        reason = can_vectorize(modules, loaders, self.config, optimizers=optimizers, fabric=self.fabric)
        if any(isinstance(c, GradientAccumulationScheduler) for c in self.callbacks):
            reason = "a GradientAccumulationScheduler changes the accumulation (only 1 batch is vectorized)"
        if _overridden(self.datamodule, "on_after_batch_transfer") is not None:
            reason = "the datamodule transforms batches on the device (on_after_batch_transfer), one fold's at a time"
        if reason is not None:
            self.fabric.print(f"schedule='vectorized' falls back to 'interleaved': {reason}")
            return None
        n_params = sum(p.numel() for p in modules[0].parameters())
        if n_params > VECTORIZE_PARAMETERS_CPU and self.fabric.device.type == "cpu":
            self.fabric.print(
                f"schedule='vectorized' with {n_params:,} parameters per fold on the CPU: at this size a step is "
                "arithmetic-bound and stacking the folds saves little or costs time; 'interleaved' may be as fast "
                "(see the performance guide)."
            )
        return VectorizedFolds(
            modules, loaders, self.config, fabric=self.fabric, optimizers=optimizers, rngs=[f.rng for f in self.folds]
        )

    def _run_vectorized(self, engine: Any, start_epoch: int) -> None:
        # Per-batch and per-fold callback hooks do not fire here (the folds step as one computation); the
        # epoch-level ones (on_before_log_metrics, on_validation_end) and every decision on the fold mean do.
        cfg = self.config
        for epoch in range(start_epoch, cfg.max_epochs):
            if self._finished:
                break
            self.current_epoch = epoch
            train = engine.train_epoch(epoch)
            validate = (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs
            val = engine.validate(epoch) if validate else [{} for _ in self.folds]
            for i, f in enumerate(self.folds):
                f.history.append({**train[i], **val[i]})
                f.global_step = int(engine.global_steps[i])
            engine.write_back()
            self._end_epoch(epoch, validate)
            self._best.update(epoch, self.epoch_metrics, [f.module for f in self.folds])
            self._decide_stop(epoch)
            self._save_last()
        engine.write_back()

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the whole CV state (every fold, callbacks, RNG, trainer) to ``path`` atomically, on rank 0 only.

        ``fit(..., ckpt_path=path)`` resumes from it at the epoch after ``current_epoch``, so call it between
        epochs (``on_validation_end``, ``on_train_end``); the trainer itself writes ``last.ckpt`` after every
        epoch when it has a ``default_root_dir``.
        """
        path = Path(path)
        if self.fabric.is_global_zero:
            _checkpoint.save(_checkpoint.trainer_state(self), path)
        return path

    # -- setup --------------------------------------------------------------------------------------

    def _reset(self) -> None:
        self._hook_targets = {}  # the callback list is final now (fold modules were taken out of it)
        self._lean = _lean(self.fabric, self.profiler)
        self.current_epoch = 0
        self.should_stop = False
        self.stop_reason = None
        self.epoch_metrics = {}
        self.checkpoint_paths = {}
        self.accumulate_grad_batches = self.config.accumulate_grad_batches
        self._finished = False
        self._monitor_checked = False
        self._best = BestWeights(
            self.config.monitor, self.config.mode, every_epoch=self.config.schedule == "sequential"
        )

    def _restore(self, state: Mapping[str, Any]) -> None:
        _checkpoint.restore_trainer_state(self, state)
        for f in self.folds:
            if self.config.schedule == "offload":
                move_fold(f, torch.device("cpu"))

    def _fold_loaders(self, datamodule: Any) -> list[tuple[Any, Any]]:
        if hasattr(datamodule, "train_val_dataloaders"):
            for hook, args in (("prepare_data", ()), ("setup", ("fit",))):
                if callable(getattr(datamodule, hook, None)):
                    getattr(datamodule, hook)(*args)
            loaders = list(datamodule.train_val_dataloaders())
        elif isinstance(datamodule, Sequence) and not isinstance(datamodule, (str, bytes)):
            loaders = list(datamodule)
        else:
            raise LcvError(
                f"The datamodule ({type(datamodule).__name__}) has no train_val_dataloaders(); pass an object with "
                "that method (e.g. lcv_data.CrossValDataModule) or a list of (train_loader, val_loader) pairs."
            )
        if len(loaders) < self.min_folds:
            raise LcvError(
                f"Cross-validation needs at least {self.min_folds} folds; the datamodule gave {len(loaders)}."
            )
        if self.config.limit_val_batches == 0:
            raise LcvError(
                "limit_val_batches=0 leaves every fold without validation batches, so no fold has a score; "
                "use a positive number of batches or a fraction in (0, 1]."
            )
        for i, pair in enumerate(loaders):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise LcvError(f"Fold {i} is not a (train_loader, val_loader) pair: {type(pair).__name__}.")
            for name, loader in zip(("training", "validation"), pair, strict=True):
                if hasattr(loader, "__len__") and len(loader) == 0:
                    raise LcvError(f"Fold {i} has no {name} batches; check the split and the batch size.")
        return loaders

    def _setup_fold(self, index: int, module: LightningModule, train: Any, val: Any, rng: FoldRNG) -> FoldState:
        optimizers, schedulers = configure_optimizers(module)
        for sched in schedulers:
            if (
                self.config.schedule == "sequential"
                and sched.reduce_on_plateau
                and (sched.monitor or "").startswith("cv/")
            ):
                raise LcvError(
                    f"ReduceLROnPlateau of fold {index} monitors the fold mean '{sched.monitor}', which the "
                    "sequential schedule only knows after the last fold; monitor the fold's own metric or use "
                    "schedule='interleaved'."
                )
        wrapped, *fab_optimizers = self.fabric.setup(module, *optimizers)
        # Fabric registers a LightningModule as a callback of its own; lcv calls each fold's module
        # hooks itself, for that fold only, so remove it from Fabric's dispatch list.
        if module in self.fabric._callbacks:
            self.fabric._callbacks.remove(module)
        if isinstance(train, DataLoader):
            train = self.fabric.setup_dataloaders(train)
        if isinstance(val, DataLoader):
            val = self.fabric.setup_dataloaders(val)
        fold = FoldState(index, module, wrapped, list(fab_optimizers), schedulers, train, val, rng)
        _parallel.setup_fold(self, fold)  # several processes: metrics reduced over ranks (DDP)
        if self.config.schedule == "offload":
            move_fold(fold, torch.device("cpu"))  # only the fold in training lives on the accelerator
        # self.log / self.log_dict of the user's module land in this fold's log, on device.
        module.log = fold.log.log  # type: ignore[method-assign]
        # self.lr_schedulers() (manual optimization) reads self.trainer, which Fabric does not provide.
        module.lr_schedulers = lr_schedulers_of(schedulers)  # type: ignore[method-assign]
        module.log_dict = fold.log.log_dict  # type: ignore[method-assign, assignment]  # same keywords as Lightning's
        return fold

    # -- schedules ----------------------------------------------------------------------------------

    def _start_fold(self, f: FoldState) -> None:
        f.module.on_fit_start()
        self.fabric.call("on_train_fold_start", trainer=self, fold=f.index, module=f.module)

    def _end_fold(self, f: FoldState) -> None:
        f.module.on_fit_end()
        self.fabric.call("on_train_fold_end", trainer=self, fold=f.index, module=f.module)

    @contextmanager
    def _active(self, f: FoldState) -> Iterator[None]:
        """Bring an offloaded fold to the accelerator for the block (no-op for other schedules)."""
        if self.config.schedule != "offload":
            yield
            return
        move_fold(f, self.fabric.device)
        try:
            yield
        finally:
            move_fold(f, torch.device("cpu"))

    def _run_interleaved(self, start_epoch: int) -> None:
        for epoch in range(start_epoch, self.config.max_epochs):
            if self._finished:
                break
            self.current_epoch = epoch
            validated = False
            for f in self.folds:
                if not f.stopped and _parallel.owns(self, f):  # schedule="parallel": this rank's folds only
                    with self._active(f):
                        validated = self._fold_epoch(f, epoch) or validated
            _parallel.sync_folds(self)  # schedule="parallel": every rank gets the other ranks' fold epochs
            self._end_epoch(epoch, validated)
            self._best.update(epoch, self.epoch_metrics, [f.module for f in self.folds])
            self._decide_stop(epoch)
            self._save_last()

    def _decide_stop(self, epoch: int) -> None:
        _parallel.share_stop(self)  # several processes: a stop asked for on any rank stops every rank
        if self.should_stop:
            if epoch + 1 >= self.config.min_epochs:
                self._finished = True
            else:
                self.should_stop, self.stop_reason = False, None  # min_epochs not reached: keep going

    def _run_sequential(self) -> None:
        # Each fold runs to its end; fold means exist only afterwards. They are then replayed epoch by
        # epoch: on_before_log_metrics, the loggers and on_validation_end see every epoch's fold mean, so
        # fold-mean early stopping and ModelCheckpoint decide as in the interleaved schedule (a stop there
        # truncates every fold's history to the stop epoch; it saves no compute).
        if self._finished:
            return
        for f in self.folds:
            if self._fold_done(f):
                continue  # finished before the checkpoint this run resumed from
            self._start_fold(f)
            for epoch in range(len(f.history), self.config.max_epochs):
                self.current_epoch = epoch
                self._fold_epoch(f, epoch)
                self._step_epoch_schedulers(f, f.history[-1])
                self._best.record(f.index, f.module)
                if f.stopped:
                    break
                self._save_last()
            self._end_fold(f)
        self._replay()
        self._finished = True
        self._save_last()

    def _fold_done(self, f: FoldState) -> bool:
        return len(f.history) >= self.config.max_epochs or f.stopped

    def _replay(self) -> None:
        cfg = self.config
        for epoch in range(min(len(f.history) for f in self.folds)):
            self.current_epoch = epoch
            self.epoch_metrics = metrics = aggregate(self.folds, epoch)
            self._log_epoch(epoch, metrics)
            if (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs:
                self._check_monitor(metrics)
                self.fabric.call("on_validation_end", trainer=self, epoch=epoch, metrics=metrics)
            self._decide_stop(epoch)
            if self._finished:
                for f in self.folds:
                    del f.history[epoch + 1 :]
                return

    def _save_last(self) -> None:
        targets = [d / "last.ckpt" for d in self.last_checkpoint_dirs]
        if self.run_dir is not None:
            targets.insert(0, self.run_dir / "checkpoints" / "last.ckpt")
        targets = list(dict.fromkeys(t.resolve() for t in targets))
        if not targets:
            return
        if self.fabric.is_global_zero:
            state = _checkpoint.trainer_state(self)
            for target in targets:
                _checkpoint.save(state, target)
        self.checkpoint_paths["last"] = str(targets[0])

    # -- one fold, one epoch ------------------------------------------------------------------------

    def _limit(self, loader: Any, limit: int | float | None) -> int | None:
        if self.config.fast_dev_run:
            return int(self.config.fast_dev_run)
        if self.config.overfit_batches:  # overrides limit_*_batches; the validation loader is the training loader
            limit = self.config.overfit_batches
        if limit is None:
            return None
        if isinstance(limit, float):
            return max(1, int(len(loader) * limit)) if hasattr(loader, "__len__") else None
        return int(limit)

    def _batches(self, f: FoldState, loader: Any, limit: int | None) -> Iterator[tuple[int, Any]]:
        """Yield ``(batch_idx, batch)`` up to ``limit``, on the device, with the fold log's batch size set."""
        self.training = loader is f.train_loader
        self.validating = not self.training
        after_transfer = _overridden(self.datamodule, "on_after_batch_transfer")
        action = f"[fold {f.index}] {'train' if self.training else 'val'}_dataloader_next"
        profiler, device = self.profiler, self.fabric.device
        transfer = not isinstance(loader, DataLoader)  # Fabric-wrapped DataLoaders move batches themselves
        batches = iter(loader)
        for batch_idx in itertools.count():
            if limit is not None and batch_idx >= limit:
                break
            if profiler is None:
                batch = next(batches, _END)
            else:
                with profiler.profile(action):
                    batch = next(batches, _END)
            if batch is _END:
                break
            if transfer and not on_device(batch, device):
                batch = self.fabric.to_device(batch)
            if callable(after_transfer):  # a LightningDataModule's device-side batch transforms
                batch = after_transfer(batch, 0)
            f.log.batch_size = max(1, batch_size_of(batch))
            yield batch_idx, batch

    def _call_step(self, f: FoldState, name: str, batch: Any, batch_idx: int) -> Any:
        # Run the step through Fabric's precision context so mixed precision really autocasts.
        if self._lean:  # full precision on one device: Fabric's input/output conversions and context are no-ops
            return getattr(f.module, name)(batch, batch_idx)
        if f.wrapped._forward_module is not f.wrapped._original_module:
            return getattr(f.wrapped, name)(batch, batch_idx)  # DDP & co: Fabric redirects through forward
        precision = self.fabric.strategy.precision
        batch = precision.convert_input(batch)
        with _profiling.profile(self.profiler, f"[fold {f.index}] {name}"), precision.forward_context():
            out = getattr(f.module, name)(batch, batch_idx)
        return precision.convert_output(out)

    def _call(self, hook: str, **kwargs: Any) -> None:
        """Dispatch a per-step callback hook as ``Fabric.call`` does, profiled as ``[Callback] <hook>``.

        Each callback gets only the keywords its method names, as with ``Fabric.call``; but which callbacks
        implement the hook (not the base class's no-op) and what they accept is read once per fit, not on every
        batch: ``Fabric.call`` inspects every callback's signature on every call (~20 µs each).
        """
        targets = self._hook_targets.get(hook)
        if targets is None:
            targets = self._hook_targets[hook] = _hook_targets(self.fabric._callbacks, hook)
        if not targets:
            return
        with _profiling.profile(self.profiler, f"[Callback] {hook}"):
            for method, accepted in targets:
                method(**(kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}))

    def _fold_epoch(self, f: FoldState, epoch: int) -> bool:
        """Train and (when due) validate a fold for one epoch in its own random stream; return whether it validated."""
        with f.rng.active():
            return self._fold_epoch_impl(f, epoch)

    def _fold_epoch_impl(self, f: FoldState, epoch: int) -> bool:
        cfg = self.config
        module, call = f.module, self._call
        module.train()
        f.log.start("train")
        call("on_train_epoch_start_per_fold", trainer=self, fold=f.index, epoch=epoch, module=module)
        module.on_train_epoch_start()
        limit = self._limit(f.train_loader, cfg.limit_train_batches)
        n_batches = len(f.train_loader) if hasattr(f.train_loader, "__len__") else None
        if limit is not None and n_batches is not None:
            n_batches = min(n_batches, limit)
        for batch_idx, batch in self._batches(f, f.train_loader, limit):
            f.log.step = f.global_step
            call("on_train_batch_start_per_fold", trainer=self, fold=f.index, batch=batch, batch_idx=batch_idx)
            if module.on_train_batch_start(batch, batch_idx) == -1:
                break  # as in Lightning: -1 skips the rest of the epoch
            if module.automatic_optimization:
                last = n_batches is not None and batch_idx + 1 == n_batches
                outputs = self._automatic_step(f, batch, batch_idx, last)
            else:
                outputs = self._call_step(f, "training_step", batch, batch_idx)
            call(
                "on_train_batch_end_per_fold",
                trainer=self,
                fold=f.index,
                outputs=outputs,
                batch=batch,
                batch_idx=batch_idx,
            )
            module.on_train_batch_end(outputs, batch, batch_idx)
        module.on_train_epoch_end()
        train_metrics = f.log.reduce()
        self._log_steps(f)
        call(
            "on_train_epoch_end_per_fold", trainer=self, fold=f.index, epoch=epoch, metrics=train_metrics, module=module
        )
        val_metrics: dict[str, float] = {}
        validate = (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs
        if validate:
            val_metrics = self._validate(f, epoch)
        f.history.append({**train_metrics, **val_metrics})
        return validate

    def _log_steps(self, f: FoldState) -> None:
        for step, values in f.log.step_values():
            self.fabric.log_dict({f"fold_{f.index}/{k}_step": v for k, v in values.items()}, step=step)

    def _automatic_step(self, f: FoldState, batch: Any, batch_idx: int, last: bool) -> Any:
        cfg, call = self.config, self._call
        outputs = self._call_step(f, "training_step", batch, batch_idx)
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        if loss is None:
            return outputs  # Lightning semantics: returning None skips the batch
        accumulating = (batch_idx + 1) % self.accumulate_grad_batches != 0 and not last
        # callbacks first, then the module's own hook, in the order Lightning calls them
        call("on_before_backward", trainer=self, fold=f.index, loss=loss)
        f.module.on_before_backward(loss)
        scaled = loss / self.accumulate_grad_batches if self.accumulate_grad_batches != 1 else loss
        if self._lean:  # what Fabric's backward comes down to on one device in full precision
            scaled.backward()
        else:
            with (
                _profiling.profile(self.profiler, f"[fold {f.index}] backward"),
                self.fabric.no_backward_sync(f.wrapped, enabled=accumulating),
            ):
                self.fabric.backward(scaled)
        call("on_after_backward", trainer=self, fold=f.index, module=f.module)
        f.module.on_after_backward()
        # callbacks get the loss detached, as in Lightning, so no one keeps the graph alive
        outputs = {**outputs, "loss": loss.detach()} if isinstance(outputs, Mapping) else loss.detach()
        if accumulating:
            return outputs
        optimizer = f.optimizers[0]
        if cfg.gradient_clip_val:
            if cfg.gradient_clip_algorithm == "norm":
                self.fabric.clip_gradients(f.wrapped, optimizer, max_norm=cfg.gradient_clip_val)
            else:
                self.fabric.clip_gradients(f.wrapped, optimizer, clip_val=cfg.gradient_clip_val)
        call("on_before_optimizer_step", trainer=self, fold=f.index, optimizer=optimizer, module=f.module)
        f.module.on_before_optimizer_step(optimizer)
        stepped = optimizer
        if self._lean:  # what Fabric's optimizer wrapper does: the step, then its on_after_optimizer_step hook
            stepped = optimizer.optimizer
            stepped.step()
            call("on_after_optimizer_step", strategy=self.fabric.strategy, optimizer=stepped)
        else:
            with _profiling.profile(self.profiler, f"[fold {f.index}] optimizer_step"):
                optimizer.step()
        call("on_before_zero_grad", trainer=self, fold=f.index, optimizer=optimizer)
        f.module.on_before_zero_grad(optimizer)
        stepped.zero_grad(set_to_none=True)
        f.global_step += 1
        for sched in f.schedulers:
            if sched.interval == "step" and f.global_step % sched.frequency == 0:
                sched.scheduler.step()  # type: ignore[call-arg]
        return outputs

    @torch.no_grad()
    def _validate(self, f: FoldState, epoch: int) -> dict[str, float]:
        module, call = f.module, self._call
        module.eval()
        f.log.start("val")
        call("on_validation_start_per_fold", trainer=self, fold=f.index, epoch=epoch, module=module)
        module.on_validation_epoch_start()
        limit = self._limit(f.val_loader, self.config.limit_val_batches)
        n_batches = 0
        for batch_idx, batch in self._batches(f, f.val_loader, limit):
            n_batches += 1
            call("on_validation_batch_start_per_fold", trainer=self, fold=f.index, batch=batch, batch_idx=batch_idx)
            module.on_validation_batch_start(batch, batch_idx)
            outputs = self._call_step(f, "validation_step", batch, batch_idx)
            call(
                "on_validation_batch_end_per_fold",
                trainer=self,
                fold=f.index,
                outputs=outputs,
                batch=batch,
                batch_idx=batch_idx,
            )
            module.on_validation_batch_end(outputs, batch, batch_idx)
        if n_batches == 0:
            raise LcvError(
                f"Fold {f.index} ran no validation batch in epoch {epoch + 1} (limit_val_batches="
                f"{self.config.limit_val_batches!r}, loader {type(f.val_loader).__name__}); every fold needs at "
                "least one to compute its score. Check the split, the batch size and limit_val_batches."
            )
        module.on_validation_epoch_end()
        metrics = f.log.reduce()
        self._log_steps(f)
        module.train()
        call("on_validation_end_per_fold", trainer=self, fold=f.index, epoch=epoch, metrics=metrics, module=module)
        return metrics

    # -- end of epoch: aggregate over folds ---------------------------------------------------------

    def _end_epoch(self, epoch: int, validated: bool = True) -> None:
        metrics = aggregate(self.folds, epoch)
        self.epoch_metrics = metrics
        for f in self.folds:
            if not f.stopped:
                self._step_epoch_schedulers(f, f.history[-1])
        self._log_epoch(epoch, metrics)
        if validated:  # as in Lightning, decisions on validation metrics are taken on epochs that validated
            self._check_monitor(metrics)
            self.fabric.call("on_validation_end", trainer=self, epoch=epoch, metrics=metrics)

    def _check_monitor(self, metrics: Mapping[str, float]) -> None:
        if not self._monitor_checked:
            self._monitor_checked = True
            check_monitor(self.config.monitor, metrics)

    def _log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.fabric.call("on_before_log_metrics", trainer=self, epoch=epoch, metrics=metrics)
        self.fabric.log_dict({k: v for k, v in metrics.items() if not math.isnan(v)} | {"epoch": epoch}, step=epoch)

    def _step_epoch_schedulers(self, f: FoldState, fold_metrics: Mapping[str, float]) -> None:
        if not f.module.automatic_optimization:
            return  # as in Lightning, with manual optimization the module steps its schedulers itself
        for sched in f.schedulers:
            if sched.interval != "epoch" or (self.current_epoch + 1) % sched.frequency != 0:
                continue
            if sched.reduce_on_plateau:
                name = sched.monitor or ""
                value = self.epoch_metrics.get(name, fold_metrics.get(name))
                if value is None:
                    raise LcvError(
                        f"ReduceLROnPlateau of fold {f.index} monitors '{name}', which was not logged. "
                        f"Logged: {', '.join(sorted(fold_metrics))}; fold means: cv/<name>_mean."
                    )
                sched.scheduler.step(value)  # type: ignore[arg-type]  # ReduceLROnPlateau.step takes the metric
            else:
                sched.scheduler.step()  # type: ignore[call-arg]

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch (callbacks call this); ``reason`` is reported."""
        self.should_stop = True
        self.stop_reason = reason
