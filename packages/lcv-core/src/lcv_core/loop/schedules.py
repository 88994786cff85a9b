"""The schedules: how the folds' epochs are ordered (interleaved, sequential, offload, vectorized, parallel).

:class:`Schedules` is the part of :class:`~lcv_core.loop.trainer.CrossValidationTrainer` that steps the folds
through their epochs and takes the decisions of every epoch on the fold mean (aggregation, epoch schedulers,
early stopping, ``last.ckpt``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lcv_config import LcvError
from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.distributed import parallel as _parallel
from lcv_core.loop import checkpoint as _checkpoint
from lcv_core.loop.fold import FoldState, aggregate, check_monitor, move_fold
from lcv_core.loop.fold_loop import FoldLoop, overridden_hook
from lcv_core.loop.fold_models import BestWeights

VECTORIZE_PARAMETERS_CPU = 250_000
"""Above this many parameters per fold, ``schedule='vectorized'`` on the CPU says that it may not pay (measured in
``benchmarks/``: about 2x faster than ``interleaved`` at 700 parameters, on par at 85k, slower at 1.1M)."""


class Schedules(FoldLoop):
    """Steps the folds through their epochs in the configured schedule; decides on the fold mean after each."""

    folds: list[FoldState]
    callbacks: list[Any]
    run_dir: Path | None
    current_epoch: int
    should_stop: bool
    stop_reason: str | None
    epoch_metrics: dict[str, float]
    checkpoint_paths: dict[str, Any]
    last_checkpoint_dirs: list[Path]
    _finished: bool
    _monitor_checked: bool
    _best: BestWeights

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

    # -- vectorized schedule ------------------------------------------------------------------------

    def _vectorized_engine(self) -> Any:
        """Return the batched engine of the ``vectorized`` schedule, or ``None`` (printed why) to run interleaved."""
        from lcv_core.vectorized.engine import VectorizedFolds, can_vectorize

        modules = [f.module for f in self.folds]
        loaders = [(f.train_loader, f.val_loader) for f in self.folds]
        optimizers = [(f.optimizers, f.schedulers) for f in self.folds]
        reason = can_vectorize(modules, loaders, self.config, optimizers=optimizers, fabric=self.fabric)
        if any(isinstance(c, GradientAccumulationScheduler) for c in self.callbacks):
            reason = "a GradientAccumulationScheduler changes the accumulation (only 1 batch is vectorized)"
        if overridden_hook(self.datamodule, "on_after_batch_transfer") is not None:
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
