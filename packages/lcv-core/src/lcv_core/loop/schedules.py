"""The schedules: how the folds' epochs are ordered (interleaved, sequential, offload, vectorized, parallel).

A `Schedule` is chosen once from ``TrainerConfig.schedule`` (`make_schedule()`) and held by the trainer.
It steps the folds through their epochs and takes the decisions of every epoch on the fold mean (aggregation,
epoch schedulers, early stopping, ``last.ckpt``). The rest of lcv asks the schedule what it needs to know (for
example `Schedule.epoch_major`) instead of comparing its name.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torchmetrics import Metric

from lcv_config import LcvError
from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.core.fold import FoldState, aggregate, check_monitor, move_fold
from lcv_core.distributed import parallel
from lcv_core.loop.checkpoint import LastCheckpointWriter, trainer_state
from lcv_core.loop.fold_loop import STEP_HOOKS, TRANSFER_HOOKS, overridden_hook

if TYPE_CHECKING:
    from lcv_core.loop.trainer import CrossValidationTrainer
    from lcv_core.vectorized.engine import VectorizedFolds

PER_BATCH_HOOKS = (
    *STEP_HOOKS,
    *TRANSFER_HOOKS,
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
)
"""LightningModule hooks the vectorized engine has no per-fold place to call; a module overriding one falls back."""

VECTORIZE_PARAMETERS_CPU = 250_000
"""Above this many parameters per fold, ``schedule='vectorized'`` on the CPU says that it may not pay (measured in
``benchmarks/``: about 2x faster than ``interleaved`` at 700 parameters, on par at 85k, slower at 1.1M)."""


class Schedule:
    """Steps the folds of a fit through their epochs and decides on the fold mean after each.

    Subclasses implement `_run()`; `run()` is the entry point the trainer calls.
    """

    name: ClassVar[str]
    """The ``TrainerConfig.schedule`` value that selects this schedule."""
    epoch_major: ClassVar[bool] = True
    """Whether every fold finishes epoch ``e`` before any fold starts ``e + 1``, so fold means are known every epoch
    (false for ``sequential``, which knows them only after the last fold)."""
    whole_folds_per_process: ClassVar[bool] = False
    """Whether, on several processes, each process trains whole folds of its own (``parallel``) instead of a shard
    of every fold (DDP)."""

    def __init__(self, trainer: CrossValidationTrainer) -> None:
        self.trainer = trainer
        self._non_finite: set[str] = set()
        self.last_writer = LastCheckpointWriter()
        """Writes ``last.ckpt`` (large ones in the background); flushed when `run()` returns or raises."""

    # -- what the trainer asks of a schedule --------------------------------------------------------

    def run(self, first_epoch: int) -> None:
        """Train every fold from ``first_epoch`` to the end of the fit (or a stop); ``last.ckpt`` is complete after."""
        try:
            self._run(first_epoch)
        except BaseException:
            self.last_writer.flush_quietly()  # the epoch before the error is on disk; the error itself is raised
            raise
        self.last_writer.flush()

    def _run(self, first_epoch: int) -> None:
        raise NotImplementedError

    def prepare_fold(self, fold: FoldState) -> None:
        """Put a new or restored fold where this schedule keeps it between epochs (no-op but for ``offload``)."""

    def check_fold_schedulers(self, fold: int, schedulers: list[LRSchedulerConfig]) -> None:
        """Refuse LR schedulers this schedule cannot step (no-op but for ``sequential``)."""

    def agree(self, decision: bool) -> bool:
        """Return the decision every process takes (``parallel`` on several processes: rank 0's)."""
        return decision

    def gather_folds(self) -> None:
        """Bring every fold's whole state to this process (``parallel`` on several processes; collective there)."""

    def snapshot_modules(self) -> list[LightningModule | None]:
        """Return the fold modules whose best weights this process snapshots (``None``: another process's fold)."""
        return [f.module for f in self.trainer.folds]

    def check_folds(self, n_folds: int) -> None:
        """Refuse a fold count this schedule cannot run (no-op but for ``parallel``)."""

    def resumes(self, saved: str) -> bool:
        """Whether this schedule can continue a checkpoint written by schedule ``saved`` (same kind of order)."""
        cls = SCHEDULES.get(saved)
        return cls is not None and cls.epoch_major == self.epoch_major

    @contextmanager
    def active(self, fold: FoldState) -> Iterator[None]:
        """Make ``fold`` ready to train for the block (``offload`` brings it to the accelerator)."""
        yield

    # -- the folds' epochs --------------------------------------------------------------------------

    def start_fold(self, f: FoldState) -> None:
        """Call the hooks that open a fold's fit (``on_fit_start``, ``on_fold_start``, ``on_train_start``)."""
        hook = self.trainer.fold_loop.hook
        hook(f, "on_fit_start")
        self.trainer.fabric.call("on_fold_start", trainer=self.trainer, fold=f.index, module=f.module)
        hook(f, "on_train_start")

    def end_fold(self, f: FoldState) -> None:
        """Call the hooks that close a fold's fit (``on_train_end``, ``on_fit_end``, ``on_fold_end``, ``teardown``)."""
        hook = self.trainer.fold_loop.hook
        hook(f, "on_train_end")
        hook(f, "on_fit_end")
        self.trainer.fabric.call("on_fold_end", trainer=self.trainer, fold=f.index, module=f.module)
        hook(f, "teardown", "fit")

    def start_epoch(self, epoch: int) -> None:
        """Call ``on_train_fold_start`` (lightning-cv's name): once per epoch, before any fold trains it."""
        self.trainer.fabric.call("on_train_fold_start", trainer=self.trainer, epoch=epoch)

    def finish_epoch(self, epoch: int) -> None:
        """Call ``on_train_fold_end`` (lightning-cv's name): once per epoch, with the fold means, before stopping.

        A callback that sets ``trainer.should_stop = True`` here stops the fit after this epoch.
        """
        trainer = self.trainer
        trainer.fabric.call("on_train_fold_end", trainer=trainer, epoch=epoch, metrics=trainer.state.epoch_metrics)

    # -- end of epoch: decide on the fold mean ------------------------------------------------------

    def end_epoch(self, epoch: int, validated: bool = True) -> None:
        """Aggregate the folds' epoch into fold means, step epoch schedulers, log, and call the epoch-end hooks."""
        trainer, state = self.trainer, self.trainer.state
        metrics = aggregate(trainer.folds, epoch)
        state.epoch_metrics = metrics
        self.warn_non_finite(epoch)
        for f in trainer.folds:
            self.step_epoch_schedulers(f, f.history[-1])
        self.log_epoch(epoch, metrics)
        if validated:  # as in Lightning, decisions on validation metrics are taken on epochs that validated
            self.check_monitor(metrics)
            trainer.fabric.call("on_validation_end", trainer=trainer, epoch=epoch, metrics=metrics)

    def warn_non_finite(self, epoch: int) -> None:
        """Warn, once per fold and metric, the first time a fold's epoch value is NaN or infinite."""
        for f in self.trainer.folds:
            for name, value in f.history[epoch].items():
                key = f"{f.index}/{name}"
                if not math.isfinite(value) and key not in self._non_finite:
                    self._non_finite.add(key)
                    warnings.warn(
                        f"Fold {f.index} logged {name} = {value} in epoch {epoch + 1}; its fold mean cv/{name}_mean is "
                        f"{value} from then on, and the best epoch is chosen among epochs whose fold mean is finite "
                        "(lower the learning rate, clip gradients, or check the data of that fold).",
                        UserWarning,
                        stacklevel=2,
                    )

    def decide_stop(self, epoch: int) -> None:
        """Honour a stop asked for during ``epoch`` once ``min_epochs`` are done (on every process alike)."""
        trainer, state = self.trainer, self.trainer.state
        self.share_stop()  # several processes: a stop asked for on any rank stops every rank
        if state.should_stop:
            if epoch + 1 >= trainer.config.min_epochs:
                state.finished = True
            else:
                state.should_stop, state.stop_reason = False, None  # min_epochs not reached: keep going

    def share_stop(self) -> None:
        """Make a stop asked for on any process the stop of every process."""
        parallel.share_stop(self.trainer.fabric, self.trainer.state)

    def last_targets(self) -> list[Path]:
        """Return where ``last.ckpt`` goes: the run directory's ``checkpoints/``, the folders callbacks registered."""
        trainer = self.trainer
        targets = [d / "last.ckpt" for d in trainer.last_checkpoint_dirs]
        if trainer.run_dir is not None:
            targets.insert(0, trainer.run_dir / "checkpoints" / "last.ckpt")
        return list(dict.fromkeys(t.resolve() for t in targets))

    def last_wish(self, targets: list[Path] | None = None) -> tuple[bool, bool]:
        """Return whether ``last.ckpt`` has somewhere to go (``targets``, if known), and whether it is due now."""
        state, cfg = self.trainer.state, self.trainer.config
        every = cfg.checkpoint_every_n_epochs
        due = self.last_writer.due() if every == "auto" else (state.current_epoch + 1) % every == 0
        somewhere = bool(self.last_targets() if targets is None else targets)
        return somewhere, due or state.current_epoch + 1 >= cfg.max_epochs

    def save_last(self) -> None:
        """Write ``last.ckpt`` to the run directory and to every folder a callback registered.

        Only after every ``checkpoint_every_n_epochs``-th epoch (``auto``: when `LastCheckpointWriter.due` says
        the cost stays under 5%) and after the fit's (or, ``sequential``, the fold's) last one; the state is captured
        now, a large file is written in the background (`LastCheckpointWriter`).
        """
        trainer, state = self.trainer, self.trainer.state
        targets = self.last_targets()
        somewhere, due = self.last_wish(targets)
        if not self.agree(somewhere and (state.finished or due)):  # several processes: rank 0, which writes, decides
            return
        started = time.perf_counter()
        self.gather_folds()  # counted in the write's cost, so that `auto` spaces the writes by both
        if not targets:
            return
        if trainer.fabric.is_global_zero:
            self.last_writer.write(lambda frozen: trainer_state(trainer, frozen), targets, started=started)
        trainer.state.checkpoint_paths["last"] = str(targets[0])

    def check_monitor(self, metrics: Mapping[str, float]) -> None:
        """Refuse a monitor no fold logged, at the first validated epoch (warn, if it is only the default).

        A module that logs no ``val_loss`` trains as under Lightning when the monitor was left at its default: the
        fold models are then those of the last epoch.
        """
        state = self.trainer.state
        if state.monitor_checked:
            return
        state.monitor_checked = True
        try:
            check_monitor(self.trainer.config.monitor, metrics)
        except LcvError as exc:
            if self.trainer.monitor_given:
                raise
            warnings.warn(
                f"{exc} Until then the best epoch of every fold is its last one (the default monitor was not set).",
                UserWarning,
                stacklevel=2,
            )

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Give the epoch's per-fold metrics and fold means to ``on_before_log_metrics``, then to the loggers.

        The callbacks get the dict the loggers receive (NaN values left out, ``epoch`` added) with ``stage="epoch"``,
        ``fold=None`` and ``optimizer=None``; what they add or change is logged, the fit's own metrics stay as they are.
        """
        trainer = self.trainer
        logged: dict[str, Any] = {k: v for k, v in metrics.items() if not math.isnan(v)} | {"epoch": epoch}
        trainer.fold_loop.call(
            "on_before_log_metrics",
            trainer=trainer,
            metrics=logged,
            fold=None,
            epoch=epoch,
            step=epoch,
            stage="epoch",
            optimizer=None,
        )
        trainer.fabric.log_dict(logged, step=epoch)

    def step_epoch_schedulers(self, f: FoldState, fold_metrics: Mapping[str, float]) -> None:
        """Step a fold's epoch-interval ReduceLROnPlateau schedulers on their monitor: the fold mean or its own metric.

        The other epoch-interval schedulers stepped with the fold's last training batch, as in Lightning.
        """
        if not f.module.automatic_optimization:
            return  # as in Lightning, with manual optimization the module steps its schedulers itself
        epoch = self.trainer.state.current_epoch
        for sched in f.schedulers:
            if sched.interval != "epoch" or not sched.reduce_on_plateau or (epoch + 1) % sched.frequency != 0:
                continue
            name = sched.monitor or ""
            value = self.trainer.state.epoch_metrics.get(name, fold_metrics.get(name))
            if value is None:
                raise LcvError(
                    f"ReduceLROnPlateau of fold {f.index} monitors '{name}', which was not logged. "
                    f"Logged: {', '.join(sorted(fold_metrics))}; fold means: cv/<name>_mean."
                )
            f.module.lr_scheduler_step(sched.scheduler, value)


class InterleavedSchedule(Schedule):
    """All folds step through each epoch together: fold 0's epoch, fold 1's, ..., then the fold-mean decisions."""

    name = "interleaved"

    def _run(self, first_epoch: int) -> None:
        trainer = self.trainer
        for f in trainer.folds:
            self.start_fold(f)
        self.run_epochs(first_epoch)
        for f in trainer.folds:
            self.end_fold(f)

    def runs_here(self, fold: FoldState) -> bool:
        """Whether this process trains ``fold`` (all of them, but for ``parallel``)."""
        return True

    def after_folds(self) -> None:
        """Called after every fold trained an epoch, before the fold means (``parallel`` shares the folds here)."""

    def run_epochs(self, first_epoch: int) -> None:
        """Run the epochs from ``first_epoch``, every fold one epoch at a time, deciding on the mean after each."""
        trainer, state = self.trainer, self.trainer.state
        for epoch in range(first_epoch, trainer.config.max_epochs):
            if state.finished:
                break
            state.current_epoch = epoch
            self.start_epoch(epoch)
            validated = False
            for f in trainer.folds:
                if self.runs_here(f):
                    with self.active(f):
                        validated = trainer.fold_loop.run_epoch(f, epoch) or validated
            self.after_folds()
            self.end_epoch(epoch, validated)
            state.best.update(epoch, state.epoch_metrics, self.snapshot_modules())
            self.finish_epoch(epoch)
            self.decide_stop(epoch)
            self.save_last()


class OffloadSchedule(InterleavedSchedule):
    """As ``interleaved``, but only the fold in training lives on the accelerator; the others wait on the CPU."""

    name = "offload"

    def prepare_fold(self, fold: FoldState) -> None:
        """Keep the fold on the CPU between its epochs."""
        move_fold(fold, torch.device("cpu"))

    @contextmanager
    def active(self, fold: FoldState) -> Iterator[None]:
        """Bring the fold to the accelerator for the block, then back to the CPU."""
        move_fold(fold, self.trainer.fabric.device)
        try:
            yield
        finally:
            move_fold(fold, torch.device("cpu"))


class ParallelSchedule(InterleavedSchedule):
    """As ``interleaved``, with whole folds spread over the processes (fold ``i`` on rank ``i % N``)."""

    name = "parallel"
    whole_folds_per_process = True

    def check_folds(self, n_folds: int) -> None:
        """Refuse fewer folds than processes."""
        parallel.check_folds(self.trainer.fabric, self.trainer.config.devices, n_folds)

    def runs_here(self, fold: FoldState) -> bool:
        """Whether this rank owns ``fold``."""
        return parallel.world_size(self.trainer.fabric) <= 1 or parallel.owns(self.trainer.fabric, fold)

    def __init__(self, trainer: CrossValidationTrainer) -> None:
        super().__init__(trainer)
        self._best_sent: int | None = None
        """The best epoch whose snapshots were last gathered (they travel again only when the best epoch moves)."""
        self._stale = True
        """Whether folds trained since the last gather (same on every rank; nothing to send otherwise)."""
        self._wish: tuple[bool, bool] | None = None
        """Rank 0's `last_wish`, received with the stop of this epoch."""
        self._weights_only = False
        """Whether the last gather brought the other ranks' weights only (the end of the fit), not their optimizers."""

    def _several(self) -> bool:
        return parallel.world_size(self.trainer.fabric) > 1

    def _run(self, first_epoch: int) -> None:
        trainer = self.trainer
        for f in trainer.folds:
            self.start_fold(f)
        self.run_epochs(first_epoch)
        self.gather_folds(whole=False)  # every rank ends with every fold's final and best weights, as in one process
        for f in trainer.folds:
            self.end_fold(f)

    def after_folds(self) -> None:
        """Give every rank the history rows of the folds the other ranks trained this epoch (not their weights)."""
        if self._several():
            parallel.share_epoch_rows(self.trainer.fabric, self.trainer.folds, self.trainer.state.current_epoch)
            self._stale = True

    def share_stop(self) -> None:
        """Share the stop, and rank 0's wish to write ``last.ckpt`` in the same exchange (`agree` then uses it)."""
        if not self._several():
            return
        wish = self.last_wish() if self.trainer.fabric.is_global_zero else (False, False)
        somewhere, due = parallel.share_stop(self.trainer.fabric, self.trainer.state, wish)
        self._wish = (somewhere, due)

    def agree(self, decision: bool) -> bool:
        """Return rank 0's decision on every rank (sent with the stop after an epoch, else broadcast now)."""
        if not self._several():
            return decision
        if self._wish is None:
            return parallel.agree(self.trainer.fabric, decision)
        (somewhere, due), self._wish = self._wish, None
        return somewhere and (self.trainer.state.finished or due)

    def gather_folds(self, whole: bool = True) -> None:
        """Give every rank the state of the folds the other ranks trained, and their best weights if new.

        ``whole``: weights, optimizers, schedulers and random streams (before a checkpoint, or when a callback asks);
        otherwise weights only (the end of the fit; a later whole gather, e.g. ``save_checkpoint``, sends the rest).
        """
        best = self.trainer.state.best
        behind = self._stale or (whole and self._weights_only)
        if not self._several() or not (behind or best.epoch != self._best_sent):
            return
        send_best = best.epoch != self._best_sent
        epoch = self.trainer.state.current_epoch
        parallel.gather_folds(self.trainer.fabric, self.trainer.folds, best, send_best, epoch, whole=whole)
        self._best_sent, self._stale, self._weights_only = best.epoch, False, not whole

    def snapshot_modules(self) -> list[LightningModule | None]:
        """This rank's folds; the others' snapshots arrive with `gather_folds`."""
        return [f.module if self.runs_here(f) else None for f in self.trainer.folds]


class VectorizedSchedule(InterleavedSchedule):
    """All folds as one batched computation per step; falls back to ``interleaved`` (saying why) when it cannot."""

    name = "vectorized"
    vetted = False
    """Whether this fit's folds already passed `can_vectorize` with its trial step (``auto`` checks before choosing)."""

    def _run(self, first_epoch: int) -> None:
        engine = self.engine()
        if engine is None:
            super()._run(first_epoch)
            return
        trainer = self.trainer
        for f in trainer.folds:
            self.start_fold(f)
        self.run_vectorized(engine, first_epoch)
        for f in trainer.folds:
            self.end_fold(f)

    def engine(self) -> VectorizedFolds | None:
        """Return the batched engine, or ``None`` (printed why) to run interleaved."""
        from lcv_core.vectorized.engine import VectorizedFolds, can_vectorize

        trainer = self.trainer
        if trainer.compile_arguments is not None:  # checked first: the trial step of can_vectorize would compile
            trainer.fabric.print(
                "schedule='vectorized' falls back to 'interleaved': compile is on, and torch.compile compiles each "
                "fold's module, not the batched step of all folds"
            )
            return None
        modules = [f.module for f in trainer.folds]
        loaders = [(f.train_loader, f.val_loader) for f in trainer.folds]
        optimizers = [(f.optimizers, f.schedulers) for f in trainer.folds]
        reason = None
        if not self.vetted:
            reason = can_vectorize(modules, loaders, trainer.config, optimizers=optimizers, fabric=trainer.fabric)
        if any(isinstance(c, GradientAccumulationScheduler) for c in trainer.callbacks):
            reason = "a GradientAccumulationScheduler changes the accumulation (only 1 batch is vectorized)"
        if overridden_hook(trainer.datamodule, "on_after_batch_transfer") is not None:
            reason = "the datamodule transforms batches on the device (on_after_batch_transfer), one fold's at a time"
        hooks = [h for h in PER_BATCH_HOOKS if getattr(type(modules[0]), h) is not getattr(LightningModule, h)]
        if trainer.lightning_callbacks:
            names = ", ".join(type(c).__name__ for c in trainer.lightning_callbacks)
            reason = f"Lightning callbacks ({names}) are called per fold and per batch"
        elif hooks:
            reason = (
                f"{type(modules[0]).__name__} overrides {', '.join(hooks)}, which Lightning calls per batch and per "
                "optimizer step; one computation for all folds has no such step to call them in"
            )
        if reason is not None:
            for module in modules:  # the trial ran training_step under vmap: drop what it left in metric states
                for sub in module.modules():
                    if isinstance(sub, Metric):
                        sub.reset()
            trainer.fabric.print(f"schedule='vectorized' falls back to 'interleaved': {reason}")
            return None
        n_params = sum(p.numel() for p in modules[0].parameters())
        if n_params > VECTORIZE_PARAMETERS_CPU and trainer.fabric.device.type == "cpu":
            trainer.fabric.print(
                f"schedule='vectorized' with {n_params:,} parameters per fold on the CPU: at this size a step is "
                "arithmetic-bound and stacking the folds saves little or costs time; 'interleaved' may be as fast "
                "(see the performance guide)."
            )
        return VectorizedFolds(
            modules,
            loaders,
            trainer.config,
            fabric=trainer.fabric,
            optimizers=optimizers,
            rngs=[f.rng for f in trainer.folds],
        )

    def run_vectorized(self, engine: VectorizedFolds, first_epoch: int) -> None:
        """Run the epochs on the batched engine, with every decision on the fold mean as in ``interleaved``.

        Per-batch and per-fold callback hooks do not fire here (the folds step as one computation); the epoch-level
        ones (``on_train_fold_start``, ``on_before_log_metrics``, ``on_validation_end``, ``on_train_fold_end``) and
        every decision on the fold mean do. Values logged with ``on_step=True`` reach ``on_before_log_metrics`` and
        the loggers after validation, fold by fold, with the steps, keys and order of ``interleaved``.
        """
        trainer, state, cfg = self.trainer, self.trainer.state, self.trainer.config
        for epoch in range(first_epoch, cfg.max_epochs):
            if state.finished:
                break
            state.current_epoch = epoch
            self.start_epoch(epoch)
            train = engine.train_epoch(epoch)
            train_steps = engine.step_rows()
            validate = (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs
            val = engine.validate(epoch) if validate else [{} for _ in trainer.folds]
            val_steps = engine.step_rows() if validate else [[] for _ in trainer.folds]
            for i, f in enumerate(trainer.folds):  # fold by fold, training then validation, as interleaved
                trainer.fold_loop.log_steps(f, train_steps[i], "train")
                trainer.fold_loop.log_steps(f, val_steps[i], "val")
            for i, f in enumerate(trainer.folds):
                f.history.append({**train[i], **val[i]})
                f.global_step = int(engine.global_steps[i])
                trainer.fold_loop.step_epoch_schedulers(f, epoch)
            engine.write_back(optimizers=False)  # the optimizer states when a checkpoint asks (state_dict hook)
            self.end_epoch(epoch, validate)
            state.best.update(epoch, state.epoch_metrics, self.snapshot_modules())
            self.finish_epoch(epoch)
            self.decide_stop(epoch)
            self.save_last()
        engine.release()


class SequentialSchedule(Schedule):
    """One fold to its end, then the next; the fold means are replayed epoch by epoch afterwards.

    ``on_train_fold_start``, ``on_before_log_metrics``, the loggers, ``on_validation_end`` and ``on_train_fold_end``
    then see every epoch's fold mean, once per epoch as in the interleaved schedule, so fold-mean early stopping,
    ModelCheckpoint and a callback setting ``trainer.should_stop`` decide as there (a stop truncates every fold's
    history to the stop epoch; it saves no compute).
    """

    name = "sequential"
    epoch_major = False

    def check_fold_schedulers(self, fold: int, schedulers: list[LRSchedulerConfig]) -> None:
        """Refuse a ReduceLROnPlateau on a fold mean, which is known only after the last fold."""
        for sched in schedulers:
            if sched.reduce_on_plateau and (sched.monitor or "").startswith("cv/"):
                raise LcvError(
                    f"ReduceLROnPlateau of fold {fold} monitors the fold mean '{sched.monitor}', which the "
                    "sequential schedule only knows after the last fold; monitor the fold's own metric or use "
                    "schedule='interleaved'."
                )

    def _run(self, first_epoch: int) -> None:
        trainer, state = self.trainer, self.trainer.state
        if state.finished:
            return
        for f in trainer.folds:
            if len(f.history) >= trainer.config.max_epochs:
                continue  # finished before the checkpoint this run resumed from
            self.start_fold(f)
            for epoch in range(len(f.history), trainer.config.max_epochs):
                state.current_epoch = epoch
                trainer.fold_loop.run_epoch(f, epoch)
                self.step_epoch_schedulers(f, f.history[-1])
                state.best.record(f.index, f.module)
                self.save_last()
            self.end_fold(f)
        self.replay()
        state.finished = True
        self.save_last()

    def replay(self) -> None:
        """Take the fold-mean decisions of every epoch, now that all folds are done."""
        trainer, state, cfg = self.trainer, self.trainer.state, self.trainer.config
        for epoch in range(min(len(f.history) for f in trainer.folds)):
            state.current_epoch = epoch
            self.start_epoch(epoch)
            state.epoch_metrics = metrics = aggregate(trainer.folds, epoch)
            self.warn_non_finite(epoch)
            self.log_epoch(epoch, metrics)
            if (epoch + 1) % cfg.check_val_every_n_epoch == 0 or epoch + 1 == cfg.max_epochs:
                self.check_monitor(metrics)
                trainer.fabric.call("on_validation_end", trainer=trainer, epoch=epoch, metrics=metrics)
            self.finish_epoch(epoch)
            self.decide_stop(epoch)
            if state.finished:
                for f in trainer.folds:
                    del f.history[epoch + 1 :]
                return


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (InterleavedSchedule, SequentialSchedule, OffloadSchedule, VectorizedSchedule, ParallelSchedule)
}
"""Every schedule by its ``TrainerConfig.schedule`` name."""


def make_schedule(name: str, trainer: CrossValidationTrainer) -> Schedule:
    """Return the schedule ``name`` selects, for ``trainer`` (``auto``: `lcv_core.loop.auto_schedule.AutoSchedule`).

    Raises:
        LcvError: An unknown name (the config schema refuses it first).
    """
    if name == "auto":  # chooses among the schedules above at the start of the fit, so it lives in a module of its own
        from lcv_core.loop.auto_schedule import AutoSchedule

        return AutoSchedule(trainer)
    cls = SCHEDULES.get(name)
    if cls is None:
        raise LcvError(f"Unknown schedule {name!r}; use one of auto, {', '.join(SCHEDULES)}.")
    return cls(trainer)
