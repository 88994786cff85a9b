"""The cross-validation trainer: k fold models on Lightning Fabric, stepping through epochs together.

The trainer is composed the way Lightning's ``Trainer`` holds its loops: it holds the fit's `RunState`
(``trainer.state``), the `Schedule` chosen from the config (``trainer.schedule``),
which orders the folds' epochs and takes the fold-mean decisions, and the `FoldLoop` (``trainer.fold_loop``),
which runs one fold for one epoch.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.loggers.csv_logs import CSVLogger
from lightning.pytorch import LightningModule
from torch.utils.data import DataLoader

from lcv_config import LcvError, TrainerConfig
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.core import compiling, profiling
from lcv_core.core.fold import FoldState
from lcv_core.core.fold_models import (
    BestWeights,
    ModelSpec,
    check_no_shared_parameters,
    fold_seeds,
    fold_stream_seeds,
    make_fold_model,
)
from lcv_core.core.lightning_compat import (
    detach_from_fabric,
    forget_callback,
    release_from_fabric,
    unwrap_loader,
    with_sampler,
)
from lcv_core.core.optimizers import configure_optimizers
from lcv_core.core.rng import FoldRNG
from lcv_core.core.saving import load, save
from lcv_core.distributed import cpu_binding, exchange, parallel
from lcv_core.loop import checkpoint
from lcv_core.loop.fold_loop import STEP_HOOKS, TRANSFER_HOOKS, FoldLoop, overrides
from lcv_core.loop.fold_trainer import FoldTrainer
from lcv_core.loop.lightning_callbacks import split_callbacks
from lcv_core.loop.run_dir import hold_run_dir, is_first_process
from lcv_core.loop.schedules import Schedule, make_schedule
from lcv_core.loop.state import RunState
from lcv_core.results.cv_result import CVResult


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class CrossValidationTrainer:
    """Train one model per fold with Lightning Fabric; folds step through epochs together.

    After every epoch the validation metrics of all folds are aggregated into ``cv/<name>_mean`` and
    ``cv/<name>_std``, so early stopping, checkpointing and tuner pruning act on the fold mean.

    Args:
        config: A [`TrainerConfig`][lcv_config.TrainerConfig], a mapping of its fields, or ``None``.
        **kwargs: Fields of [`TrainerConfig`][lcv_config.TrainerConfig], overriding ``config``.

    Example:
        >>> trainer = CrossValidationTrainer(max_epochs=5, accelerator="cpu")  # doctest: +SKIP
        >>> result = trainer.fit(MyModule, datamodule)  # doctest: +SKIP
        >>> print(result.metric("val_acc"))  # doctest: +SKIP
    """

    def __init__(self, config: TrainerConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        base = config.model_dump() if isinstance(config, TrainerConfig) else dict(config or {})
        given = config.model_fields_set if isinstance(config, TrainerConfig) else set(base)
        self.config = TrainerConfig(**{**base, **kwargs})
        self.monitor_given = "monitor" in given or "monitor" in kwargs
        """Whether ``monitor`` was set (if not, a module that logs no ``val_loss`` trains with a warning)."""
        cfg = self.config
        self.callbacks, self.lightning_callbacks = split_callbacks(_as_list(cfg.callbacks))
        """The lcv callbacks (keyword payloads, dispatched through Fabric) and, apart, the Lightning callbacks (called
        per fold with the fold's trainer view and module)."""
        if cfg.enable_progress_bar and not any(isinstance(c, RichProgressBar) for c in self.callbacks):
            self.callbacks.append(RichProgressBar())
        if cfg.fast_dev_run:  # as Lightning: one epoch, no checkpoints or other files, no loggers
            self.config = cfg = cfg.model_copy(update={"max_epochs": 1, "min_epochs": 0, "check_val_every_n_epoch": 1})
            self.callbacks = [c for c in self.callbacks if not isinstance(c, ModelCheckpoint)]
        self.run_dir = Path(cfg.default_root_dir) if cfg.default_root_dir and not cfg.fast_dev_run else None
        loggers = [] if cfg.fast_dev_run else _as_list(cfg.loggers)
        if not loggers and self.run_dir is not None:
            loggers = [CSVLogger(root_dir=str(self.run_dir / "logs"), name="csv", version="")]  # <run>/logs/csv/
        self.schedule: Schedule = make_schedule(cfg.schedule, self)
        """How the folds' epochs are ordered (``TrainerConfig.schedule``), chosen once."""
        self.fabric = parallel.make_fabric(
            cfg,
            self.schedule.whole_folds_per_process,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            precision=cfg.precision,  # validated by Fabric itself
            plugins=cfg.plugins,
            callbacks=self.callbacks,
            loggers=loggers,
        )
        self.folds: list[FoldState] = []
        self.compile_arguments = compiling.compile_arguments(cfg.compile)
        """The ``torch.compile`` arguments each fold's module is compiled with (``TrainerConfig.compile``, or those of a
        ``torch.compile``'d model given to ``fit``), or ``None``."""
        self.profiler = profiling.make_profiler(cfg.profiler)
        """The Lightning profiler of ``TrainerConfig.profiler`` (``None``: no profiling)."""
        self.accumulate_grad_batches = cfg.accumulate_grad_batches
        """Batches per optimizer step in the current epoch (a GradientAccumulationScheduler changes it)."""
        self.state = self._new_state()
        """The fit's state between epochs (epoch, stop request, fold means, best weights); checkpoints hold it."""
        self.fold_loop = FoldLoop(self)
        """Runs one fold for one epoch."""
        self.last_checkpoint_dirs: list[Path] = []
        """Extra folders that get ``last.ckpt`` after every epoch (ModelCheckpoint registers its ``dirpath``)."""
        self.datamodule: Any = None
        """The datamodule of the current fit (its ``on_after_batch_transfer`` runs on every batch)."""
        self.experiment_config_yaml: str | None = None
        """The resolved experiment config as YAML (set by ``configure_all``); stored in every checkpoint."""

    def _new_state(self) -> RunState:
        every_epoch = not self.schedule.epoch_major  # sequential: fold means only after the last fold
        return RunState(best=BestWeights(self.config.monitor, self.config.mode, every_epoch=every_epoch))

    # -- what callbacks read (Lightning's names) ----------------------------------------------------

    @property
    def n_folds(self) -> int:
        """The number of folds of the current fit."""
        return len(self.folds)

    @property
    def current_epoch(self) -> int:
        """The epoch being trained (0-based)."""
        return self.state.current_epoch

    @property
    def should_stop(self) -> bool:
        """Whether a stop was asked for during this epoch ([`stop()`][lcv_core.CrossValidationTrainer.stop] asks).

        Settable, as in lightning-cv and Lightning: ``trainer.should_stop = True`` in a callback stops the fit after
        the epoch (reason: a callback set it); ``False`` withdraws a stop asked for in this epoch.
        """
        return self.state.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if not value:
            self.state.should_stop, self.state.stop_reason = False, None
        elif not self.state.should_stop:
            self.state.stop(f"a callback set trainer.should_stop = True in epoch {self.state.current_epoch + 1}")

    @property
    def stop_reason(self) -> str | None:
        """Why the fit stops early, or ``None``."""
        return self.state.stop_reason

    @property
    def epoch_metrics(self) -> dict[str, float]:
        """The last epoch's per-fold metrics (``fold_<i>/<name>``) and fold means (``cv/<name>_mean``/``_std``)."""
        return self.state.epoch_metrics

    @property
    def checkpoint_paths(self) -> dict[str, Any]:
        """Checkpoints written by this fit: ``best`` (per-fold paths, set by ModelCheckpoint) and ``last``."""
        return self.state.checkpoint_paths

    @property
    def training(self) -> bool:
        """Whether a training batch is being served (Lightning's flag, read by datamodule hooks)."""
        return self.fold_loop.training

    @property
    def validating(self) -> bool:
        """Whether a validation batch is being served."""
        return self.fold_loop.validating

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after this epoch (callbacks call this); ``reason`` is reported."""
        self.state.stop(reason)

    # -- fit ----------------------------------------------------------------------------------------

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
        return self._fit(model, datamodule, ckpt_path, model_kwargs, min_folds=2)

    def fit_holdout(
        self,
        model: ModelSpec,
        datamodule: Any,
        ckpt_path: str | Path | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> CVResult:
        """Train one model on a single ``(train, val)`` split, with the loop, callbacks and files of `fit()`.

        This is what ``lcv fit`` runs; the datamodule may give one fold (``fit`` needs at least two).
        """
        return self._fit(model, datamodule, ckpt_path, model_kwargs, min_folds=1)

    def _fit(
        self,
        model: ModelSpec,
        datamodule: Any,
        ckpt_path: str | Path | None,
        model_kwargs: Mapping[str, Any] | None,
        min_folds: int,
    ) -> CVResult:
        # one run per directory, from Python as from `lcv cv` (which holds the lock already): only the first process
        # of a multi-process job locks and writes it
        lock = hold_run_dir(self.run_dir) if self.run_dir is not None and is_first_process() else None
        try:
            result = self._fit_locked(model, datamodule, ckpt_path, model_kwargs, min_folds)
        except BaseException:
            if lock is not None:
                lock.discard()  # bad input refused before anything was written leaves no directory behind
            raise
        if lock is not None:
            lock.release()
        return result

    def _fit_locked(
        self,
        model: ModelSpec,
        datamodule: Any,
        ckpt_path: str | Path | None,
        model_kwargs: Mapping[str, Any] | None,
        min_folds: int,
    ) -> CVResult:
        cfg = self.config
        start = time.perf_counter()
        path = checkpoint.resolve_path(ckpt_path, self.run_dir) if ckpt_path is not None else None
        resume = load(path) if path is not None else None
        parallel.launch(self.fabric)  # DDP / parallel: start the other ranks and the process group, once
        with cpu_binding.bound_cpus(self.fabric, cfg.cpu_binding):  # on CPU, each process on cores of its own
            return self._train(model, datamodule, resume, path, model_kwargs, min_folds, start)

    def _train(
        self,
        model: ModelSpec,
        datamodule: Any,
        resume: dict[str, Any] | None,
        path: Path | None,
        model_kwargs: Mapping[str, Any] | None,
        min_folds: int,
        start: float,
    ) -> CVResult:
        """Set up the folds, run the schedule and return the result (the processes are launched and placed)."""
        cfg = self.config
        seed = cfg.seed if cfg.seed is not None else 0
        self.fabric.seed_everything(seed, workers=True, verbose=False)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.datamodule = datamodule
        if hasattr(datamodule, "trainer"):  # as Lightning does: the datamodule's hooks read trainer.training
            datamodule.trainer = self
        loaders = self._debug_loaders(self.fold_loaders(datamodule, min_folds))
        self.schedule.check_folds(len(loaders))
        self.state = state = self._new_state()
        state.split = checkpoint.split_indices(datamodule)
        if resume is not None:
            checkpoint.check_compatible(resume, str(path), len(loaders), state.split)
            checkpoint.check_schedule(resume, str(path), self.schedule)
        model, compiled_with = compiling.unwrap_compiled(model)
        if not cfg.compile:  # as Lightning's Trainer.fit(torch.compile(model)): each fold compiled with its arguments
            self.compile_arguments = compiled_with
        seeds = fold_seeds(seed, len(loaders))
        models = [make_fold_model(model, i, s, model_kwargs) for i, s in enumerate(seeds)]
        check_no_shared_parameters(models)
        streams = fold_stream_seeds(seed, len(loaders))
        self.folds = [
            self.setup_fold(i, m, tr, va, FoldRNG(s))
            for i, (m, (tr, va), s) in enumerate(zip(models, loaders, streams, strict=True))
        ]
        self.accumulate_grad_batches = cfg.accumulate_grad_batches
        self.fold_loop.reset()
        if resume is not None:
            checkpoint.restore_trainer_state(self, resume)
            for f in self.folds:
                self.schedule.prepare_fold(f)
        try:
            self._log_config()
            self.fabric.call("on_train_start", trainer=self)
            self.schedule.run(state.current_epoch + 1 if resume is not None else 0)
            self.fabric.call("on_train_end", trainer=self)
        except BaseException as exc:
            self.fabric.call("on_exception", trainer=self, exception=exc)
            active = self.fold_loop.active_fold
            fold = self.folds[active if active is not None else 0]
            for callback in self.lightning_callbacks:
                callback.on_exception(fold.view, fold.module, exc)
            raise
        result = CVResult(
            history=[f.history for f in self.folds],
            monitor=cfg.monitor,
            mode=cfg.mode,
            wall_time=time.perf_counter() - start,
            run_dir=self.run_dir,
            stopped_epoch=state.current_epoch if state.stop_reason else None,
            stop_reason=state.stop_reason,
            checkpoints=dict(state.checkpoint_paths),
            schedule=state.schedule or self.schedule.name,  # auto's choice, or the schedule given by name
            schedule_reason=state.schedule_reason,
        )
        result.models = state.best.load_best([f.module for f in self.folds], result.best_epoch)
        for module in result.models:  # plain modules again: they pickle, deep-copy and torch.save
            if self.compile_arguments is not None:
                compiling.uncompile_module(module)
            release_from_fabric(module)
            for name in ("log", "log_dict"):  # lcv's redirection into the fold's metric log
                module.__dict__.pop(name, None)
        writes = self.run_dir is not None and self.fabric.is_global_zero
        if writes:  # the trained run is on disk before anything that could still fail
            assert self.run_dir is not None
            self.run_dir.mkdir(parents=True, exist_ok=True)
            result.to_json(self.run_dir / "metrics.json")
            result.write_csv(self.run_dir / "metrics.csv")
        result.oof_predictions = self._after_training("out-of-fold predictions", self._out_of_fold, result, datamodule)
        if writes and result.n_epochs > 0:
            plot = self._after_training("the learning-curve plot", result.plot)
            if plot is not None:
                result.checkpoints["plot"] = str(plot)
        self._finalize_loggers(result)
        profiling.finish(self.profiler, self.run_dir, self.fabric)
        return result

    def _after_training(self, what: str, step: Any, *args: Any) -> Any:
        """Run ``step`` on a finished fit; a failure is a warning (and ``error.txt``), never a lost run."""
        try:
            return step(*args)
        except Exception as exc:
            message = f"The fit finished and its results are saved, but {what} failed: {type(exc).__name__}: {exc}"
            warnings.warn(message, UserWarning, stacklevel=3)
            if self.run_dir is not None and self.fabric.is_global_zero:
                with (self.run_dir / "error.txt").open("a", encoding="utf-8") as fh:
                    fh.write(message + "\n")
            return None

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
        from torch.utils.data import SequentialSampler

        pairs = []
        for train, _val in loaders:
            if isinstance(train, DataLoader) and not isinstance(train.sampler, SequentialSampler):
                train = with_sampler(train, SequentialSampler(train.dataset))  # type: ignore[arg-type]  # sized
            pairs.append((train, train))
        return pairs

    def _log_config(self) -> None:
        """Give the loggers the resolved experiment config as hyperparameters (when the run came from a config)."""
        if not self.experiment_config_yaml or not self.fabric.is_global_zero or not self.fabric.loggers:
            return  # parsing the YAML costs ~15 ms: only for loggers that take it
        import yaml

        params = yaml.load(self.experiment_config_yaml, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
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
        if self.state.split is None or not result.models or self.config.overfit_batches or self.config.fast_dev_run:
            return None
        if type(result.models[0]).predict_step is LightningModule.predict_step:
            return None
        from lcv_core.inference.api import out_of_fold_predictions

        n_samples = getattr(datamodule, "n_samples", None)
        if n_samples is None:
            n_samples = 1 + max(max(val, default=-1) for _train, val in self.state.split)
        val_loaders = [unwrap_loader(f.val_loader) for f in self.folds]
        indices = [val for _train, val in self.state.split]
        outputs = self._predict_where_trained(result.models, val_loaders)
        return out_of_fold_predictions(result.models, val_loaders, indices, n_samples, outputs=outputs)

    def _predict_where_trained(self, models: list[LightningModule], val_loaders: list[Any]) -> list[Any] | None:
        """Under ``parallel`` on several processes: each fold's validation predictions, computed by its own rank.

        ``None`` elsewhere (`out_of_fold_predictions` runs every model). Collective there; a rank whose prediction
        failed sends the error instead, so that every rank raises it rather than one waiting for the others.
        (Here, not in ``lcv_core.distributed``: that layer may not import ``lcv_core.inference``.)
        """
        size = parallel.world_size(self.fabric)
        if size <= 1 or not self.schedule.whole_folds_per_process:
            return None
        from lcv_core.inference.fold_predict import run_predict

        mine: dict[int, Any] = {}
        for fold, (model, loader) in enumerate(zip(models, val_loaders, strict=True)):
            if parallel.owner(fold, size) == self.fabric.global_rank:
                try:
                    mine[fold] = run_predict(model, loader)
                except Exception as exc:  # noqa: BLE001  # sent to every rank, raised there (below)
                    mine = {-1: f"{type(exc).__name__}: {exc} (fold {fold}, rank {self.fabric.global_rank})"}
                    break
        outputs: dict[int, Any] = {}
        for part in exchange.all_gather_states(self.fabric, mine):
            outputs.update(part)
        if -1 in outputs:
            raise LcvError(f"predict_step failed: {outputs[-1]}")
        return [outputs[fold] for fold in range(len(models))]

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the whole CV state (every fold, callbacks, RNG, trainer) to ``path`` atomically, on rank 0 only.

        ``fit(..., ckpt_path=path)`` resumes from it at the epoch after ``current_epoch``, so call it between
        epochs (``on_validation_end``, ``on_train_end``); the trainer itself writes ``last.ckpt`` between epochs
        (``checkpoint_every_n_epochs``) when it has a ``default_root_dir``. Under ``schedule="parallel"`` on several
        processes every process calls it at the same point (it gathers the folds first, `gather_folds`).
        """
        path = Path(path)
        self.gather_folds()
        if self.fabric.is_global_zero:
            save(checkpoint.trainer_state(self), path)
        return path

    def gather_folds(self) -> None:
        """Bring every fold's current state (weights, optimizers, best weights) to this process.

        Only ``schedule="parallel"`` on several processes needs it: between epochs each process holds the current
        weights of its own folds only (every fold's metrics reach every process each epoch). lcv gathers before it
        writes a checkpoint (``last.ckpt``, `ModelCheckpoint`, `save_checkpoint`) and when the fit ends; a callback
        that reads other folds' modules during the fit calls this first, on every process at the same point (it is
        a collective operation there). Elsewhere it does nothing.
        """
        self.schedule.gather_folds()

    # -- setup --------------------------------------------------------------------------------------

    def fold_loaders(self, datamodule: Any, min_folds: int = 2) -> list[tuple[Any, Any]]:
        """Return the datamodule's ``(train, val)`` loaders per fold, checked (``prepare_data``/``setup`` run first).

        Raises:
            LcvError: No fold loaders, fewer than ``min_folds`` folds, or a fold without batches.
        """
        if hasattr(datamodule, "train_val_dataloaders"):
            for hook, args in (("prepare_data", ()), ("setup", ("fit",))):
                if callable(getattr(datamodule, hook, None)):
                    getattr(datamodule, hook)(*args)
            loaders = list(datamodule.train_val_dataloaders())
        elif isinstance(datamodule, Sequence) and not isinstance(datamodule, (str, bytes)):
            loaders = list(datamodule)
        else:
            from lightning.pytorch import LightningDataModule

            if isinstance(datamodule, LightningDataModule):
                raise LcvError(
                    f"{type(datamodule).__name__} is a LightningDataModule: it has training data but no folds. Wrap it "
                    'unchanged with a splitter: lcv_data.LightningFolds(dm, "stratified_kfold", splitter_kwargs='
                    '{"n_splits": 5}) in Python, or in a config data.datamodule: lightning with data.dataset: '
                    "{name: <your class>, cfg: {...}} (pip install lcv-data)."
                )
            raise LcvError(
                f"The datamodule ({type(datamodule).__name__}) has no train_val_dataloaders(); pass an object with "
                "that method (e.g. lcv_data.CrossValDataModule or lcv_data.LightningFolds) or a list of "
                "(train_loader, val_loader) pairs."
            )
        if len(loaders) < min_folds:
            raise LcvError(
                f"Cross-validation needs at least {min_folds} folds; the datamodule gave {len(loaders)}. To train one "
                "model on a single (train, val) split (e.g. from_setup_function(fn) without a splitter), use "
                "trainer.fit_holdout(model, datamodule) in Python or `lcv fit CONFIG`; to cross-validate, give the "
                "datamodule a splitter with n_splits >= 2."
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

    def setup_fold(self, index: int, module: LightningModule, train: Any, val: Any, rng: FoldRNG) -> FoldState:
        """Set up one fold as ``fit`` does, calling the module's setup hooks in Lightning's order.

        The module gets its per-fold trainer view (``module.trainer``), then ``setup("fit")`` and ``configure_model``
        (in the fold's random stream, so layers built there differ per fold and not per schedule), then
        ``configure_optimizers``; then Fabric sets it up with its loaders, and its ``self.log`` lands in the fold's
        metric log.
        """
        view = FoldTrainer(self, index, train, val)
        module.trainer = view  # type: ignore[assignment]  # answers what a LightningModule reads from its trainer
        for callback in self.lightning_callbacks:  # as Lightning: the callbacks' setup before the module's
            callback.setup(view, module, "fit")
        if module.configure_callbacks():
            warnings.warn(
                f"{type(module).__name__}.configure_callbacks() returned callbacks; lcv runs the callbacks given to "
                "the CrossValidationTrainer (callbacks=...) for every fold, so pass them there.",
                UserWarning,
                stacklevel=2,
            )
        with rng.active():
            module.setup("fit")
            if type(module).configure_model is not LightningModule.configure_model:  # as Lightning: only if overridden
                module.configure_model()
        optimizers, schedulers = configure_optimizers(module)
        self.schedule.check_fold_schedulers(index, schedulers)
        wrapped, *fab_optimizers = self.fabric.setup(module, *optimizers)
        # Fabric registers a LightningModule as a callback of its own; lcv calls each fold's module
        # hooks itself, for that fold only, so remove it from Fabric's dispatch list.
        forget_callback(self.fabric, module)
        # The module reads its trainer (the view), not Fabric, for self.trainer, self.optimizers(), manual_backward.
        detach_from_fabric(module)
        transfer_hooks = overrides(module, TRANSFER_HOOKS)  # then the module moves its batches, not Fabric
        if isinstance(train, DataLoader):
            train = self.fabric.setup_dataloaders(train, move_to_device=not transfer_hooks)
        if isinstance(val, DataLoader):
            val = self.fabric.setup_dataloaders(val, move_to_device=not transfer_hooks)
        fold = FoldState(index, module, wrapped, list(fab_optimizers), schedulers, train, val, rng, view=view)
        fold.lightning_callbacks = self.lightning_callbacks
        fold.lightning_steps = overrides(module, STEP_HOOKS)
        fold.transfer_hooks = transfer_hooks
        view.attach(fold)
        # several processes: metrics reduced over ranks (DDP)
        parallel.setup_fold(self.fabric, fold, self.schedule.whole_folds_per_process)
        self.schedule.prepare_fold(fold)  # offload: only the fold in training lives on the accelerator
        # self.log / self.log_dict of the user's module land in this fold's log, on device.
        module.log = fold.log.log  # type: ignore[method-assign]
        module.log_dict = fold.log.log_dict  # type: ignore[method-assign, assignment]  # same keywords as Lightning's
        if self.compile_arguments is not None:  # as Lightning's Trainer.fit(torch.compile(model))
            compiling.compile_module(module, self.compile_arguments)
        return fold
