"""The ``vectorized`` schedule: the k fold models trained as one batched computation.

For small models the cost of a fold loop is Python overhead per step, not arithmetic; running the k folds
as one computation removes (k-1)/k of it. The fold models' parameters are stacked along a new leading fold
dimension (``torch.func.stack_module_state``) and the user's **unmodified** ``training_step`` and
``validation_step`` run under ``torch.func.vmap(functional_call)``, each fold on its own batch.

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
            engine.write_back()                          # before snapshots, checkpoints, predictions
        engine.write_back()

Semantics and choices:

- **Optimizer.** One optimizer per *cohort* over the cohort's stacked parameters, of the class and with the
  hyperparameters (and parameter groups) of the folds' own ``configure_optimizers()``; fused where torch has it
  and the user left ``fused`` unset. Only elementwise optimizers (SGD, Adam, AdamW, ...) are accepted, so each
  fold's update is exactly what its own optimizer would do. A cohort is the set of folds with the same number
  of training batches per epoch: folds of one cohort always step together, so optimizer step counts (Adam's
  bias correction) stay exact per fold. Usually all folds form one cohort.
- **Ragged batches.** Step ``i`` stacks batch ``i`` of every fold that has one. Folds whose batches differ in
  shape (a smaller last batch) run as separate ``vmap`` calls on slices of the same stacked parameters; the
  losses are summed (the folds are independent, so each fold gets its own gradient) and one backward pass and
  one optimizer step per cohort follow. A fold whose loader is exhausted sits the step out.
- **Gradient clipping** is per fold: the norm is taken over each fold's slice, as ``clip_grad_norm_`` does for
  one model; value clipping is elementwise anyway.
- **Schedulers.** The folds' own schedulers stay the source of truth: step-interval schedulers are stepped here,
  epoch-interval ones by the caller (:meth:`VectorizedFolds.step_epoch_schedulers` or the trainer's own code),
  and the stacked optimizer takes the learning rates of the folds' optimizers before every epoch.
  ``ReduceLROnPlateau`` is accepted only when it monitors a fold mean (``cv/...``): per-fold plateaus would give
  folds of one optimizer different learning rates.
- **self.log** is intercepted; values come out of ``vmap`` with a fold dimension and are reduced per fold on
  device (``mean`` weighted by batch size, ``sum``, ``max``, ``min``), as ``FoldMetricLog`` does.
- **Random streams.** Each fold's batches are drawn inside its own :class:`~lcv_core._rng.FoldRNG`, so batch
  order equals the interleaved schedule's. Dropout masks come from the global generator under
  ``vmap(randomness="different")``: same distribution, other numbers than the interleaved schedule.
- Non-tensor attributes of the module (``self.lr``, ``self.hparams``) are read from fold 0's module.
- Per-batch module hooks are not called; modules that override them fall back. Epoch hooks
  (``on_train_epoch_start`` ...) are called on every fold's module, with ``self.log`` routed to that fold.
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.plugins.precision import Precision
from lightning.fabric.wrappers import _FabricDataLoader, _FabricOptimizer
from lightning.pytorch import LightningModule
from lightning.pytorch.core.optimizer import _configure_optimizers, _configure_schedulers_automatic_opt
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import nn
from torch.func import functional_call, vmap
from torchmetrics import Metric

from lcv_config import LcvError, TrainerConfig
from lcv_core._logging import FoldMetricLog, batch_size_of, checked_scalar, on_device
from lcv_core._rng import FoldRNG

ELEMENTWISE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
    torch.optim.Rprop,
)
"""Optimizers whose update of one element depends only on that element: stacking folds keeps per-fold updates."""

_FUSED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad)
_PER_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "backward",
    "optimizer_step",
    "optimizer_zero_grad",
    "configure_gradient_clipping",
)
_EPOCH_HOOKS = ("on_train_epoch_start", "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end")
_PRECISIONS = {"32-true", "32", "64-true", "64", "None"}
_PREFETCH = 32
_NO_SYNC = ("params", "fused", "foreach", "capturable", "differentiable")

OptimizerSpec = tuple[Sequence[Any], Sequence[LRSchedulerConfig]]


def _unwrap(optimizer: Any) -> torch.optim.Optimizer:
    return optimizer.optimizer if isinstance(optimizer, _FabricOptimizer) else optimizer


def _hparams(optimizer: torch.optim.Optimizer) -> list[dict[str, str]]:
    return [{k: repr(v) for k, v in g.items() if k not in ("params", "initial_lr")} for g in optimizer.param_groups]


def _overrides(module: LightningModule, hook: str) -> bool:
    return getattr(type(module), hook, None) is not getattr(LightningModule, hook, None)


def can_vectorize(
    modules: Sequence[LightningModule],
    loaders: Sequence[tuple[Any, Any]] | None = None,
    config: TrainerConfig | None = None,
    optimizers: Sequence[OptimizerSpec] | None = None,
    fabric: Fabric | None = None,
) -> str | None:
    """Return ``None`` when the fold modules can train as one batched computation, else a one-line reason.

    Args:
        modules: The fold models.
        loaders: The folds' ``(train, val)`` loaders; when given, ``training_step`` and ``validation_step``
            are tried under ``vmap`` on fold 0's first batches (in a forked random state, no weight changes).
        config: The trainer config (precision, strategy, gradient accumulation).
        optimizers: Each fold's ``(optimizers, scheduler configs)``, when already built; else
            ``configure_optimizers()`` is called.
        fabric: The trainer's Fabric (device and precision of the trial batches).
    """
    try:
        _static_check(modules, config, optimizers)
        if loaders is not None:
            _trial(modules, loaders, fabric)
    except _CannotVectorizeError as exc:
        return str(exc)
    return None


class _CannotVectorizeError(Exception):
    """A reason why folds cannot be vectorized."""


def _static_check(
    modules: Sequence[LightningModule], config: TrainerConfig | None, optimizers: Sequence[OptimizerSpec] | None
) -> list[tuple[torch.optim.Optimizer, list[LRSchedulerConfig]]]:
    if not modules:
        raise _CannotVectorizeError("no fold models")
    first = modules[0]
    name = type(first).__name__
    if any(type(m) is not type(first) for m in modules):
        raise _CannotVectorizeError("the fold models are not all of one class")
    if not first.automatic_optimization:
        raise _CannotVectorizeError(f"{name} uses manual optimization (self.automatic_optimization = False)")
    for hook in _PER_BATCH_HOOKS:
        if _overrides(first, hook):
            raise _CannotVectorizeError(
                f"{name} overrides {hook}(), a per-batch hook the vectorized schedule does not call"
            )
    if config is not None:
        if config.accumulate_grad_batches > 1:
            raise _CannotVectorizeError(
                f"accumulate_grad_batches={config.accumulate_grad_batches} (only 1 is vectorized)"
            )
        if str(config.precision) not in _PRECISIONS:
            raise _CannotVectorizeError(f"precision={config.precision!r} (vectorized runs 32-true or 64-true)")
        if config.num_nodes > 1 or config.strategy not in ("auto", "single_device"):
            raise _CannotVectorizeError(
                f"strategy={config.strategy!r} with {config.num_nodes} node(s) (one device only)"
            )
    shapes = {n: (p.shape, p.dtype, p.device) for n, p in first.named_parameters()}
    if not shapes:
        raise _CannotVectorizeError(f"{name} has no parameters")
    for i, m in enumerate(modules):
        other = {n: (p.shape, p.dtype, p.device) for n, p in m.named_parameters()}
        if other != shapes:
            raise _CannotVectorizeError(f"fold {i}'s parameters differ in names, shapes or dtypes from fold 0's")
    for mod_name, sub in first.named_modules():
        if isinstance(sub, nn.modules.batchnorm._NormBase) and sub.track_running_stats:
            raise _CannotVectorizeError(
                f"{type(sub).__name__} '{mod_name}' updates running statistics in training "
                "(use track_running_stats=False, GroupNorm or LayerNorm)"
            )
    specs: list[tuple[torch.optim.Optimizer, list[LRSchedulerConfig]]] = []
    for i, m in enumerate(modules):
        if optimizers is not None:
            opts, scheds = list(optimizers[i][0]), list(optimizers[i][1])
        else:
            conf = m.configure_optimizers()
            if conf is None:
                raise _CannotVectorizeError(f"{name}.configure_optimizers() returned None")
            opts, lr_schedulers, monitor = _configure_optimizers(conf)  # type: ignore[arg-type]  # parses every shape
            scheds = _configure_schedulers_automatic_opt(lr_schedulers, monitor) if len(opts) == 1 else []
        if len(opts) != 1:
            raise _CannotVectorizeError(
                f"{name}.configure_optimizers() returns {len(opts)} optimizers (one is vectorized)"
            )
        opt = _unwrap(opts[0])
        if type(opt) not in ELEMENTWISE_OPTIMIZERS:
            allowed = ", ".join(c.__name__ for c in ELEMENTWISE_OPTIMIZERS)
            raise _CannotVectorizeError(f"optimizer {type(opt).__name__} is not elementwise (vectorized: {allowed})")
        for sched in scheds:
            if sched.reduce_on_plateau and not (sched.monitor or "").startswith("cv/"):
                raise _CannotVectorizeError(
                    f"ReduceLROnPlateau monitors the per-fold '{sched.monitor}' (folds of one optimizer need one "
                    "learning rate; monitor a fold mean cv/<name>_mean)"
                )
        specs.append((opt, scheds))
    if any(_hparams(o) != _hparams(specs[0][0]) for o, _ in specs):
        raise _CannotVectorizeError("the folds' optimizers have different hyperparameters")
    return specs


def _trial(
    modules: Sequence[LightningModule],
    loaders: Sequence[tuple[Any, Any]],
    fabric: Fabric | None,
) -> None:
    pair = list(modules[:2]) if len(modules) > 1 else [modules[0], modules[0]]
    params = {n: torch.stack([m.get_parameter(n).detach() for m in pair]) for n, _ in pair[0].named_parameters()}
    buffers = {n: torch.stack([m.get_buffer(n) for m in pair]) for n, _ in pair[0].named_buffers()}
    stepper = _Stepper(pair[0])
    was_training = pair[0].training
    with torch.random.fork_rng(devices=[]):
        for stage, loader in zip(("training", "validation"), loaders[0], strict=True):
            if stage == "validation" and not _overrides(pair[0], "validation_step"):
                continue
            try:
                batch = _prepare(_first_batch(loader), loader, fabric)
            except StopIteration:
                continue
            pair[0].train(stage == "training")
            try:
                with torch.set_grad_enabled(stage == "training"), _precision(fabric):
                    stepper(stage, params, buffers, _Group.of([0, 1], [batch, batch]), 0)
            except Exception as exc:  # any failure means: this step does not run under vmap
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise _CannotVectorizeError(
                    f"{type(pair[0]).__name__}.{stage}_step fails under torch.func.vmap: {type(exc).__name__}: "
                    f"{message[:200]}"
                ) from exc
            finally:
                pair[0].train(was_training)


def _first_batch(loader: Any) -> Any:
    """Return the loader's first batch, leaving its shuffling state as it was.

    Iterating counts an epoch (lcv-data's loaders) or draws from the loader's generator (a ``DataLoader`` with
    ``generator=``); without the restore the trial would shift fold 0's batch order against the other schedules.
    Wrappers (Fabric's ``_dataloader``, lcv-data's ``loader``) are followed to the loader that keeps the state.
    """
    chain: list[Any] = []
    obj = loader
    while obj is not None and all(obj is not seen for seen in chain):
        chain.append(obj)
        attrs = getattr(obj, "__dict__", {})
        obj = attrs.get("_dataloader", attrs.get("loader"))
    holders = [
        h
        for o in chain
        for h in (o, getattr(o, "sampler", None), getattr(getattr(o, "batch_sampler", None), "sampler", None))
    ]
    generators = {id(g): g for h in holders if isinstance(g := getattr(h, "generator", None), torch.Generator)}
    saved = [(g, g.get_state()) for g in generators.values()]
    epochs = [(o, o.__dict__["epoch"]) for o in chain if isinstance(getattr(o, "__dict__", {}).get("epoch"), int)]
    try:
        return next(iter(loader))
    finally:
        for g, state in saved:
            g.set_state(state)
        for o, epoch in epochs:
            o.epoch = epoch


def _prepare(batch: Any, loader: Any, fabric: Fabric | None) -> Any:
    if fabric is None:
        return batch
    if not isinstance(loader, _FabricDataLoader) and not on_device(batch, fabric.device):
        batch = fabric.to_device(batch)  # Fabric's loaders move batches themselves
    precision = fabric.strategy.precision
    return batch if type(precision) is Precision else precision.convert_input(batch)


def _precision(fabric: Fabric | None) -> AbstractContextManager[Any]:
    return fabric.strategy.precision.forward_context() if fabric is not None else nullcontext()


class _StepCall(nn.Module):
    """Holds the template module so ``functional_call`` can run its ``*_step`` methods, not only ``forward``."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.m = module

    def forward(self, stage: str, batch: Any, batch_idx: int) -> Any:
        """Run the template module's ``<stage>_step``."""
        return getattr(self.m, f"{stage}_step")(batch, batch_idx)


class _Slots:
    """Where the template's parameters and buffers are registered, to swap the folds' stacked tensors in and out.

    ``functional_call`` does this in general at a few hundred µs a call; here the registration dicts are
    updated directly. A tensor registered in several places (tied weights) gets the same stacked tensor in each.
    ``None`` from :meth:`of` when a submodule is parametrized (``torch.nn.utils.parametrize``): those go through
    ``functional_call``.
    """

    def __init__(self, slots: list[tuple[dict[str, Any], str, str]]) -> None:
        self.slots = slots

    @classmethod
    def of(cls, module: nn.Module) -> _Slots | None:
        """Return the slots of ``module``, or ``None`` when only ``functional_call`` can swap its tensors."""
        from torch.nn.utils import parametrize

        names = {id(t): n for n, t in module.named_parameters()} | {id(t): n for n, t in module.named_buffers()}
        slots: list[tuple[dict[str, Any], str, str]] = []
        for _, sub in module.named_modules(remove_duplicate=False):
            if parametrize.is_parametrized(sub):
                return None
            for registry in (sub._parameters, sub._buffers):
                slots.extend((registry, key, names[id(t)]) for key, t in registry.items() if t is not None)
        return cls(slots)

    def call(self, state: Mapping[str, torch.Tensor], fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` with ``state``'s tensors in place of the module's own, then put those back."""
        saved = [(registry, key, registry[key]) for registry, key, _ in self.slots]
        try:
            for registry, key, name in self.slots:
                registry[key] = state[name]
            return fn(*args)
        finally:
            for registry, key, old in reversed(saved):
                registry[key] = old


class _Recorder:
    """Stands in for ``self.log`` inside ``vmap``: remembers names and options, returns the values as outputs."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, bool, bool, int | None]] = []
        self.values: list[torch.Tensor] = []

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record one value, with the signature of ``LightningModule.log``."""
        if isinstance(value, Metric):
            raise LcvError(f"self.log('{name}', <torchmetrics Metric>) cannot run per fold inside one batched step")
        if isinstance(value, torch.Tensor) and reduce_fx == "mean" and value.numel() == 1:
            reduce = "mean"  # the common case: no tensor op here (each costs more under vmap); detached outside
        else:
            reduce, value = checked_scalar(name, value, reduce_fx)
        self.entries.append((name, reduce, bool(on_step), on_epoch is not False, batch_size))
        self.values.append(value)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values, with the signature of ``LightningModule.log_dict``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)


def _signature(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return (tuple(batch.shape), batch.dtype, batch.device)
    if isinstance(batch, Mapping):
        return tuple((k, _signature(v)) for k, v in batch.items())
    if isinstance(batch, (list, tuple)):
        return (type(batch).__name__, tuple(_signature(v) for v in batch))
    return ("leaf", repr(batch))


def _stack(batches: Sequence[Any]) -> tuple[Any, Any]:
    """Stack a list of same-shaped batches along a new fold dimension; return ``(stacked, in_dims)``."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(batches)), 0
    if isinstance(first, Mapping):
        parts = {k: _stack([b[k] for b in batches]) for k in first}
        return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}
    if isinstance(first, (list, tuple)):
        items = [_stack([b[i] for b in batches]) for i in range(len(first))]
        return type(first)(v[0] for v in items), type(first)(v[1] for v in items)
    return first, None


class _Group:
    """Folds whose batches of one step have the same shapes, their batches stacked along a new fold dimension."""

    __slots__ = ("batch", "folds", "in_dims", "sizes")

    def __init__(self, folds: list[int], batch: Any, in_dims: Any, sizes: list[float]) -> None:
        self.folds = folds
        self.batch = batch
        self.in_dims = in_dims
        self.sizes = sizes
        """Each fold's batch size (the weight of its logged values)."""

    @classmethod
    def of(cls, folds: list[int], batches: Sequence[Any]) -> _Group:
        """Stack the batches of ``folds``."""
        batch, in_dims = _stack(batches)
        return cls(folds, batch, in_dims, [float(max(1, batch_size_of(b))) for b in batches])


class _Gather:
    """All folds' batches of a step as one indexing operation on the dataset's tensors (lcv-data's fast path).

    Usable when every fold's loader is an lcv-data ``TensorBatchLoader`` (it has ``epoch_order()``) over the
    same tensors, with the same batch size and no fitted transforms: the batch of step ``b`` of every fold is
    then ``tensors[index]`` with ``index`` of shape ``(k, batch)``, already stacked for ``vmap``. Batch order
    is the loaders' own (``epoch_order()`` advances their epoch as iterating would). Steps where a fold's batch
    is smaller (the last one) or missing are served per fold.
    """

    def __init__(self, loaders: Sequence[Any]) -> None:
        self.loaders = list(loaders)
        first = self.loaders[0]
        self.tensors = first.tensors
        self.batch_size = int(first.batch_size)

    @staticmethod
    def usable(loaders: Sequence[Any]) -> bool:
        """Whether the loaders qualify (see the class docstring)."""
        first = loaders[0]
        return all(
            callable(getattr(loader, "epoch_order", None))
            and getattr(loader, "tensors", None) is getattr(first, "tensors", None)
            and getattr(loader, "batch_size", None) == getattr(first, "batch_size", None)
            and getattr(loader, "transform", None) is None
            and getattr(loader, "target_transform", None) is None
            for loader in loaders
        )

    def _take(self, index: torch.Tensor) -> Any:
        if isinstance(self.tensors, dict):
            return {k: t[index] for k, t in self.tensors.items()}
        return tuple(t[index] for t in self.tensors)

    def steps(self, counts: list[int], fabric: Fabric | None) -> Iterator[list[_Group]]:
        """Yield the groups of every step of one epoch; fold ``f`` takes part in its first ``counts[f]`` steps."""
        orders = [loader.epoch_order() for loader in self.loaders]
        bs, k = self.batch_size, len(orders)
        full = min(min(len(o) // bs for o in orders), min(counts))  # steps where every fold has a whole batch
        stacked = torch.stack([o[: full * bs].view(full, bs) for o in orders], dim=1) if full else None
        in_dims = {key: 0 for key in self.tensors} if isinstance(self.tensors, dict) else (0,) * len(self.tensors)
        sizes = [float(bs)] * k
        every = list(range(k))
        for b in range(max(counts)):
            if stacked is not None and b < full:
                batch = _prepare(self._take(stacked[b]), None, fabric)
                yield [_Group(every, batch, in_dims, sizes)]
                continue
            items = [(f, self._take(o[b * bs : (b + 1) * bs])) for f, o in enumerate(orders) if b < counts[f]]
            yield _group([(f, _prepare(batch, None, fabric)) for f, batch in items])


def _group(items: list[tuple[int, Any]]) -> list[_Group]:
    """Split one step's ``(fold, batch)`` items into groups of same-shaped batches, stacked."""
    groups: dict[Any, tuple[list[int], list[Any]]] = {}
    for fold, batch in items:
        folds, batches = groups.setdefault(_signature(batch), ([], []))
        folds.append(fold)
        batches.append(batch)
    return [_Group.of(folds, batches) for folds, batches in groups.values()]


class _Stepper:
    """Runs ``<stage>_step`` of the template module under ``vmap`` over stacked parameters and batches."""

    def __init__(self, module: LightningModule) -> None:
        self.module = module
        self.call = _StepCall(module)
        self.slots = _Slots.of(module)
        self.recorder = _Recorder()

    def __call__(
        self,
        stage: str,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        group: _Group,
        batch_idx: int,
    ) -> tuple[torch.Tensor | None, list[tuple[str, str, bool, bool, int | None]], list[torch.Tensor]]:
        """Return the per-fold losses (``None`` in validation), the log entries and their per-fold values."""
        batch, in_dims = group.batch, group.in_dims
        slots, recorder = self.slots, self.recorder
        if slots is None:
            state = {f"m.{n}": t for n, t in params.items()} | {f"m.{n}": t for n, t in buffers.items()}
        else:
            state = params | buffers if buffers else params
        method = getattr(self.module, f"{stage}_step")

        def step(state: dict[str, torch.Tensor], batch: Any) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            recorder.entries, recorder.values = [], []
            if slots is None:
                out = functional_call(self.call, state, (stage, batch, batch_idx))
            else:
                out = slots.call(state, method, batch, batch_idx)
            if stage != "training":
                return torch.zeros(()), tuple(recorder.values)
            loss = out["loss"] if isinstance(out, Mapping) else out
            if not isinstance(loss, torch.Tensor):
                raise LcvError(f"training_step returned {type(out).__name__}; the vectorized schedule needs a loss.")
            return loss, tuple(recorder.values)

        # self.log goes to the recorder; set in the instance dict directly (nn.Module.__setattr__ is slow)
        attrs = self.module.__dict__
        saved: dict[str, Any] = {k: attrs[k] for k in ("log", "log_dict") if k in attrs}
        attrs["log"], attrs["log_dict"] = recorder.log, recorder.log_dict
        try:
            loss, values = vmap(step, in_dims=(0, in_dims), randomness="different")(state, batch)
        finally:
            attrs.pop("log", None)
            attrs.pop("log_dict", None)
            attrs.update(saved)
        return (loss if stage == "training" else None), list(recorder.entries), list(values)


class _FoldsLog:
    """Epoch values logged by k folds, reduced per fold on device with one host read per epoch."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.k, self.device = k, device
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.reduce_fx: dict[str, str] = {}
        self.pending: dict[str, list[tuple[torch.Tensor, list[float]]]] = {}
        self.steps: list[tuple[list[int], list[int], str, torch.Tensor]] = []

    def start(self) -> None:
        """Forget the previous stage."""
        self.sums.clear()
        self.weights.clear()
        self.counts.clear()
        self.reduce_fx.clear()
        self.pending.clear()
        self.steps.clear()

    def add(
        self,
        name: str,
        reduce: str,
        folds: torch.Tensor | None,
        values: torch.Tensor,
        weights: torch.Tensor | list[float],
    ) -> None:
        """Accumulate ``values`` (one per fold in ``folds``, all folds when ``None``) weighted by ``weights``.

        Values of all folds are only kept until the end of the stage (or ``FoldMetricLog.FLUSH_EVERY`` of them)
        and then reduced together; a subset of folds (a ragged last batch) is accumulated at once.
        """
        if name not in self.sums:
            fill = {"mean": 0.0, "sum": 0.0, "max": -math.inf, "min": math.inf}[reduce]
            self.sums[name] = torch.full((self.k,), fill, device=self.device)
            self.weights[name] = torch.zeros(self.k, device=self.device)
            self.counts[name] = torch.zeros(self.k, device=self.device)
            self.reduce_fx[name] = reduce
        elif self.reduce_fx[name] != reduce:
            raise LcvError(
                f"self.log('{name}', ...) was logged with reduce_fx={self.reduce_fx[name]!r} and then {reduce!r} "
                "in the same epoch; log a metric with one reduction."
            )
        if folds is None:
            pending = self.pending.setdefault(name, [])
            pending.append((values, weights if isinstance(weights, list) else weights.tolist()))
            if len(pending) >= FoldMetricLog.FLUSH_EVERY:
                self._flush(name)
            return
        self._accumulate(name, folds, values, weights)

    def _flush(self, name: str) -> None:
        pending = self.pending.pop(name, [])
        if not pending:
            return
        values = torch.stack([v.reshape(self.k).to(self.device, torch.float32) for v, _ in pending])
        weights = torch.tensor([w for _, w in pending], dtype=torch.float32, device=self.device)
        self.counts[name] += len(pending)
        reduce = self.reduce_fx[name]
        self.weights[name] += weights.sum(0)
        if reduce == "mean":
            self.sums[name] += (values * weights).sum(0)
        elif reduce == "sum":
            self.sums[name] += values.sum(0)
        else:
            op = torch.maximum if reduce == "max" else torch.minimum
            self.sums[name] = op(self.sums[name], values.amax(0) if reduce == "max" else values.amin(0))

    def _accumulate(
        self, name: str, folds: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | list[float]
    ) -> None:
        reduce = self.reduce_fx[name]
        values = values.reshape(-1).to(self.device, torch.float32)  # as FoldMetricLog: epoch values in float32
        weights = torch.as_tensor(weights, dtype=torch.float32).to(self.device)
        ones = torch.ones_like(values)
        self.counts[name].index_add_(0, folds, ones)
        self.weights[name].index_add_(0, folds, weights)
        if reduce in ("mean", "sum"):
            self.sums[name].index_add_(0, folds, values * weights if reduce == "mean" else values)
        else:
            op = torch.maximum if reduce == "max" else torch.minimum
            self.sums[name][folds] = op(self.sums[name][folds], values)

    def reduce(self) -> list[dict[str, float]]:
        """Return each fold's epoch values."""
        for name in list(self.pending):
            self._flush(name)
        out: list[dict[str, float]] = [{} for _ in range(self.k)]
        names = list(self.sums)
        if not names:
            return out
        rows = []
        for n in names:
            value = self.sums[n] / self.weights[n] if self.reduce_fx[n] == "mean" else self.sums[n]
            rows.append(torch.stack([value, self.counts[n]]))
        table = torch.stack(rows).cpu().tolist()
        for n, (values, counts) in zip(names, table, strict=True):
            for fold in range(self.k):
                if counts[fold] > 0:
                    out[fold][n] = values[fold]
        return out

    def step_values(self, fold: int) -> list[tuple[int, dict[str, float]]]:
        """Return fold ``fold``'s ``on_step`` values as ``(step, {name: value})`` rows."""
        rows: dict[int, dict[str, float]] = {}
        for folds, steps, name, values in self.steps:
            if fold in folds:
                rows.setdefault(steps[folds.index(fold)], {})[name] = float(values[folds.index(fold)])
        return list(rows.items())


class _HookLog:
    """``self.log`` of one fold's module in its epoch hooks, routed into the folds' log."""

    def __init__(self, log: _FoldsLog, fold: int) -> None:
        self._log, self._fold = log, fold

    def log(self, name: str, value: Any, reduce_fx: Any = "mean", batch_size: int | None = None, **_: Any) -> None:
        """Record one value of this fold."""
        reduce = reduce_fx if isinstance(reduce_fx, str) else getattr(reduce_fx, "__name__", "mean")
        tensor = value.detach().reshape(1).float() if isinstance(value, torch.Tensor) else torch.tensor([float(value)])
        weight = torch.tensor([float(batch_size or 1)], device=self._log.device)
        self._log.add(name, reduce, torch.tensor([self._fold], device=self._log.device), tensor, weight)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values of this fold."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)


class _Cohort:
    """Folds with the same number of training batches per epoch: one stacked parameter set, one optimizer."""

    def __init__(
        self,
        folds: list[int],
        modules: Sequence[LightningModule],
        specs: list[tuple[torch.optim.Optimizer, list[LRSchedulerConfig]]],
    ) -> None:
        self.folds = folds
        template = modules[folds[0]]
        self.params: dict[str, torch.Tensor] = {}
        for name, p in template.named_parameters():
            stacked = torch.stack([modules[i].get_parameter(name).detach() for i in folds]).clone()
            self.params[name] = stacked.requires_grad_(p.requires_grad)
        originals = [specs[i][0] for i in folds]
        self.originals = originals
        names = {id(p): n for n, p in template.named_parameters()}
        self.param_names: list[list[str]] = [[names[id(p)] for p in g["params"]] for g in originals[0].param_groups]
        opt = originals[0]
        accepted = inspect.signature(type(opt).__init__).parameters
        defaults = {k: v for k, v in opt.defaults.items() if k in accepted}
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": [self.params[n] for n in group_names]}
            for g, group_names in zip(opt.param_groups, self.param_names, strict=True)
        ]
        if type(opt) in _FUSED and defaults.get("fused") is None and not defaults.get("foreach"):
            defaults["fused"] = True
            for g in groups:
                g["fused"] = True
        self.optimizer: torch.optim.Optimizer = type(opt)(groups, **defaults)
        self.load_optimizer_state()

    def load_optimizer_state(self) -> None:
        """Stack the folds' optimizer states (empty before the first step) into the stacked optimizer."""
        templates = [m for m in self.originals]
        for gi, group in enumerate(self.optimizer.param_groups):
            for pi, stacked in enumerate(group["params"]):
                states = [o.state.get(o.param_groups[gi]["params"][pi]) for o in templates]
                if not all(states):
                    continue
                first = states[0]
                assert first is not None  # checked by all() above
                merged: dict[str, Any] = {}
                for key, value in first.items():
                    if isinstance(value, torch.Tensor) and value.ndim > 0:
                        merged[key] = torch.stack([s[key] for s in states if s is not None])
                    else:
                        merged[key] = value.clone() if isinstance(value, torch.Tensor) else value
                self.optimizer.state[stacked] = merged

    def sync_hyperparameters(self) -> None:
        """Take the learning rate & co. from the folds' own optimizers (their schedulers step those)."""
        first = self.originals[0]
        for other, fold in zip(self.originals[1:], self.folds[1:], strict=True):
            for g0, g in zip(first.param_groups, other.param_groups, strict=True):
                if g0.get("lr") != g.get("lr"):
                    raise LcvError(
                        f"Fold {fold}'s learning rate {g.get('lr')} differs from fold {self.folds[0]}'s {g0.get('lr')}"
                        "; the vectorized schedule needs one learning rate per step for all folds. Use "
                        "schedule='interleaved'."
                    )
        for g_new, g0 in zip(self.optimizer.param_groups, first.param_groups, strict=True):
            g_new.update({k: v for k, v in g0.items() if k not in _NO_SYNC})

    def clip(self, max_norm: float | None, clip_value: float | None) -> None:
        """Clip each fold's gradients on its own (norm over the fold's slice, or elementwise by value)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            return
        if clip_value is not None:
            for g in grads:
                g.clamp_(-clip_value, clip_value)
            return
        if max_norm is None:
            return
        k = len(self.folds)
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), dim=1) for g in grads], dim=1)
        total = torch.linalg.vector_norm(norms, dim=1)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))

    def write_back(self, modules: Sequence[LightningModule]) -> None:
        """Copy the stacked weights and optimizer state into each fold's module and optimizer."""
        with torch.no_grad():
            for j, fold in enumerate(self.folds):
                for name, stacked in self.params.items():
                    modules[fold].get_parameter(name).copy_(stacked[j])
        for j, original in enumerate(self.originals):
            for g_new, g_orig in zip(self.optimizer.param_groups, original.param_groups, strict=True):
                for p_new, p_orig in zip(g_new["params"], g_orig["params"], strict=True):
                    state = self.optimizer.state.get(p_new)
                    if not state:
                        continue
                    original.state[p_orig] = {
                        key: (value[j].clone() if value.ndim > 0 else value.clone())
                        if isinstance(value, torch.Tensor)
                        else value
                        for key, value in state.items()
                    }


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
        LcvError: The modules cannot be vectorized (the message says why; check with :func:`can_vectorize`).
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
        self._stepper = _Stepper(template)
        self._all_folds = list(range(self.k))
        self._log = _FoldsLog(self.k, self.device)
        counts = [self._count(tr, self.config.limit_train_batches, i) for i, (tr, _) in enumerate(self.loaders)]
        by_count: dict[int, list[int]] = {}
        for fold, count in enumerate(counts):
            by_count.setdefault(count, []).append(fold)
        self.train_batches = counts
        self.cohorts = [_Cohort(folds, self.modules, self._specs) for folds in by_count.values()]
        self._order = [f for c in self.cohorts for f in c.folds]
        self._position = {f: i for i, f in enumerate(self._order)}
        self.buffers = {n: torch.stack([m.get_buffer(n) for m in self.modules]) for n, _ in template.named_buffers()}

    # -- public API ---------------------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> list[dict[str, float]]:
        """Train every fold for one epoch; return each fold's epoch metrics (what its module logged)."""
        for cohort in self.cohorts:
            cohort.sync_hyperparameters()
        self._log.start()
        for m in self.modules:
            m.train()
        self._hooks("on_train_epoch_start")
        for batch_idx, groups in enumerate(self._steps(0, self.train_batches)):
            self._train_step(batch_idx, groups)
        self._hooks("on_train_epoch_end")
        return self._log.reduce()

    @torch.no_grad()
    def validate(self, epoch: int) -> list[dict[str, float]]:
        """Validate every fold (batched too); return each fold's validation metrics."""
        self._log.start()
        for m in self.modules:
            m.eval()
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
        for m in self.modules:
            m.train()
        return self._log.reduce()

    def step_values(self, fold: int) -> list[tuple[int, dict[str, float]]]:
        """Return fold ``fold``'s ``on_step=True`` values of the last stage as ``(step, {name: value})`` rows."""
        return self._log.step_values(fold)

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

    def write_back(self) -> None:
        """Copy the trained weights and optimizer states into each fold's module and optimizer."""
        for cohort in self.cohorts:
            cohort.write_back(self.modules)

    # -- internals ----------------------------------------------------------------------------------

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
        positions = [self._position[f] for f in folds]
        if positions == list(range(self.k)):
            return params
        index = torch.tensor(positions, device=self.device)
        return {n: t.index_select(0, index) for n, t in params.items()}

    def _select_buffers(self, folds: list[int]) -> dict[str, torch.Tensor]:
        if folds == list(range(self.k)) or not self.buffers:
            return self.buffers
        index = torch.tensor(folds, device=self.device)
        return {n: t.index_select(0, index) for n, t in self.buffers.items()}

    def _train_step(self, batch_idx: int, groups: list[_Group]) -> None:
        params = self._full_params()
        total: torch.Tensor | None = None
        for group in groups:
            with _precision(self.fabric):
                loss, entries, values = self._stepper(
                    "training", self._select(params, group.folds), self._select_buffers(group.folds), group, batch_idx
                )
            assert loss is not None  # training returns losses
            total = loss.sum() if total is None else total + loss.sum()
            self._record(group, entries, values)
        assert total is not None  # a step has at least one group
        torch.autograd.backward(total)
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
            cohort.optimizer.step()
            cohort.optimizer.zero_grad(set_to_none=True)
            if self._step_schedulers(cohort):
                cohort.sync_hyperparameters()

    def _step_schedulers(self, cohort: _Cohort) -> bool:
        stepped = False
        for fold in cohort.folds:
            self.global_steps[fold] += 1
            for sched in self._specs[fold][1]:
                if sched.interval == "step" and self.global_steps[fold] % sched.frequency == 0:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # the fold's own optimizer does not step: ours does
                        sched.scheduler.step()  # type: ignore[call-arg]
                    stepped = True
        return stepped

    def _record(
        self, group: _Group, entries: list[tuple[str, str, bool, bool, int | None]], values: list[torch.Tensor]
    ) -> None:
        if not entries:
            return
        folds, sizes = group.folds, group.sizes
        index = None if folds == self._all_folds else torch.tensor(folds, device=self.device)
        for (name, reduce, on_step, on_epoch, batch_size), value in zip(entries, values, strict=True):
            value = value.detach()
            if on_step:
                self._log.steps.append((list(folds), [self.global_steps[f] for f in folds], name, value.reshape(-1)))
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
