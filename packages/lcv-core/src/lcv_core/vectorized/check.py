"""Whether fold models can train as one batched computation (``schedule='vectorized'``), and why not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import nn

from lcv_config import TrainerConfig
from lcv_core.core.lightning_compat import parse_optimizers, scheduler_configs, unwrap_optimizer
from lcv_core.core.loader_state import kept_loader_state
from lcv_core.vectorized.batches import _Group, _precision, _prepare
from lcv_core.vectorized.grouped import make_stepper

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
_PRECISIONS = {"32-true", "32", "64-true", "64", "None"}

OptimizerSpec = tuple[Sequence[Any], Sequence[LRSchedulerConfig]]


def _unwrap(optimizer: Any) -> torch.optim.Optimizer:
    return unwrap_optimizer(optimizer)  # type: ignore[no-any-return]


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
            are tried under ``vmap`` (or the configurable learner's grouped step) on fold 0's first batches
            (in a forked random state, no weight changes).
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
            opts, lr_schedulers, monitor = parse_optimizers(conf)
            scheds = scheduler_configs(lr_schedulers, monitor, automatic=True) if len(opts) == 1 else []
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
    stepper = make_stepper(pair)
    params = {
        n: stepper.stored(n, torch.stack([m.get_parameter(n).detach() for m in pair]))
        for n, _ in pair[0].named_parameters()
    }
    buffers = {n: torch.stack([m.get_buffer(n) for m in pair]) for n, _ in pair[0].named_buffers()}
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
                stepper.discard_metrics()  # the trial's batch must not count in the first epoch's metrics


def _first_batch(loader: Any) -> Any:
    """Return the loader's first batch, leaving its shuffling state as it was.

    Iterating counts an epoch (lcv-data's loaders, also a class-level counter) and draws from the loader's
    generator; without the restore the trial would shift fold 0's batch order against the other schedules.
    """
    with kept_loader_state([loader]):
        return next(iter(loader))
