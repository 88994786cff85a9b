"""Record, per module instance and in order, every LightningModule hook a trainer calls.

The hook set is the one Lightning's own ``tests/tests_pytorch/models/test_hooks.py`` (``HookedModel``) records:
the public functions of ``LightningModule`` that ``torch.nn.Module`` does not define, less the utilities a
user calls (``self.log``, ``self.optimizers()``, ``self.toggle_optimizer`` ...). ``forward``, ``train`` and
``zero_grad`` (``nn.Module``'s own) are left out: Lightning's ``on_validation_model_eval/train/zero_grad``
hooks stand for them, and a trainer may call ``train()`` more often without the user noticing.
"""

from __future__ import annotations

import functools
from inspect import getmembers, isfunction
from typing import Any

import torch
from lightning.pytorch import LightningModule

UTILITIES = frozenset(
    {
        "all_gather",
        "freeze",
        "load_from_checkpoint",
        "log",
        "log_dict",
        "lr_schedulers",
        "optimizers",
        "print",
        "remove_ignored_hparams",
        "save_hyperparameters",
        "to_onnx",
        "to_tensorrt",
        "to_torchscript",
        "toggle_optimizer",
        "toggled_optimizer",
        "unfreeze",
        "untoggle_optimizer",
    }
)
"""Public LightningModule methods a user calls; not hooks a trainer calls."""


def _members(cls: type) -> set[str]:
    return {name for name, _ in getmembers(cls, predicate=isfunction) if not name.startswith("_")}


HOOKS: tuple[str, ...] = tuple(sorted(_members(LightningModule) - _members(torch.nn.Module) - UTILITIES))
"""The hooks recorded."""


def record_hooks(module: LightningModule) -> list[str]:
    """Wrap every hook of ``module`` (on the instance) to append its name to the returned list when called.

    Wrappers keep ``__wrapped__`` (``functools.wraps``), so Lightning's ``is_overridden`` still sees the class's
    method; type-level checks (``type(module).hook``) are not affected.
    """
    calls: list[str] = []

    def wrap(name: str, method: Any) -> Any:
        @functools.wraps(method)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return method(*args, **kwargs)

        return recorded

    for name in HOOKS:
        object.__setattr__(module, name, wrap(name, getattr(module, name)))
    return calls
