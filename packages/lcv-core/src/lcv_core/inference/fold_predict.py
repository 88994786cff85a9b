"""Run fold models over a loader in eval mode, on each model's device, and join their outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import LcvError
from lcv_core.results.cv_result import CVResult


def models_of(result_or_models: CVResult | Sequence[nn.Module] | nn.Module) -> list[nn.Module]:
    """Return the fold models of a `CVResult`, a list of modules or one module, each checked to be a Module."""
    if isinstance(result_or_models, CVResult):
        if not result_or_models.models:
            raise LcvError(
                "This CVResult holds no fold models (result.models is empty); pass the fold models themselves, "
                "e.g. [fold.module for fold in trainer.folds], or load them from the run's checkpoints."
            )
        models = list(result_or_models.models)
    elif isinstance(result_or_models, nn.Module):
        models = [result_or_models]
    else:
        models = list(result_or_models)
    if not models:
        raise LcvError("No models given: pass a CVResult with models or a non-empty list of LightningModules.")
    for i, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise LcvError(f"Model {i} is a {type(m).__name__}, not a torch Module (LightningModule expected).")
    return models


def module_device(module: nn.Module) -> torch.device:
    """Return the device of the module's first parameter (else first buffer); the CPU for a module with neither."""
    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def overrides(module: nn.Module, name: str) -> bool:
    """Return whether ``module`` is a LightningModule whose class overrides the hook ``name``."""
    return isinstance(module, LightningModule) and getattr(type(module), name) is not getattr(LightningModule, name)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode under ``torch.no_grad`` and restore its training mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def batch_inputs(batch: Any) -> Any:
    """The model inputs of a batch: ``x`` of an ``(x, y)`` pair or a one-element sequence, else the batch."""
    if isinstance(batch, (list, tuple)) and 1 <= len(batch) <= 2:
        return batch[0]
    return batch


def _forward(module: nn.Module, batch: Any, batch_idx: int) -> Any:
    if overrides(module, "predict_step"):
        return module.predict_step(batch, batch_idx)  # type: ignore[operator]  # checked by overrides
    return module(batch_inputs(batch))


def _concat(outputs: list[Any]) -> Any:
    """Join per-batch outputs: tensors along dim 0, dicts per key; anything else stays a list."""
    if outputs and all(isinstance(o, torch.Tensor) for o in outputs):
        return torch.cat([o.reshape(1) if o.ndim == 0 else o for o in outputs])
    if outputs and all(isinstance(o, Mapping) for o in outputs):
        return {k: _concat([o[k] for o in outputs]) for k in outputs[0]}
    return outputs


def run_predict(module: nn.Module, dataloader: Any) -> Any:
    """Return the module's outputs over the whole loader, joined, on the CPU."""
    device = module_device(module)
    outputs = []
    with eval_mode(module):
        for batch_idx, batch in enumerate(dataloader):
            out = _forward(module, move_data_to_device(batch, device), batch_idx)
            outputs.append(move_data_to_device(out, torch.device("cpu")))
    return _concat(outputs)
