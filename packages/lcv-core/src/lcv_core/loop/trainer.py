"""The cross-validation trainer: k fold models on Lightning Fabric, stepping through epochs together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers.csv_logs import CSVLogger
from lightning.pytorch import LightningModule
from torch.utils.data import DataLoader

from lcv_config import LcvError, TrainerConfig
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.distributed import parallel as _parallel
from lcv_core.loop import checkpoint as _checkpoint
from lcv_core.loop import profiling as _profiling
from lcv_core.loop.fold import FoldState, lr_schedulers_of, move_fold
from lcv_core.loop.fold_loop import lean_steps
from lcv_core.loop.fold_models import (
    BestWeights,
    ModelSpec,
    check_no_shared_parameters,
    fold_seeds,
    fold_stream_seeds,
    make_fold_model,
)
from lcv_core.loop.optimizers import configure_optimizers
from lcv_core.loop.rng import FoldRNG
from lcv_core.loop.schedules import VECTORIZE_PARAMETERS_CPU as VECTORIZE_PARAMETERS_CPU  # re-exported: public
from lcv_core.loop.schedules import Schedules
from lcv_core.results.cv_result import CVResult


def _unwrapped(loader: Any) -> Any:
    """The user's DataLoader behind Fabric's wrapper (its batches stay on the CPU, in the loader's order)."""
    return getattr(loader, "_dataloader", loader)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class CrossValidationTrainer(Schedules):
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
        from lcv_core.inference.api import out_of_fold_predictions

        n_samples = getattr(datamodule, "n_samples", None)
        if n_samples is None:
            n_samples = 1 + max(max(val, default=-1) for _train, val in self._split)
        val_loaders = [_unwrapped(f.val_loader) for f in self.folds]
        return out_of_fold_predictions(result.models, val_loaders, [val for _train, val in self._split], n_samples)

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
        self._lean = lean_steps(self.fabric, self.profiler)
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

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch (callbacks call this); ``reason`` is reported."""
        self.should_stop = True
        self.stop_reason = reason
