"""A learner for modules that compute their own loss: ``forward(batch)`` returns ``{"loss": ..., ...}``.

A NeuroMANCER `Problem` is such a module: it takes a dict batch and returns a dict of losses and outputs, each key
prefixed with the batch's ``name`` (``train_loss``, ``dev_loss``). `LossReturningLearner` trains one unchanged: it
tells the module which stage it runs in (``batch["name"]``), takes the loss from the returned dict, logs every
returned scalar under lcv's stage names (``train_<key>``, ``val_<key>``) and builds the optimizers from the config
like `SupervisedLearner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import ConfigError, LcvError, build
from lcv_config.errors import did_you_mean
from lcv_core.learners.optimizers import configure_from_specs

NEUROMANCER_STAGE_NAMES: dict[str, str] = {"train": "train", "val": "dev", "test": "test", "predict": "predict"}
"""The name each lcv stage has in the batch (``batch["name"]``) by default: NeuroMANCER's ``train``/``dev``/``test``."""

_STAGES = ("train", "val", "test", "predict")


class LossReturningLearner(LightningModule):
    """Train a module whose ``forward(batch)`` returns a dict holding its loss, as a NeuroMANCER `Problem` does.

    The module is called with the whole batch. From the dict it returns, the entry ``loss_key`` (or
    ``<batch name>_<loss_key>``, NeuroMANCER's prefixed form) is the loss that is minimised; every scalar entry is
    logged as ``<stage>_<key>``, with the batch name's prefix replaced by lcv's stage (``dev_loss`` is logged as
    ``val_loss``), so ``monitor: val_loss`` and early stopping work unchanged. The loss is also logged as
    ``<stage>_loss`` when ``loss_key`` has another name.

    Args:
        model: The module (an ``nn.Module``, or a component ``{name: pkg.mod.Problem, cfg: {...}}`` built per fold).
        optimizer: An optimizer component or a list of them, as for `SupervisedLearner` (``cfg.params`` patterns
            match the module's own parameter names).
        lr_scheduler: A scheduler component or a list of them, as for `SupervisedLearner`.
        loss_key: The loss's key in the returned dict.
        stage_key: When the batch is a dict without this key, the learner adds it with the stage's name (a
            NeuroMANCER `Problem` reads ``batch["name"]``); ``None`` passes batches unchanged.
        stage_names: The name each stage (``train``, ``val``, ``test``, ``predict``) has in the batch; default
            NeuroMANCER's (`NEUROMANCER_STAGE_NAMES`: validation is ``dev``).

    Example:
        >>> learner = LossReturningLearner(problem, optimizer={"name": "AdamW", "cfg": {"lr": 1e-3}})  # doctest: +SKIP
        >>> CrossValidationTrainer(max_epochs=10).fit(learner, datamodule)  # doctest: +SKIP

        From a config: ``learner: {name: loss_returning, cfg: {loss_key: loss}}`` and
        ``model: {name: mypackage.problems.make_problem, cfg: {...}}``.
    """

    lcv_spec_arguments: tuple[str, ...] = ("model", "optimizer", "lr_scheduler")
    """Arguments this learner builds itself from ``{name, cfg}`` (``lcv_config.build`` passes them as written)."""

    def __init__(
        self,
        model: Any,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        loss_key: str = "loss",
        stage_key: str | None = "name",
        stage_names: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        module = model if isinstance(model, nn.Module) else build("model", model, "model")
        if not isinstance(module, nn.Module):
            raise ConfigError(
                f"The model of the loss_returning learner must build an nn.Module; got {type(module).__name__}.",
                "model",
            )
        self.model = module
        self._optimizer_spec = optimizer or {"name": "Adam", "cfg": {"lr": 1e-3}}
        self._scheduler_spec = lr_scheduler
        self.loss_key = loss_key
        self.stage_key = stage_key
        names = {**NEUROMANCER_STAGE_NAMES, **dict(stage_names or {})}
        unknown = sorted(set(names) - set(_STAGES))
        if unknown:
            raise ConfigError(
                f"stage_names has unknown stages {unknown}; the stages are {', '.join(_STAGES)}.",
                "learner.cfg.stage_names",
            )
        self.stage_names = names

    def forward(self, batch: Any) -> Any:
        """Return the module's output dict for a batch (named ``predict`` when it has no stage name yet).

        Lightning's default ``predict_step`` calls this, so ``predict`` returns each batch's dict; the trainer's
        out-of-fold predictions, which need one tensor per batch, are skipped for this learner.
        """
        return self.model(self.stage_batch(batch, "predict"))

    def configure_optimizers(self) -> Any:
        """Build the optimizers over the module's parameters, and the schedulers if configured."""
        named = [(n.removeprefix("model."), p) for n, p in self.named_parameters() if p.requires_grad]
        return configure_from_specs(self._optimizer_spec, self._scheduler_spec, named)

    def stage_batch(self, batch: Any, stage: str) -> Any:
        """Return the batch as the module sees it in ``stage``: with ``stage_key`` set to the stage's name."""
        if self.stage_key is None or not isinstance(batch, Mapping) or self.stage_key in batch:
            return batch
        return {**batch, self.stage_key: self.stage_names[stage]}

    def shared_step(self, batch: Any, stage: str) -> dict[str, Any]:
        """Run the module on a batch, log every scalar it returns under ``<stage>_<key>``; return its dict.

        Raises:
            LcvError: The module returned no dict, or a dict without the loss.
        """
        batch = self.stage_batch(batch, stage)
        out = self(batch)
        if not isinstance(out, Mapping):
            raise LcvError(
                f"{type(self.model).__name__}.forward(batch) returned {type(out).__name__}; the loss_returning learner "
                f"needs a dict with the loss under '{self.loss_key}'. Use the supervised learner for modules that "
                "return predictions."
            )
        name = self.stage_names[stage]
        prefix = f"{name}_"
        key = self.loss_key if self.loss_key in out else f"{prefix}{self.loss_key}"
        if key not in out:
            keys = [str(k) for k in out]
            unprefixed = [k.removeprefix(prefix) for k in keys]
            raise LcvError(
                f"{type(self.model).__name__}.forward(batch) returned no '{self.loss_key}' (nor '{key}') in "
                f"{stage}.{did_you_mean(self.loss_key, unprefixed)} Returned: {', '.join(keys) or '(nothing)'}. "
                "Set the learner's loss_key."
            )
        logged = set()
        for k, v in out.items():
            if not _is_scalar(v):
                continue
            short = str(k).removeprefix(prefix) if str(k).startswith(prefix) else str(k)
            logged.add(short)
            # What is logged needs no graph; the loss keeps its own for the backward pass.
            self.log(f"{stage}_{short}", _detached(v), prog_bar=k == key, on_epoch=True)
        loss = out[key]
        if "loss" not in logged:
            self.log(f"{stage}_loss", _detached(loss), on_epoch=True)
        return {**out, "loss": loss}

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Return the module's dict with its loss under ``loss`` (what Lightning minimises)."""
        return self.shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Log the module's losses on a validation batch."""
        return self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Log the module's losses on a test batch."""
        return self.shared_step(batch, "test")


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.dtype != torch.bool
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _detached(value: Any) -> Any:
    return value.detach() if isinstance(value, torch.Tensor) else value


__all__ = ["NEUROMANCER_STAGE_NAMES", "LossReturningLearner"]
