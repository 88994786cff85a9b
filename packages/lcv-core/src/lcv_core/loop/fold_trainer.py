"""What each fold's LightningModule sees as ``self.trainer``: a per-fold view answering as ``lightning.Trainer`` would.

A LightningModule reads its trainer for ``self.current_epoch``, ``self.global_step``, ``self.optimizers()``,
``self.lr_schedulers()``, ``self.manual_backward``, ``self.clip_gradients``, ``self.print``, ``self.logger`` and
``self.trainer.estimated_stepping_batches`` (the OneCycleLR recipe). Under lcv each fold has its own
`FoldTrainer`, attached as ``module.trainer`` for the whole fit, which answers for that fold. Its
`FoldStrategy` runs ``optimizer.step()`` and ``manual_backward`` with Lightning's hooks, in Lightning's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.utilities.enums import GradClipAlgorithmType
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lcv_config import LcvError
from lcv_core.core.lightning_compat import datahook_selector, to_lightning_optimizer, unwrap_optimizer

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule

    from lcv_core.core.fold import FoldState
    from lcv_core.loop.trainer import CrossValidationTrainer

# What a Lightning user may read from ``self.trainer`` that has no meaning for one fold, and what to use instead.
_NOT_PER_FOLD = {
    "checkpoint_callback": "lcv's ModelCheckpoint is a callback of the whole CV run: trainer.cv_trainer.callbacks",
    "checkpoint_callbacks": "lcv's ModelCheckpoint is a callback of the whole CV run: trainer.cv_trainer.callbacks",
    "early_stopping_callback": "lcv's EarlyStopping acts on the fold mean: trainer.cv_trainer.callbacks",
    "ckpt_path": "resume the whole CV run with CrossValidationTrainer.fit(ckpt_path=...)",
    "save_checkpoint": "the run's checkpoints are written by the CV trainer (trainer.cv_trainer.save_checkpoint)",
    "fit": "call CrossValidationTrainer.fit (trainer.cv_trainer)",
    "validate": "validation runs every epoch of the CV fit",
    "test": "use lcv_core.inference.test(result, loader) after the fit",
    "predict": "use lcv_core.inference.predict(result, loader) after the fit",
}


class FoldPrecision:
    """The part of Lightning's precision plugin a LightningModule calls: gradient clipping, for one fold."""

    def __init__(self, view: FoldTrainer) -> None:
        self._view = view

    def clip_gradients(self, optimizer: Any, clip_val: float | int = 0.0, gradient_clip_algorithm: Any = None) -> None:
        """Clip this fold's gradients by norm (default) or by value, as Lightning's precision plugin does."""
        if clip_val <= 0:
            return
        fold, fabric = self._view.fold_state, self._view.cv_trainer.fabric
        fab_optimizer = self._view.fabric_optimizer(optimizer)
        if GradClipAlgorithmType(gradient_clip_algorithm or "norm") == GradClipAlgorithmType.VALUE:
            fabric.clip_gradients(fold.wrapped, fab_optimizer, clip_val=clip_val)
        else:
            fabric.clip_gradients(fold.wrapped, fab_optimizer, max_norm=clip_val)


class FoldStrategy:
    """The part of Lightning's ``Strategy`` a LightningModule reaches: backward and optimizer steps with their hooks.

    ``optimizer.step(closure)`` of a fold's optimizer (what ``self.optimizers()`` returns, and what
    ``optimizer_step`` receives) comes here: the closure (training step, zero_grad, backward) runs first, then the
    ``on_before_optimizer_step`` hooks, gradient clipping through the module's ``configure_gradient_clipping``
    (automatic optimization), then the step of the optimizer Fabric set up; the fold's ``global_step`` counts it.
    """

    def __init__(self, view: FoldTrainer) -> None:
        self._view = view
        self._lightning_optimizers: list[Any] = []

    @property
    def root_device(self) -> torch.device:
        """The device the fold trains on."""
        return self._view.cv_trainer.fabric.device

    @property
    def precision_plugin(self) -> FoldPrecision:
        """Gradient clipping for this fold."""
        return self._view.precision_plugin

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send ``obj`` from rank ``src`` to every rank (itself on one process)."""
        return self._view.cv_trainer.fabric.broadcast(obj, src=src)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:  # noqa: A002  # Lightning's name
        """Combine a decision over ranks: all of them (or any of them) must agree."""
        fabric = self._view.cv_trainer.fabric
        if fabric.world_size == 1:
            return decision
        votes = fabric.all_gather(torch.tensor(int(decision), device=fabric.device))
        assert isinstance(votes, torch.Tensor)
        return bool(votes.all() if all else votes.any())

    def barrier(self, name: str | None = None) -> None:
        """Wait for every rank."""
        self._view.cv_trainer.fabric.barrier(name)

    def backward(self, closure_loss: torch.Tensor, optimizer: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Run backward with ``on_before_backward``/``on_after_backward`` and the module's ``backward`` hook."""
        view = self._view
        fold, cv = view.fold_state, view.cv_trainer
        module = fold.module
        cv.fold_loop.call("on_before_backward", trainer=cv, fold=fold.index, loss=closure_loss)
        cv.fold_loop.hook(fold, "on_before_backward", closure_loss)
        precision = cv.fabric.strategy.precision  # what Fabric's backward does, with the module's own backward
        precision.pre_backward(closure_loss, module)
        scaler = getattr(precision, "scaler", None)  # mixed precision on CUDA scales the loss
        module.backward(closure_loss if scaler is None else scaler.scale(closure_loss), *args, **kwargs)
        precision.post_backward(closure_loss, module)
        cv.fold_loop.call("on_after_backward", trainer=cv, fold=fold.index, module=module)
        cv.fold_loop.hook(fold, "on_after_backward")
        return closure_loss

    def optimizer_step(self, optimizer: Any, closure: Callable[[], Any], model: Any = None, **kwargs: Any) -> Any:
        """Run ``closure``, the hooks before the step, clipping, then the fold's optimizer step."""
        view = self._view
        fold, cv = view.fold_state, view.cv_trainer
        module = fold.module
        closure_result = closure()
        cv.fold_loop.call("on_before_optimizer_step", trainer=cv, fold=fold.index, optimizer=optimizer, module=module)
        cv.fold_loop.hook(fold, "on_before_optimizer_step", optimizer)
        if module.automatic_optimization:
            module.configure_gradient_clipping(
                optimizer,
                gradient_clip_val=view.gradient_clip_val,
                gradient_clip_algorithm=view.gradient_clip_algorithm,
            )
        fab_optimizer = view.fabric_optimizer(optimizer)
        # training_step returned None: no gradients to step with (Lightning's precision plugins skip the step too)
        skipped = module.automatic_optimization and closure_result is None
        output = None if skipped else fab_optimizer.step(**kwargs)
        if not module.automatic_optimization:
            fold.global_step += 1  # automatic optimization counts the step once the module's optimizer_step returned
        return output


class FoldLogger:
    """A logger of the run as one fold's module and callbacks see it: metric names get the fold's ``fold_<i>/``."""

    def __init__(self, logger: Any, fold: int) -> None:
        self._logger = logger
        self._prefix = f"fold_{fold}/"

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log ``metrics`` under this fold's names."""
        self._logger.log_metrics({self._prefix + name: value for name, value in metrics.items()}, step=step)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class FoldTrainer:
    """One fold's answer to everything a LightningModule or a Lightning recipe reads from ``self.trainer``.

    Attributes that depend on the run (epoch, stop request, loggers, precision) come from the
    [`CrossValidationTrainer`][lcv_core.CrossValidationTrainer] (``cv_trainer``); those that depend on the fold (steps,
    optimizers, schedulers, loaders, metrics) from the fold. ``should_stop = True`` stops the whole CV run after the
    current epoch (fold means need every fold). An attribute of ``lightning.Trainer`` that has no meaning for one
    fold raises an ``AttributeError`` that says what to use instead.
    """

    def __init__(self, cv_trainer: CrossValidationTrainer, index: int, train_loader: Any, val_loader: Any) -> None:
        self.cv_trainer = cv_trainer
        """The CV trainer of the whole run."""
        self.fold = index
        """The index of this fold."""
        self.train_dataloader = train_loader
        """This fold's training loader."""
        self.val_dataloaders = val_loader
        """This fold's validation loader."""
        self.strategy = FoldStrategy(self)
        """Backward and optimizer steps with Lightning's hooks."""
        self.precision_plugin = FoldPrecision(self)
        """Gradient clipping."""
        self._fold: FoldState | None = None
        self.is_last_batch = False
        """Whether the batch being trained is the last of the epoch."""
        self.sanity_checking = False
        """Always false: lcv runs no sanity check (see the trainer guide)."""
        self.testing = False
        """Whether ``lcv_core.inference.test`` is running."""
        self.predicting = False
        """Whether ``lcv_core.inference.predict`` is running."""

    def __deepcopy__(self, memo: dict[int, Any]) -> FoldTrainer:
        """Return the view itself: a copied module points at its fold's trainer, not at a copy of the run."""
        return self

    def attach(self, fold: FoldState) -> None:
        """Bind the view to its fold once the fold is set up (optimizers, schedulers, loaders)."""
        self._fold = fold
        self.train_dataloader, self.val_dataloaders = fold.train_loader, fold.val_loader
        self.strategy._lightning_optimizers = [
            to_lightning_optimizer(unwrap_optimizer(opt), self.strategy) for opt in fold.optimizers
        ]

    @property
    def fold_state(self) -> FoldState:
        """The fold's state (module, optimizers, loaders, history)."""
        if self._fold is None:
            raise LcvError(f"Fold {self.fold} is not set up yet; its optimizers exist after configure_optimizers().")
        return self._fold

    def fabric_optimizer(self, optimizer: Any) -> Any:
        """Return the optimizer Fabric set up for ``optimizer`` (a torch optimizer or its Lightning wrapper)."""
        raw = getattr(optimizer, "_optimizer", optimizer)
        for fab in self.fold_state.optimizers:
            if unwrap_optimizer(fab) is raw or fab is optimizer:
                return fab
        raise LcvError(f"The optimizer {type(raw).__name__} is not one of fold {self.fold}'s optimizers.")

    # -- progress -----------------------------------------------------------------------------------

    @property
    def n_folds(self) -> int:
        """How many folds the run has."""
        return self.cv_trainer.n_folds

    @property
    def current_epoch(self) -> int:
        """The epoch being trained (0-based)."""
        return self.cv_trainer.current_epoch

    @property
    def global_step(self) -> int:
        """This fold's optimizer steps so far (every optimizer's steps count, as in Lightning)."""
        return self._fold.global_step if self._fold is not None else 0

    @property
    def max_epochs(self) -> int:
        """``TrainerConfig.max_epochs``."""
        return self.cv_trainer.config.max_epochs

    @property
    def min_epochs(self) -> int:
        """``TrainerConfig.min_epochs``."""
        return self.cv_trainer.config.min_epochs

    @property
    def max_steps(self) -> int:
        """Always -1: an lcv fit is bounded by epochs."""
        return -1

    @property
    def num_training_batches(self) -> int | float:
        """Training batches of this fold per epoch after ``limit_train_batches`` (``inf``: a loader without length)."""
        loader = self.train_dataloader
        n = self.cv_trainer.fold_loop.limit(loader, self.cv_trainer.config.limit_train_batches)
        if hasattr(loader, "__len__"):
            return len(loader) if n is None else min(len(loader), n)
        return math.inf if n is None else n

    @property
    def num_val_batches(self) -> list[int | float]:
        """Validation batches of this fold per epoch, after ``limit_val_batches`` (one entry: one loader)."""
        loader = self.val_dataloaders
        n = self.cv_trainer.fold_loop.limit(loader, self.cv_trainer.config.limit_val_batches)
        if hasattr(loader, "__len__"):
            return [len(loader) if n is None else min(len(loader), n)]
        return [math.inf if n is None else n]

    @property
    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps this fold will take over the fit, as Lightning estimates them (OneCycleLR's total)."""
        total = self.num_training_batches
        if total == math.inf:
            return math.inf
        return math.ceil(total / self.accumulate_grad_batches) * max(self.max_epochs, 1)

    # -- flags --------------------------------------------------------------------------------------

    @property
    def training(self) -> bool:
        """Whether this fold is in its training part of the epoch."""
        loop = self.cv_trainer.fold_loop
        return loop.training and loop.active_fold == self.fold

    @property
    def validating(self) -> bool:
        """Whether this fold is validating."""
        loop = self.cv_trainer.fold_loop
        return loop.validating and loop.active_fold == self.fold

    @property
    def should_stop(self) -> bool:
        """Whether the run stops after this epoch."""
        return self.cv_trainer.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self.cv_trainer.stop(f"fold {self.fold} set trainer.should_stop")

    # -- settings -----------------------------------------------------------------------------------

    @property
    def accumulate_grad_batches(self) -> int:
        """Batches per optimizer step in this epoch (Lightning's GradientAccumulationScheduler sets it)."""
        return int(self.cv_trainer.accumulate_grad_batches)

    @accumulate_grad_batches.setter
    def accumulate_grad_batches(self, value: int) -> None:
        self.cv_trainer.accumulate_grad_batches = int(value)

    @property
    def log_every_n_steps(self) -> int:
        """How often step-level values go to the loggers (Lightning's default, 50)."""
        return 50

    @property
    def fit_loop(self) -> Any:
        """The parts of Lightning's fit loop callbacks read: ``max_epochs`` and the fold's optimizer steps."""
        steps = self.global_step
        return SimpleNamespace(
            max_epochs=self.max_epochs,
            epoch_loop=SimpleNamespace(_batches_that_stepped=steps, global_step=steps),
        )

    @property
    def _logger_connector(self) -> Any:
        """What Lightning callbacks ask before logging a step: whether this step's values go to the loggers."""
        due = (self.global_step + 1) % self.log_every_n_steps == 0 or self.should_stop
        return SimpleNamespace(should_update_logs=due)

    @property
    def gradient_clip_val(self) -> float | None:
        """``TrainerConfig.gradient_clip_val`` (``None`` when not clipping)."""
        value = self.cv_trainer.config.gradient_clip_val
        return float(value) if value else None

    @property
    def gradient_clip_algorithm(self) -> GradClipAlgorithmType | None:
        """``TrainerConfig.gradient_clip_algorithm`` when clipping, else ``None``."""
        if not self.cv_trainer.config.gradient_clip_val:
            return None
        return GradClipAlgorithmType(self.cv_trainer.config.gradient_clip_algorithm)

    @property
    def check_val_every_n_epoch(self) -> int:
        """``TrainerConfig.check_val_every_n_epoch``."""
        return self.cv_trainer.config.check_val_every_n_epoch

    @property
    def limit_train_batches(self) -> int | float | None:
        """``TrainerConfig.limit_train_batches``."""
        return self.cv_trainer.config.limit_train_batches

    @property
    def limit_val_batches(self) -> int | float | None:
        """``TrainerConfig.limit_val_batches``."""
        return self.cv_trainer.config.limit_val_batches

    @property
    def val_check_interval(self) -> float:
        """Always 1.0: every fold validates at the end of its epoch."""
        return 1.0

    @property
    def num_sanity_val_steps(self) -> int:
        """Always 0: lcv runs no sanity check."""
        return 0

    @property
    def precision(self) -> str:
        """``TrainerConfig.precision``."""
        return str(self.cv_trainer.config.precision)

    @property
    def datamodule(self) -> Any:
        """The datamodule of the fit."""
        return self.cv_trainer.datamodule

    @property
    def default_root_dir(self) -> str:
        """The run directory (the working directory without one)."""
        import os

        return str(self.cv_trainer.run_dir) if self.cv_trainer.run_dir is not None else os.getcwd()

    @property
    def log_dir(self) -> str | None:
        """The first logger's ``log_dir``, else the run directory."""
        logger = self.logger
        return getattr(logger, "log_dir", None) or self.default_root_dir

    # -- model, optimizers ------------------------------------------------------------------------

    @property
    def lightning_module(self) -> LightningModule:
        """This fold's module."""
        return self.fold_state.module

    @property
    def model(self) -> LightningModule:
        """This fold's module."""
        return self.fold_state.module

    @property
    def optimizers(self) -> list[Any]:
        """This fold's torch optimizers, in ``configure_optimizers`` order."""
        return [unwrap_optimizer(opt) for opt in self.fold_state.optimizers]

    @property
    def lr_scheduler_configs(self) -> list[LRSchedulerConfig]:
        """This fold's schedulers with their ``interval``, ``frequency`` and ``monitor``."""
        return self.fold_state.schedulers

    # -- metrics, loggers -------------------------------------------------------------------------

    @property
    def callback_metrics(self) -> dict[str, torch.Tensor]:
        """This fold's latest epoch-level metrics (training and validation), as tensors."""
        return self.fold_state.log.callback_metrics()

    @property
    def logged_metrics(self) -> dict[str, torch.Tensor]:
        """This fold's latest logged values, as tensors."""
        return self.fold_state.log.callback_metrics()

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """This fold's latest values logged with ``prog_bar=True``."""
        return self.fold_state.log.progress_bar_metrics()

    @property
    def loggers(self) -> list[Any]:
        """The run's loggers, seen through this fold: what is logged to them lands under ``fold_<i>/<name>``."""
        return [FoldLogger(logger, self.fold) for logger in self.cv_trainer.fabric.loggers]

    @property
    def logger(self) -> Any:
        """The run's first logger seen through this fold, or ``None`` without one (as in Lightning)."""
        loggers = self.loggers
        return loggers[0] if loggers else None

    @property
    def callbacks(self) -> list[Any]:
        """The run's callbacks: lcv's, then Lightning's."""
        return [*self.cv_trainer.callbacks, *self.cv_trainer.lightning_callbacks]

    @property
    def profiler(self) -> Any:
        """The run's profiler (a pass-through one without profiling)."""
        if self.cv_trainer.profiler is not None:
            return self.cv_trainer.profiler
        from lightning.pytorch.profilers import PassThroughProfiler

        return PassThroughProfiler()

    @property
    def _data_connector(self) -> Any:
        """What ``LightningModule.to_onnx`` & co read to call batch hooks (module or datamodule, as in Lightning)."""
        return SimpleNamespace(_datahook_selector=datahook_selector(self.fold_state.module, self.datamodule))

    @property
    def progress_bar_callback(self) -> None:
        """``None``: ``self.print`` prints plainly (the run's progress display is an lcv callback)."""
        return None

    # -- processes --------------------------------------------------------------------------------

    @property
    def is_global_zero(self) -> bool:
        """Whether this process is rank 0."""
        return bool(self.cv_trainer.fabric.is_global_zero)

    @property
    def global_rank(self) -> int:
        """This process's rank."""
        return int(self.cv_trainer.fabric.global_rank)

    @property
    def local_rank(self) -> int:
        """This process's rank on its node."""
        return int(self.cv_trainer.fabric.local_rank)

    @property
    def node_rank(self) -> int:
        """This process's node."""
        return int(self.cv_trainer.fabric.node_rank)

    @property
    def world_size(self) -> int:
        """How many processes the run has."""
        return int(self.cv_trainer.fabric.world_size)

    @property
    def num_devices(self) -> int:
        """Devices per node."""
        devices = getattr(self.cv_trainer.fabric.strategy, "parallel_devices", None)
        return len(devices) if devices else 1

    @property
    def num_nodes(self) -> int:
        """``TrainerConfig.num_nodes``."""
        return int(self.cv_trainer.config.num_nodes)

    def __getattr__(self, name: str) -> Any:
        """Say what to use instead of a ``lightning.Trainer`` attribute that has no meaning for one fold."""
        if name.startswith("__"):
            raise AttributeError(name)
        hint = _NOT_PER_FOLD.get(name, "the whole CV run is trainer.cv_trainer (a CrossValidationTrainer)")
        raise AttributeError(
            f"lcv's per-fold trainer (fold {self.__dict__.get('fold')}) has no '{name}' as lightning.Trainer does: "
            f"{hint}. See the trainer guide, 'What a LightningModule sees'."
        )
