"""One fold's state during a fit, and the aggregation of fold metrics into the fold mean."""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.types import LRSchedulerConfig

from lcv_config import LcvError
from lcv_core.core.lightning_compat import unwrap_loader
from lcv_core.core.metric_log import FoldMetricLog
from lcv_core.core.rng import FoldRNG
from lcv_core.core.saving import cpu_state, cpu_tree, plain
from lcv_core.core.statistics import sample_std


@dataclass
class FoldState:
    """Everything one fold owns during a fit."""

    index: int
    """The fold's index."""
    module: LightningModule
    """The user's LightningModule for this fold (unwrapped)."""
    wrapped: Any
    """The module as returned by ``fabric.setup`` (precision, devices, DDP)."""
    optimizers: list[Any]
    """The fold's Fabric-wrapped optimizers."""
    schedulers: list[LRSchedulerConfig]
    """The fold's scheduler configs (``interval``, ``frequency``, ``monitor``)."""
    train_loader: Any
    """The fold's training batches."""
    val_loader: Any
    """The fold's validation batches."""
    rng: FoldRNG
    """The fold's own random stream (shuffling, dropout), independent of the schedule."""
    log: FoldMetricLog = field(default_factory=FoldMetricLog)
    """Collects the values the module logs."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch, the fold's epoch-level metrics."""
    global_step: int = 0
    """Optimizer steps taken."""
    view: Any = None
    """What the fold's module sees as ``self.trainer`` (a ``lcv_core.loop.fold_trainer.FoldTrainer``)."""
    lightning_steps: bool = False
    """Whether the module overrides a step hook (``optimizer_step``, ``backward``, ...), so its training steps go
    through Lightning's closure and hooks instead of the lean path."""
    lightning_callbacks: list[Any] = field(default_factory=list)
    """The run's Lightning callbacks (``lightning.pytorch.Callback``), called with this fold's view and module."""
    transfer_hooks: bool = False
    """Whether the module overrides a batch-transfer hook, so its batches go through Lightning's three hooks."""

    def state_dict(self) -> dict[str, Any]:
        """Return what continues this fold exactly: weights, optimizers, schedulers, history, steps, random stream.

        Tensors are CPU copies; everything loads with ``torch.load(weights_only=True)``.
        """
        return {
            "index": self.index,
            "model": cpu_state(self.module.state_dict()),
            "optimizers": [cpu_tree(opt.state_dict()) for opt in self.optimizers],
            "schedulers": [s.scheduler.state_dict() for s in self.schedulers],
            "epoch": len(self.history) - 1,
            "global_step": self.global_step,
            "history": [dict(row) for row in self.history],
            "rng": plain(self.rng.state_dict()),
            "loaders": [_loader_state(self.train_loader), _loader_state(self.val_loader)],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned into this fold's (already set up) module and optimizers."""
        self.module.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        for sched, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
            sched.scheduler.load_state_dict(sched_state)
        self.history = [dict(row) for row in state["history"]]
        self.global_step = int(state["global_step"])
        self.rng.load_state_dict(state["rng"])
        for loader, loader_state in zip((self.train_loader, self.val_loader), state.get("loaders", ()), strict=False):
            if loader_state is not None:
                unwrap_loader(loader).load_state_dict(loader_state)


def _loader_state(loader: Any) -> Any:
    """Return a loader's position and generator state (``state_dict()``, as lcv-data's loaders have), else ``None``.

    A loader without one (a plain ``DataLoader``) is resumed through the fold's random stream instead.
    """
    state_dict = getattr(unwrap_loader(loader), "state_dict", None)
    return cpu_tree(state_dict()) if callable(state_dict) else None


def aggregate(folds: list[FoldState], epoch: int) -> dict[str, float]:
    """Return every fold's metrics of ``epoch`` as ``fold_<i>/<name>``, with ``cv/<name>_mean`` and ``_std``.

    Folds stop together (decisions are taken on the fold mean), so every fold has a row for ``epoch``.
    """
    metrics: dict[str, float] = {}
    rows = [f.history[epoch] for f in folds]
    for f, row in zip(folds, rows, strict=True):
        metrics.update({f"fold_{f.index}/{k}": v for k, v in row.items()})
    for name in sorted(set.intersection(*(set(r) for r in rows))):
        values = [r[name] for r in rows]
        metrics[f"cv/{name}_mean"] = statistics.fmean(values)
        metrics[f"cv/{name}_std"] = sample_std(values)
    return metrics


def move_fold(fold: FoldState, device: torch.device | str) -> None:
    """Move a fold's parameters, buffers and optimizer state to ``device`` (the ``offload`` schedule)."""
    fold.module.to(device)
    for optimizer in fold.optimizers:
        inner = getattr(optimizer, "optimizer", optimizer)  # Fabric's wrapper keeps the real one here
        for group in inner.param_groups:
            # Adam & co keep "step" on the CPU unless fused or capturable; moving it would break their step()
            step_on_device = bool(group.get("fused") or group.get("capturable"))
            for param in group["params"]:
                for key, value in inner.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor) and (key != "step" or step_on_device):
                        inner.state[param][key] = value.to(device)


def check_monitor(monitor: str, metrics: Mapping[str, float]) -> None:
    """Refuse a ``monitor`` that no fold logged (called at the first validated epoch), listing what was logged.

    Raises:
        LcvError: ``cv/<monitor>_mean`` is not among ``metrics``.
    """
    if f"cv/{monitor}_mean" in metrics:
        return
    logged = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("fold_")})
    close = difflib.get_close_matches(monitor, logged, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise LcvError(
        f"TrainerConfig.monitor is '{monitor}', which no fold logged in its first validated epoch.{hint} "
        f"Logged: {', '.join(logged) or 'nothing'}. Set monitor= to one of them (and mode='min'/'max')."
    )
