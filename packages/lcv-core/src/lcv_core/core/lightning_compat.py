"""Every call lcv makes into Lightning's or Fabric's private API, in one place.

Lightning does not promise these names across releases, so lcv pins ``lightning`` to the minor versions it is
tested with (``packages/lcv-core/pyproject.toml``) and ``tests/test_lightning_compat.py`` checks each of them; when a
new Lightning release moves one, this module is the only place to change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning.fabric import Fabric
    from lightning.pytorch.utilities.types import LRSchedulerConfig
    from torch.utils.data import DataLoader, Sampler


def parse_optimizers(conf: Any) -> tuple[list[Any], list[Any], str | None]:
    """Return ``(optimizers, schedulers, monitor)`` from any shape ``configure_optimizers`` may return."""
    from lightning.pytorch.core.optimizer import _configure_optimizers

    optimizers, schedulers, monitor = _configure_optimizers(conf)
    return list(optimizers), list(schedulers), monitor


def scheduler_configs(schedulers: list[Any], monitor: str | None, automatic: bool) -> list[LRSchedulerConfig]:
    """Return Lightning's ``LRSchedulerConfig`` for each scheduler (``monitor`` applies to automatic optimization)."""
    from lightning.pytorch.core.optimizer import _configure_schedulers_automatic_opt, _configure_schedulers_manual_opt

    if automatic:
        return list(_configure_schedulers_automatic_opt(schedulers, monitor))
    return list(_configure_schedulers_manual_opt(schedulers))


def with_sampler(loader: DataLoader[Any], sampler: Sampler[Any]) -> DataLoader[Any]:
    """Return a copy of ``loader`` drawing from ``sampler`` (Lightning's re-instantiation of a DataLoader)."""
    from lightning.fabric.utilities.data import _update_dataloader

    return _update_dataloader(loader, sampler)


def unwrap_loader(loader: Any) -> Any:
    """Return the user's loader behind Fabric's ``_FabricDataLoader`` (the loader itself when not wrapped)."""
    from lightning.fabric.wrappers import _FabricDataLoader

    return loader._dataloader if isinstance(loader, _FabricDataLoader) else loader


def is_fabric_loader(loader: Any) -> bool:
    """Whether ``loader`` is Fabric's wrapper, which moves every batch to the device itself."""
    from lightning.fabric.wrappers import _FabricDataLoader

    return isinstance(loader, _FabricDataLoader)


def unwrap_optimizer(optimizer: Any) -> Any:
    """Return the torch optimizer behind Fabric's ``_FabricOptimizer`` (the optimizer itself when not wrapped)."""
    from lightning.fabric.wrappers import _FabricOptimizer

    return optimizer.optimizer if isinstance(optimizer, _FabricOptimizer) else optimizer


def forward_is_redirected(wrapped: Any) -> bool:
    """Whether Fabric wrapped the module in another one (DDP & co), so steps must go through its ``forward``."""
    return wrapped._forward_module is not wrapped._original_module


def fabric_callbacks(fabric: Fabric) -> list[Any]:
    """Return the list of callbacks ``Fabric.call`` dispatches to (the list itself: removing from it counts)."""
    return fabric._callbacks


def forget_callback(fabric: Fabric, obj: Any) -> None:
    """Stop ``Fabric.call`` from dispatching to ``obj`` (``fabric.setup`` registers a LightningModule as a callback)."""
    callbacks = fabric_callbacks(fabric)
    if obj in callbacks:
        callbacks.remove(obj)


def fabric_launched(fabric: Fabric) -> bool:
    """Whether ``fabric.launch()`` already ran (the processes and the process group exist)."""
    return bool(fabric._launched)


def spawns_processes(fabric: Fabric) -> str | None:
    """Return the start method when the strategy's launcher spawns processes from Python (``None`` otherwise)."""
    from lightning.fabric.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    launcher = fabric.strategy.launcher
    if isinstance(launcher, _MultiProcessingLauncher):
        return str(launcher._start_method)
    return None


def to_lightning_optimizer(optimizer: Any, strategy: Any) -> Any:
    """Wrap a torch optimizer as Lightning's ``LightningOptimizer`` whose ``step`` goes through ``strategy``.

    ``strategy`` needs ``optimizer_step(optimizer, closure, **kwargs)``; Lightning keeps a weak reference to it.
    """
    from lightning.pytorch.core.optimizer import LightningOptimizer

    return LightningOptimizer._to_lightning_optimizer(optimizer, strategy)


def datahook_selector(module: Any, datamodule: Any) -> Any:
    """Return Lightning's choice of who answers a batch hook (``to_onnx`` reads it from the trainer)."""
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.trainer.connectors.data_connector import _DataHookSelector

    return _DataHookSelector(
        model=module, datamodule=datamodule if isinstance(datamodule, LightningDataModule) else None
    )


def release_from_fabric(module: Any) -> None:
    """Drop what ``fabric.setup`` left on a module (its optimizer wrappers), so it pickles like any LightningModule."""
    module._fabric = None
    module._fabric_optimizers = []


def detach_from_fabric(module: Any) -> None:
    """Make a LightningModule that ``fabric.setup`` saw read ``self.trainer`` again, not Fabric's stand-in.

    ``fabric.setup`` sets the module's ``_fabric``, which makes ``self.trainer``, ``self.optimizers()``,
    ``manual_backward`` and ``clip_gradients`` go to Fabric; lcv gives each fold a trainer view instead.
    """
    module._fabric = None


def compiled_module_and_arguments(obj: Any) -> tuple[Any, dict[str, Any] | None]:
    """Return the module inside a ``torch.compile``'d module and its ``torch.compile`` arguments (else ``obj``, None).

    Lightning records the arguments when ``torch.compile`` is called after ``lightning`` was imported; otherwise this
    raises ``RuntimeError``.
    """
    from lightning.fabric.wrappers import _unwrap_compiled

    return _unwrap_compiled(obj)
