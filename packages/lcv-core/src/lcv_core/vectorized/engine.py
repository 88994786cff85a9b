"""The ``vectorized`` schedule: the k fold models trained as one batched computation.

For small models the cost of a fold loop is Python overhead per step, not arithmetic; running the k folds
as one computation removes (k-1)/k of it. The fold models' parameters are stacked along a new leading fold
dimension and the user's **unmodified** ``training_step`` and ``validation_step`` run under ``torch.func.vmap``
with the stacked tensors swapped into the template module (as ``functional_call`` does), each fold on its own
batch.

The parts live in seven modules of this package: this one (the engine), ``cohort`` (folds stacked into one
parameter set with one optimizer), ``fused`` (that optimizer's step straight on torch's fused kernel), ``check``
(what can be vectorized, the trial step), ``batches`` (stacking or gathering the folds' batches, the ``vmap``
step), ``grouped`` (the configurable learner's step on stacked tensors without ``vmap``: one ``baddbmm`` per
``Linear``) and ``metric_log`` (what the folds log, reduced per fold).

Wiring (for the trainer)::

    reason = can_vectorize(modules, loaders, config, optimizers=[(f.optimizers, f.schedulers) for f in folds])
    if reason:
        print(f"schedule='vectorized' falls back to 'interleaved': {reason}")
    else:
        engine = VectorizedFolds(modules, loaders, config, fabric=fabric, optimizers=..., rngs=[f.rng ...])
        for epoch in range(max_epochs):
            train = engine.train_epoch(epoch)            # list of per-fold dicts
            val = engine.validate(epoch)                 # when validation is due
            # history rows {**train[i], **val[i]}; aggregate; step epoch schedulers on the folds' own
            # optimizers as today (the engine copies their learning rates before each epoch)
            engine.write_back(optimizers=False)          # weights, before snapshots and callbacks; the
                                                         # optimizer states when a checkpoint asks for them
        engine.release()                                 # everything back, the hooks off the fold optimizers

Semantics and choices:

- **Optimizer.** One optimizer per *cohort* over the cohort's stacked parameters, of the class and with the
  hyperparameters (and parameter groups) of the folds' own ``configure_optimizers()``; fused where torch has it
  and the user left ``fused`` unset (Adam, AdamW and SGD then step on torch's fused kernel directly). Only
  elementwise optimizers (SGD, Adam, AdamW, ...) are accepted, so each fold's update is exactly what its own
  optimizer would do. A cohort is the set of folds with the same number of training batches per epoch: folds
  of one cohort always step together, so optimizer step counts (Adam's bias correction) stay exact per fold.
  Usually all folds form one cohort.
- **Ragged batches.** Step ``i`` stacks batch ``i`` of every fold that has one. Folds whose batches differ in
  shape (a smaller last batch) run as separate ``vmap`` calls on slices of the same stacked parameters; the
  losses are summed (the folds are independent, so each fold gets its own gradient) and one backward pass and
  one optimizer step per cohort follow. A fold whose loader is exhausted sits the step out.
- **Gradient clipping** is per fold: the norm is taken over each fold's slice, as ``clip_grad_norm_`` does for
  one model; value clipping is elementwise anyway.
- **Schedulers.** The folds' own schedulers stay the source of truth: step-interval schedulers are stepped here,
  epoch-interval ones by the caller (`VectorizedFolds.step_epoch_schedulers()` or the trainer's own code),
  and the stacked optimizer takes the learning rates of the folds' optimizers before every epoch.
  ``ReduceLROnPlateau`` is accepted only when it monitors a fold mean (``cv/...``): per-fold plateaus would give
  folds of one optimizer different learning rates.
- **self.log** is intercepted; values come out of ``vmap`` with a fold dimension and are reduced per fold on
  device (``mean`` weighted by batch size, ``sum``, ``max``, ``min``), as ``FoldMetricLog`` does.
- **Random streams.** Each fold's batches are drawn inside its own `FoldRNG`, so batch
  order equals the interleaved schedule's. Dropout masks come from the global generator under
  ``vmap(randomness="different")``: same distribution, other numbers than the interleaved schedule.
- Non-tensor attributes of the module (``self.lr``, ``self.hparams``) are read from fold 0's module.
- Per-batch module hooks are not called; modules that override them fall back. Epoch hooks
  (``on_train_epoch_start`` ...) are called on every fold's module, with ``self.log`` routed to that fold.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.pytorch import LightningModule
from torch.utils.hooks import RemovableHandle

from lcv_config import LcvError, TrainerConfig
from lcv_core.core.rng import FoldRNG
from lcv_core.vectorized.batches import LogEntry, LogValue, _Gather, _Group, _group, _precision, _prepare
from lcv_core.vectorized.check import (
    ELEMENTWISE_OPTIMIZERS,
    OptimizerSpec,
    _CannotVectorizeError,
    _overrides,
    _static_check,
    can_vectorize,
)
from lcv_core.vectorized.cohort import Cohort
from lcv_core.vectorized.grouped import make_stepper
from lcv_core.vectorized.metric_log import Deferred, _FoldsLog, _HookLog

_PREFETCH = 32


def _rows(tensors: dict[str, torch.Tensor], rows: list[int], device: torch.device) -> dict[str, torch.Tensor]:
    """Rows ``rows`` of every stacked tensor: a slice (a view) when they are consecutive, else an index_select."""
    first = rows[0]
    if rows == list(range(first, first + len(rows))):
        return {n: t[first : first + len(rows)] for n, t in tensors.items()}
    index = torch.tensor(rows, device=device)
    return {n: t.index_select(0, index) for n, t in tensors.items()}


class VectorizedFolds:
    """Train k fold models as one batched computation; see the module docstring for the semantics.

    Args:
        modules: The fold models (one class, same parameter shapes), already on their device.
        loaders: Each fold's ``(train_loader, val_loader)``.
        config: The trainer config (gradient clipping, batch limits); defaults when ``None``.
        fabric: Moves batches to the device and sets the precision context; optional.
        optimizers: Each fold's ``(optimizers, scheduler configs)`` as the trainer built them; when ``None``
            each module's ``configure_optimizers()`` is called.
        rngs: Each fold's random stream; batches are drawn inside it. ``None`` draws from the global one.

    Raises:
        LcvError: The modules cannot be vectorized (the message says why; check with `can_vectorize()`).
    """

    def __init__(
        self,
        modules: Sequence[LightningModule],
        loaders: Sequence[tuple[Any, Any]],
        config: TrainerConfig | None = None,
        *,
        fabric: Fabric | None = None,
        optimizers: Sequence[OptimizerSpec] | None = None,
        rngs: Sequence[FoldRNG] | None = None,
    ) -> None:
        self.config = config if config is not None else TrainerConfig()
        try:
            self._specs = _static_check(modules, self.config, optimizers)
        except _CannotVectorizeError as exc:
            message = f"schedule='vectorized' cannot run these models: {exc}. Use schedule='interleaved'."
            raise LcvError(message) from exc
        self.modules = list(modules)
        self.k = len(self.modules)
        self.loaders = list(loaders)
        self.fabric = fabric
        self.rngs = list(rngs) if rngs is not None else None
        self.global_steps = [0] * self.k
        template = self.modules[0]
        self.device = next(template.parameters()).device
        self._stepper = make_stepper(self.modules)
        self._all_folds = list(range(self.k))
        self._log = _FoldsLog(self.k, self.device)
        counts = [self._count(tr, self.config.limit_train_batches, i) for i, (tr, _) in enumerate(self.loaders)]
        by_count: dict[int, list[int]] = {}
        for fold, count in enumerate(counts):
            by_count.setdefault(count, []).append(fold)
        self.train_batches = counts
        self.cohorts = [Cohort(folds, self.modules, self._specs, self._stepper) for folds in by_count.values()]
        self._order = [f for c in self.cohorts for f in c.folds]
        self._position = {f: i for i, f in enumerate(self._order)}
        self._in_order = self._order == self._all_folds  # the stacked parameters are in fold order
        self._step_interval = any(s.interval == "step" for _, scheds in self._specs for s in scheds)
        self._ones: dict[tuple[torch.Size, torch.dtype], torch.Tensor] = {}  # d(sum of fold losses)/d(fold loss)
        self.buffers = {n: torch.stack([m.get_buffer(n) for m in self.modules]) for n, _ in template.named_buffers()}
        self._optimizers_behind = False  # the fold optimizers' states are older than the stacked optimizer's
        self._hooks_on_optimizers: list[RemovableHandle] = []

    # -- public API ---------------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> list[dict[str, float]]:
        """Train every fold for one epoch; return each fold's epoch metrics (what its module logged)."""
        for cohort in self.cohorts:
            cohort.sync_hyperparameters()
        self._log.start()
        self._set_mode(True, self.modules)
        self._hooks("on_train_epoch_start")
        for batch_idx, groups in enumerate(self._steps(0, self.train_batches)):
            self._train_step(batch_idx, groups)
        self._hooks("on_train_epoch_end")
        return self._log.reduce()

    @torch.no_grad()
    def validate(self, epoch: int) -> list[dict[str, float]]:
        """Validate every fold (batched too); return each fold's validation metrics."""
        self._log.start()
        # the steps run on fold 0's module (the template); the others only need eval mode for their epoch hooks
        hooked = _overrides(self.modules[0], "on_validation_epoch_start") or _overrides(
            self.modules[0], "on_validation_epoch_end"
        )
        switched = self.modules if hooked else self.modules[:1]
        self._set_mode(False, switched)
        self._hooks("on_validation_epoch_start")
        if _overrides(self.modules[0], "validation_step"):
            counts = [self._count(va, self.config.limit_val_batches, i) for i, (_, va) in enumerate(self.loaders)]
            params = self._full_params()
            for batch_idx, groups in enumerate(self._steps(1, counts)):
                for group in groups:
                    _, entries, values = self._stepper(
                        "validation", self._select(params, group.folds), self._select_buffers(group.folds), group,
                        batch_idx,
                    )  # fmt: skip
                    self._record(group, entries, values)
        self._hooks("on_validation_epoch_end")
        self._set_mode(True, switched)
        result = self._log.reduce()
        for fold, metrics in enumerate(self._stepper.epoch_metrics(self.k)):  # torchmetrics of the grouped step
            result[fold].update(metrics)
        return result

    def step_rows(self) -> list[list[tuple[int, dict[str, float]]]]:
        """Return every fold's ``on_step=True`` values of the last stage as ``(step, {name: value})`` rows."""
        return self._log.step_rows()

    def step_values(self, fold: int) -> list[tuple[int, dict[str, float]]]:
        """Return fold ``fold``'s ``on_step=True`` values of the last stage as ``(step, {name: value})`` rows."""
        return self._log.step_rows()[fold]

    def step_epoch_schedulers(self, epoch: int, metrics: Mapping[str, float] | None = None) -> None:
        """Step the folds' epoch-interval schedulers (``ReduceLROnPlateau`` with the fold mean in ``metrics``)."""
        for fold, (_, schedulers) in enumerate(self._specs):
            for sched in schedulers:
                if sched.interval != "epoch" or (epoch + 1) % sched.frequency != 0:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": ours stepped
                    if sched.reduce_on_plateau:
                        name = sched.monitor or ""
                        if metrics is None or name not in metrics:
                            raise LcvError(f"ReduceLROnPlateau of fold {fold} monitors '{name}', which was not given.")
                        sched.scheduler.step(metrics[name])  # type: ignore[arg-type]  # takes the metric
                    else:
                        sched.scheduler.step()  # type: ignore[call-arg]

    def write_back(self, optimizers: bool = True) -> None:
        """Copy the trained weights into each fold's module and the optimizer states into each fold's optimizer.

        With ``optimizers=False`` (after each epoch, for the callbacks and the best-epoch snapshot) the optimizer
        states, the larger part, are copied when a fold optimizer's ``state_dict()`` is first asked for (a checkpoint,
        the fold's `state_dict`): each fold optimizer carries a state-dict hook for this until `release()`.
        """
        for cohort in self.cohorts:
            cohort.write_back(self.modules)
        if optimizers:
            self._write_back_optimizers()
            return
        self._optimizers_behind = True
        if not self._hooks_on_optimizers:
            self._hooks_on_optimizers = [
                opt.register_state_dict_pre_hook(self._before_optimizer_state_dict) for opt, _ in self._specs
            ]

    def release(self) -> None:
        """Copy everything back (`write_back`) and take the hooks off the fold optimizers: the engine is done."""
        self.write_back()
        for handle in self._hooks_on_optimizers:
            handle.remove()
        self._hooks_on_optimizers = []

    # -- internals ----------------------------------------------------------------------------------

    def _write_back_optimizers(self) -> None:
        for cohort in self.cohorts:
            cohort.write_back_optimizers()
        self._optimizers_behind = False

    def _before_optimizer_state_dict(self, _optimizer: torch.optim.Optimizer) -> None:
        if self._optimizers_behind:
            self._write_back_optimizers()

    @staticmethod
    def _set_mode(training: bool, modules: Sequence[LightningModule]) -> None:
        """``train(training)`` each module unless it is wholly in that mode (``train()`` sets every flag anew)."""
        for m in modules:
            if any(sub.training is not training for sub in m.modules()):
                m.train(training)

    def _count(self, loader: Any, limit: int | float | None, fold: int) -> int:
        if not hasattr(loader, "__len__"):
            raise LcvError(f"Fold {fold}'s loader has no len(); the vectorized schedule needs batch counts.")
        n = len(loader)
        if self.config.fast_dev_run:
            return min(n, int(self.config.fast_dev_run))
        if isinstance(limit, float):
            return min(n, max(1, int(n * limit)))
        return n if limit is None else min(n, int(limit))

    def _rng(self, fold: int) -> AbstractContextManager[None]:
        return self.rngs[fold].active() if self.rngs is not None else nullcontext()

    def _batches(self, fold: int, loader: Any, count: int) -> Iterator[Any]:
        """Yield ``count`` batches of ``loader``, drawn in the fold's random stream ``_PREFETCH`` at a time."""
        it: Iterator[Any] | None = None
        left = count
        while left > 0:
            want = min(left, _PREFETCH)
            with self._rng(fold):  # switching streams costs ~0.1-1 ms: once per chunk, not per batch
                it = iter(loader) if it is None else it
                chunk = list(itertools.islice(it, want))
            if len(chunk) < want:
                raise LcvError(f"Fold {fold}'s loader yielded fewer batches than its len() ({count}).")
            left -= want
            for batch in chunk:
                yield _prepare(batch, loader, self.fabric)

    def _steps(self, split: int, counts: list[int]) -> Iterator[list[_Group]]:
        """Yield each step's groups of fold batches of the training (``split=0``) or validation loaders."""
        loaders = [pair[split] for pair in self.loaders]
        if _Gather.usable(loaders):
            yield from _Gather(loaders).steps(counts, self.fabric)
            return
        iters = [self._batches(i, loader, counts[i]) for i, loader in enumerate(loaders)]
        for batch_idx in range(max(counts)):
            yield _group([(f, next(iters[f])) for f in range(self.k) if batch_idx < counts[f]])

    def _full_params(self) -> dict[str, torch.Tensor]:
        if len(self.cohorts) == 1:
            return self.cohorts[0].params
        return {n: torch.cat([c.params[n] for c in self.cohorts]) for n in self.cohorts[0].params}

    def _select(self, params: dict[str, torch.Tensor], folds: list[int]) -> dict[str, torch.Tensor]:
        if self._in_order and len(folds) == self.k:  # a group's folds are distinct and sorted: all of them
            return params
        positions = [self._position[f] for f in folds]
        if positions == list(range(self.k)):
            return params
        return _rows(params, positions, self.device)

    def _select_buffers(self, folds: list[int]) -> dict[str, torch.Tensor]:
        if len(folds) == self.k or not self.buffers:
            return self.buffers
        return _rows(self.buffers, folds, self.device)

    def _train_step(self, batch_idx: int, groups: list[_Group]) -> None:
        params = self._full_params()
        losses: list[torch.Tensor] = []
        for group in groups:
            with _precision(self.fabric):
                loss, entries, values = self._stepper(
                    "training", self._select(params, group.folds), self._select_buffers(group.folds), group, batch_idx
                )
            assert loss is not None  # training returns losses
            losses.append(loss)
            self._record(group, entries, values)
        # the backward pass of the folds' summed losses, without the sum: each fold's loss gets gradient 1
        torch.autograd.backward(losses, [self._one(loss) for loss in losses])
        stepping = {f for group in groups for f in group.folds}
        cfg = self.config
        clip = cfg.gradient_clip_val or None
        for cohort in self.cohorts:
            if cohort.folds[0] not in stepping:
                continue
            if clip is not None:
                cohort.clip(
                    clip if cfg.gradient_clip_algorithm == "norm" else None,
                    clip if cfg.gradient_clip_algorithm == "value" else None,
                )
            cohort.step()
            if self._step_schedulers(cohort):
                cohort.sync_hyperparameters()

    def _one(self, loss: torch.Tensor) -> torch.Tensor:
        key = (loss.shape, loss.dtype)
        ones = self._ones.get(key)
        if ones is None or ones.device != loss.device:
            ones = self._ones[key] = torch.ones_like(loss)
        return ones

    def _step_schedulers(self, cohort: Cohort) -> bool:
        steps = self.global_steps
        for fold in cohort.folds:
            steps[fold] += 1
        if not self._step_interval:
            return False
        stepped = False
        for fold in cohort.folds:
            for sched in self._specs[fold][1]:
                if sched.interval == "step" and self.global_steps[fold] % sched.frequency == 0:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # the fold's own optimizer does not step: ours does
                        sched.scheduler.step()  # type: ignore[call-arg]
                    stepped = True
        return stepped

    def _record(self, group: _Group, entries: list[LogEntry], values: list[LogValue]) -> None:
        if not entries:
            return
        folds, sizes = group.folds, group.sizes
        index = None if len(folds) == self.k else torch.tensor(folds, device=self.device)
        for (name, reduce, on_step, on_epoch, batch_size), value in zip(entries, values, strict=True):
            if isinstance(value, torch.Tensor) and value.requires_grad:
                value = value.detach()
            if on_step:
                now = Deferred.resolve([value])[0]
                self._log.steps.append((list(folds), [self.global_steps[f] for f in folds], name, now.reshape(-1)))
            if on_epoch:
                self._log.add(
                    name, reduce, index, value, sizes if batch_size is None else [float(batch_size)] * len(sizes)
                )

    def _hooks(self, hook: str) -> None:
        if not _overrides(self.modules[0], hook):
            return
        for fold, m in enumerate(self.modules):
            routed = _HookLog(self._log, fold)
            saved: dict[str, Any] = {k: m.__dict__[k] for k in ("log", "log_dict") if k in m.__dict__}
            m.log, m.log_dict = routed.log, routed.log_dict  # type: ignore[method-assign, assignment]  # same keywords
            try:
                getattr(m, hook)()
            finally:
                for k in ("log", "log_dict"):
                    m.__dict__.pop(k, None)
                m.__dict__.update(saved)


__all__ = ["ELEMENTWISE_OPTIMIZERS", "VectorizedFolds", "can_vectorize"]
