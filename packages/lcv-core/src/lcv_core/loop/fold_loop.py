"""One fold's epoch: its training batches, the automatic optimization step and its validation.

`FoldLoop` is the part of [`CrossValidationTrainer`][lcv_core.CrossValidationTrainer] that runs one fold for one
epoch, on Fabric or, on one device in full precision without a profiler, straight on the module and optimizer
(see ``_call_step``).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from lightning.fabric import Fabric
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader

from lcv_config import LcvError
from lcv_core.callbacks.base import Callback
from lcv_core.core import profiling as _profiling
from lcv_core.core.fold import FoldState
from lcv_core.core.lightning_compat import fabric_callbacks, forward_is_redirected
from lcv_core.core.metric_log import batch_size_of, on_device

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer

_END = object()  # sentinel: the loader is exhausted


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


def overridden_hook(datamodule: Any, hook: str) -> Any:
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


STEP_HOOKS = (
    "optimizer_step",
    "optimizer_zero_grad",
    "backward",
    "configure_gradient_clipping",
    "clip_gradients",
    "lr_scheduler_step",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
)
"""LightningModule hooks of a training step; a module overriding one of them trains through Lightning's path."""

TRANSFER_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
"""LightningModule hooks that move a batch to the device."""


def overrides(module: Any, hooks: Sequence[str]) -> bool:
    """Whether ``module`` (its class or the instance itself) overrides one of LightningModule's ``hooks``."""
    for hook in hooks:
        method = getattr(module, hook, None)
        if getattr(method, "__func__", method) is not getattr(LightningModule, hook):
            return True
    return False


def lean_steps(fabric: Fabric, profiler: Any) -> bool:
    """Whether steps may skip Fabric's wrappers: modules not wrapped, full precision, no profiler (see `call_step`).

    Unwrapped modules: one device, or ``schedule="parallel"`` (`FoldParallelStrategy` trains each fold on one rank
    without a DDP wrapper; its backward and optimizer step are the base strategy's, which in full precision come down
    to ``loss.backward()`` and ``optimizer.step()``: 7% of a fold's epoch at width 256 went to the wrappers).
    """
    from lightning.fabric.plugins.precision import Precision
    from lightning.fabric.strategies.single_device import SingleDeviceStrategy

    from lcv_core.distributed.parallel import FoldParallelStrategy

    strategy = fabric.strategy
    unwrapped = type(strategy) in (SingleDeviceStrategy, FoldParallelStrategy)
    return unwrapped and type(strategy.precision) is Precision and profiler is None


class FoldLoop:
    """Runs one fold for one epoch: batches, hooks and callbacks in Lightning's order, the step, validation.

    The trainer holds one (``trainer.fold_loop``); the schedules call `run_epoch()` for each fold.
    """

    def __init__(self, trainer: CrossValidationTrainer) -> None:
        self.trainer = trainer
        self.training = False
        """Whether a training batch is being served (Lightning's flag, read by datamodule hooks)."""
        self.validating = False
        """Whether a validation batch is being served."""
        self.active_fold: int | None = None
        """The fold whose batches are being served."""
        self._hook_targets: dict[str, list[tuple[Any, set[str] | None]]] = {}
        self._lean = False

    def reset(self) -> None:
        """Start a fit: read the callback list and the strategy anew (see `call()` and `call_step()`)."""
        self._hook_targets = {}  # the callback list is final now (fold modules were taken out of it)
        self._lean = lean_steps(self.trainer.fabric, self.trainer.profiler)

    # -- one fold, one epoch ------------------------------------------------------------------------

    def limit(self, loader: Any, limit: int | float | None) -> int | None:
        """Return how many batches of ``loader`` to run (``limit_*_batches``, ``fast_dev_run``, ``overfit_batches``)."""
        cfg = self.trainer.config
        if cfg.fast_dev_run:
            return int(cfg.fast_dev_run)
        if cfg.overfit_batches:  # overrides limit_*_batches; the validation loader is the training loader
            limit = cfg.overfit_batches
        if limit is None:
            return None
        if isinstance(limit, float):
            return max(1, int(len(loader) * limit)) if hasattr(loader, "__len__") else None
        return int(limit)

    def batches(self, f: FoldState, loader: Any, limit: int | None) -> Iterator[tuple[int, Any]]:
        """Yield ``(batch_idx, batch)`` up to ``limit``, on the device, with the fold log's batch size set.

        A module that overrides Lightning's batch-transfer hooks gets them called in Lightning's order
        (``on_before_batch_transfer``, ``transfer_batch_to_device``, ``on_after_batch_transfer``); a datamodule's
        override of the first or the last takes precedence, as in Lightning.
        """
        self.training = loader is f.train_loader
        self.validating = not self.training
        self.active_fold = f.index
        datamodule = self.trainer.datamodule
        after_transfer = overridden_hook(datamodule, "on_after_batch_transfer")
        action = f"[fold {f.index}] {'train' if self.training else 'val'}_dataloader_next"
        profiler, device = self.trainer.profiler, self.trainer.fabric.device
        transfer = not isinstance(loader, DataLoader)  # Fabric-wrapped DataLoaders move batches themselves
        module = f.module
        if f.transfer_hooks:
            before = overridden_hook(datamodule, "on_before_batch_transfer") or module.on_before_batch_transfer
            after = after_transfer or module.on_after_batch_transfer
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
            if f.transfer_hooks:  # Lightning's three hooks; Fabric was told not to move these batches itself
                batch = before(batch, 0)
                batch = module.transfer_batch_to_device(batch, device, 0)
                batch = after(batch, 0)
            else:
                if transfer and not on_device(batch, device):
                    batch = self.trainer.fabric.to_device(batch)
                if callable(after_transfer):  # a LightningDataModule's device-side batch transforms
                    batch = after_transfer(batch, 0)
            f.log.batch_size = max(1, batch_size_of(batch))
            yield batch_idx, batch

    def call_step(self, f: FoldState, name: str, batch: Any, batch_idx: int) -> Any:
        """Call the module's ``name`` step (``training_step``, ``validation_step``) as Fabric would."""
        # Run the step through Fabric's precision context so mixed precision really autocasts.
        if self._lean:  # full precision on one device: Fabric's input/output conversions and context are no-ops
            return getattr(f.module, name)(batch, batch_idx)
        if forward_is_redirected(f.wrapped):
            return getattr(f.wrapped, name)(batch, batch_idx)  # DDP & co: Fabric redirects through forward
        precision = self.trainer.fabric.strategy.precision
        batch = precision.convert_input(batch)
        with _profiling.profile(self.trainer.profiler, f"[fold {f.index}] {name}"), precision.forward_context():
            out = getattr(f.module, name)(batch, batch_idx)
        return precision.convert_output(out)

    def call(self, hook: str, **kwargs: Any) -> None:
        """Dispatch a per-step callback hook as ``Fabric.call`` does, profiled as ``[Callback] <hook>``.

        Each callback gets only the keywords its method names, as with ``Fabric.call``; but which callbacks
        implement the hook (not the base class's no-op) and what they accept is read once per fit, not on every
        batch: ``Fabric.call`` inspects every callback's signature on every call (~20 µs each).
        """
        targets = self._hook_targets.get(hook)
        if targets is None:
            targets = self._hook_targets[hook] = _hook_targets(fabric_callbacks(self.trainer.fabric), hook)
        if not targets:
            return
        with _profiling.profile(self.trainer.profiler, f"[Callback] {hook}"):
            for method, accepted in targets:
                method(**(kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}))

    def hook(self, f: FoldState, name: str, *args: Any) -> Any:
        """Call LightningModule hook ``name`` for fold ``f``: the Lightning callbacks' first, then the module's.

        Lightning callbacks get ``(fold trainer view, fold module, *args)``, as ``lightning.Trainer`` calls them.
        """
        for callback in f.lightning_callbacks:
            getattr(callback, name)(f.view, f.module, *args)
        return getattr(f.module, name)(*args)

    def run_epoch(self, f: FoldState, epoch: int) -> bool:
        """Train and (when due) validate a fold for one epoch in its own random stream; return whether it validated."""
        with f.rng.active():
            return self._run_epoch(f, epoch)

    def _run_epoch(self, f: FoldState, epoch: int) -> bool:
        # Lightning's order: training batches (the epoch-interval schedulers step with the last one), validation,
        # then on_train_epoch_end; values the module logs there count as training metrics of the epoch.
        cfg, trainer = self.trainer.config, self.trainer
        module, call, view = f.module, self.call, f.view
        module.train()
        f.log.start("train")
        call("on_train_epoch_start_per_fold", trainer=trainer, fold=f.index, epoch=epoch, module=module)
        self.hook(f, "on_train_epoch_start")
        limit = self.limit(f.train_loader, cfg.limit_train_batches)
        n_batches = len(f.train_loader) if hasattr(f.train_loader, "__len__") else None
        if limit is not None and n_batches is not None:
            n_batches = min(n_batches, limit)
        step = self.lightning_step if f.lightning_steps else self.automatic_step
        ended = True  # the epoch ran to its last batch (on_train_batch_start did not return -1)
        last = False
        for batch_idx, batch in self.batches(f, f.train_loader, limit):
            last = n_batches is not None and batch_idx + 1 == n_batches
            view.is_last_batch = last
            f.log.step = f.global_step
            call("on_train_batch_start_per_fold", trainer=trainer, fold=f.index, batch=batch, batch_idx=batch_idx)
            if self.hook(f, "on_train_batch_start", batch, batch_idx) == -1:
                ended = False
                break  # as in Lightning: -1 skips the rest of the epoch
            if module.automatic_optimization:
                outputs = step(f, batch, batch_idx, last)
                if last:
                    self.step_epoch_schedulers(f, epoch)
            else:
                outputs = self.call_step(f, "training_step", batch, batch_idx)
            call(
                "on_train_batch_end_per_fold",
                trainer=trainer,
                fold=f.index,
                outputs=outputs,
                batch=batch,
                batch_idx=batch_idx,
            )
            self.hook(f, "on_train_batch_end", outputs, batch, batch_idx)
        if ended and not last and module.automatic_optimization:
            self.step_epoch_schedulers(f, epoch)  # a loader without a length: its last batch was not known
        self.training = False
        train_metrics = f.log.reduce()
        self.log_steps(f)
        call(
            "on_train_epoch_end_per_fold",
            trainer=trainer,
            fold=f.index,
            epoch=epoch,
            metrics=train_metrics,
            module=module,
        )
        val_metrics: dict[str, float] = {}
        validate = (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs
        # as Lightning: a module without validation_step has no validation loop (and no validation score)
        validate = validate and type(module).validation_step is not LightningModule.validation_step
        if validate:
            val_metrics = self.validate(f, epoch)
        f.log.start("train")
        self.hook(f, "on_train_epoch_end")
        train_metrics.update(f.log.reduce())
        f.history.append({**train_metrics, **val_metrics})
        return validate

    def step_epoch_schedulers(self, f: FoldState, epoch: int) -> None:
        """Step the fold's epoch-interval schedulers other than ReduceLROnPlateau, at the end of its training part.

        ReduceLROnPlateau waits for the metrics (the fold's, or the fold mean): the schedule steps it after the epoch.
        """
        for sched in f.schedulers:
            if sched.interval == "epoch" and not sched.reduce_on_plateau and (epoch + 1) % sched.frequency == 0:
                f.module.lr_scheduler_step(sched.scheduler, None)

    def step_step_schedulers(self, f: FoldState, batch_idx: int) -> None:
        """Step the fold's step-interval schedulers after an optimizer step (Lightning counts batches of the epoch)."""
        for sched in f.schedulers:
            if sched.interval == "step" and (batch_idx + 1) % sched.frequency == 0:
                f.module.lr_scheduler_step(sched.scheduler, None)

    def log_steps(
        self, f: FoldState, rows: list[tuple[int, dict[str, float]]] | None = None, stage: str | None = None
    ) -> None:
        """Give the loggers the per-step values the fold logged with ``on_step=True`` in this stage.

        ``on_before_log_metrics`` gets each step's dict first (with the fold, its stage and its first optimizer);
        what a callback adds or changes there is what the loggers receive. ``rows`` and ``stage`` default to the
        fold's own log (the vectorized engine passes what it recorded for the fold).
        """
        rows = f.log.step_values() if rows is None else rows
        if not rows:
            return
        trainer = self.trainer
        stage, epoch = stage or f.log.stage, trainer.state.current_epoch
        optimizer = f.optimizers[0] if f.optimizers else None
        for step, values in rows:
            metrics: dict[str, Any] = {f"fold_{f.index}/{k}_step": v for k, v in values.items()}
            self.call(
                "on_before_log_metrics",
                trainer=trainer,
                metrics=metrics,
                fold=f.index,
                epoch=epoch,
                step=step,
                stage=stage,
                optimizer=optimizer,
            )
            trainer.fabric.log_dict(metrics, step=step)

    def automatic_step(self, f: FoldState, batch: Any, batch_idx: int, last: bool) -> Any:
        """Run one training batch with automatic optimization, for a module that overrides none of the step hooks.

        It calls the hooks a module without overrides can observe in Lightning's order (``on_before_zero_grad``,
        ``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``), straight on the optimizer; a
        module overriding ``optimizer_step``, ``backward`` & co runs `lightning_step()` instead.
        """
        trainer, call = self.trainer, self.call
        accumulate = trainer.accumulate_grad_batches
        outputs = self.call_step(f, "training_step", batch, batch_idx)
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        accumulating = (batch_idx + 1) % accumulate != 0 and not last
        optimizer = f.optimizers[0]
        if batch_idx % accumulate == 0:  # the first batch of an accumulation window starts from zero gradients
            call("on_before_zero_grad", trainer=trainer, fold=f.index, optimizer=optimizer)
            self.hook(f, "on_before_zero_grad", optimizer)
            (optimizer.optimizer if self._lean else optimizer).zero_grad(set_to_none=True)
        if loss is not None:  # Lightning semantics: returning None skips backward (and the step)
            # callbacks first, then the module's own hook, in the order Lightning calls them
            call("on_before_backward", trainer=trainer, fold=f.index, loss=loss)
            self.hook(f, "on_before_backward", loss)
            scaled = loss / accumulate if accumulate != 1 else loss
            if self._lean:  # what Fabric's backward comes down to on one device in full precision
                scaled.backward()
            else:
                with (
                    _profiling.profile(trainer.profiler, f"[fold {f.index}] backward"),
                    trainer.fabric.no_backward_sync(f.wrapped, enabled=accumulating),
                ):
                    trainer.fabric.backward(scaled)
            call("on_after_backward", trainer=trainer, fold=f.index, module=f.module)
            self.hook(f, "on_after_backward")
            # callbacks get the loss detached, as in Lightning, so no one keeps the graph alive
            outputs = {**outputs, "loss": loss.detach()} if isinstance(outputs, Mapping) else loss.detach()
        if accumulating:
            return outputs
        call("on_before_optimizer_step", trainer=trainer, fold=f.index, optimizer=optimizer, module=f.module)
        self.hook(f, "on_before_optimizer_step", optimizer)
        cfg = trainer.config
        if cfg.gradient_clip_val:
            if cfg.gradient_clip_algorithm == "norm":
                trainer.fabric.clip_gradients(f.wrapped, optimizer, max_norm=cfg.gradient_clip_val)
            else:
                trainer.fabric.clip_gradients(f.wrapped, optimizer, clip_val=cfg.gradient_clip_val)
        if loss is not None:
            if self._lean:  # what Fabric's optimizer wrapper does: the step, then its on_after_optimizer_step hook
                stepped = optimizer.optimizer
                stepped.step()
                call("on_after_optimizer_step", strategy=trainer.fabric.strategy, optimizer=stepped)
            else:
                with _profiling.profile(trainer.profiler, f"[fold {f.index}] optimizer_step"):
                    optimizer.step()
        f.global_step += 1
        if f.schedulers:
            self.step_step_schedulers(f, batch_idx)
        return outputs

    def lightning_step(self, f: FoldState, batch: Any, batch_idx: int, last: bool) -> Any:
        """Run one training batch exactly as Lightning's automatic optimization does, overridden hooks included.

        ``optimizer_step(epoch, batch_idx, optimizer, closure)`` is the module's; the closure runs ``training_step``,
        zeroes the gradients at the start of an accumulation window (``optimizer_zero_grad``) and calls ``backward``
        through the fold's strategy; stepping the optimizer runs the ``on_before_optimizer_step`` hooks and
        ``configure_gradient_clipping`` (see `FoldStrategy`).
        """
        trainer, call, module = self.trainer, self.call, f.module
        accumulate = trainer.accumulate_grad_batches
        accumulating = (batch_idx + 1) % accumulate != 0 and not last
        epoch = trainer.current_epoch
        optimizer = f.view.strategy._lightning_optimizers[0]
        result: dict[str, Any] = {}

        def closure() -> Any:
            outputs = self.call_step(f, "training_step", batch, batch_idx)
            loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
            if batch_idx % accumulate == 0:
                call("on_before_zero_grad", trainer=trainer, fold=f.index, optimizer=optimizer)
                self.hook(f, "on_before_zero_grad", optimizer)
                module.optimizer_zero_grad(epoch, batch_idx, optimizer)
            if loss is not None:
                with trainer.fabric.no_backward_sync(f.wrapped, enabled=accumulating):
                    f.view.strategy.backward(loss / accumulate if accumulate != 1 else loss, optimizer)
                outputs = {**outputs, "loss": loss.detach()} if isinstance(outputs, Mapping) else loss.detach()
            result["outputs"] = outputs
            return None if loss is None else outputs

        if accumulating:
            closure()
        else:
            module.optimizer_step(epoch, batch_idx, optimizer, closure)
            f.global_step += 1  # as Lightning: counted after the module's optimizer_step, whatever it did
            if f.schedulers:
                self.step_step_schedulers(f, batch_idx)
        return result.get("outputs")

    @torch.no_grad()
    def validate(self, f: FoldState, epoch: int) -> dict[str, float]:
        """Run the fold's validation batches with Lightning's hooks; return its epoch-level validation metrics."""
        module, call, trainer = f.module, self.call, self.trainer
        module.on_validation_model_zero_grad()
        module.on_validation_model_eval()
        f.log.start("val")
        f.log.step = f.global_step  # on_step values of validation are logged at the fold's optimizer step
        call("on_validation_start_per_fold", trainer=trainer, fold=f.index, epoch=epoch, module=module)
        self.hook(f, "on_validation_start")
        self.hook(f, "on_validation_epoch_start")
        limit = self.limit(f.val_loader, trainer.config.limit_val_batches)
        n_batches = 0
        for batch_idx, batch in self.batches(f, f.val_loader, limit):
            n_batches += 1
            call("on_validation_batch_start_per_fold", trainer=trainer, fold=f.index, batch=batch, batch_idx=batch_idx)
            self.hook(f, "on_validation_batch_start", batch, batch_idx)
            outputs = self.call_step(f, "validation_step", batch, batch_idx)
            call(
                "on_validation_batch_end_per_fold",
                trainer=trainer,
                fold=f.index,
                outputs=outputs,
                batch=batch,
                batch_idx=batch_idx,
            )
            self.hook(f, "on_validation_batch_end", outputs, batch, batch_idx)
        if n_batches == 0:
            raise LcvError(
                f"Fold {f.index} ran no validation batch in epoch {epoch + 1} (limit_val_batches="
                f"{trainer.config.limit_val_batches!r}, loader {type(f.val_loader).__name__}); every fold needs "
                "at least one to compute its score. Check the split, the batch size and limit_val_batches."
            )
        self.hook(f, "on_validation_epoch_end")
        metrics = f.log.reduce()
        self.log_steps(f)
        self.hook(f, "on_validation_end")
        self.validating = False
        module.train()
        call("on_validation_end_per_fold", trainer=trainer, fold=f.index, epoch=epoch, metrics=metrics, module=module)
        return metrics
