"""The configurable learner: a LightningModule built from model, criterion, optimizer and metric configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import Metric

import lcv_core.models  # noqa: F401  # registers the built-in models ("mlp")
from lcv_config import build
from lcv_config.registry import split_component

Stage = Literal["train", "val", "test", "predict"]


class SupervisedLearner(LightningModule):
    """Supervised training of any ``nn.Module`` from config components.

    Override :meth:`build_model`, :meth:`configure_criteria`, :meth:`configure_optimizers` or
    :meth:`shared_step` to customise it, as in torch_mate.

    Args:
        model: An ``nn.Module``, or a component (``{name: mlp, cfg: {...}}``) built for each fold.
        criterion: The loss (a ``torch.nn`` name such as ``CrossEntropyLoss``, or a component).
        optimizer: The optimizer component; ``params`` are filled in (``{name: Adam, cfg: {lr: 1e-3}}``).
        lr_scheduler: An optional scheduler component; ``interval``, ``frequency`` and ``monitor`` in
            its ``cfg`` are Lightning's scheduler keys and are not passed to the scheduler.
        metrics: Extra torchmetrics components logged in validation, by their class name in snake case.
        task: ``classification`` logs ``acc`` besides the loss; ``regression`` does not.
        input_key: The input's key when batches are dicts.
        target_key: The target's key when batches are dicts.
    """

    def __init__(
        self,
        model: Any,
        criterion: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        metrics: Sequence[Any] = (),
        task: Literal["classification", "regression"] = "classification",
        input_key: str = "x",
        target_key: str = "y",
    ) -> None:
        super().__init__()
        self._model_spec = model
        self._criterion_spec = criterion or ("CrossEntropyLoss" if task == "classification" else "MSELoss")
        self._optimizer_spec = optimizer or {"name": "Adam", "cfg": {"lr": 1e-3}}
        self._scheduler_spec = lr_scheduler
        self.task = task
        self.input_key = input_key
        self.target_key = target_key
        self.model = self.build_model()
        self.criterion = self.configure_criteria()
        self.val_metrics = nn.ModuleDict(
            {_metric_name(m): build("metric", m, f"metrics[{i}]") for i, m in enumerate(metrics)}
        )

    def build_model(self) -> nn.Module:
        """Build the network from the ``model`` argument.

        Not named ``configure_model``: that is a Lightning hook which the Trainer calls for sharded setups.
        """
        spec = self._model_spec
        return spec if isinstance(spec, nn.Module) else cast(nn.Module, build("model", spec, "model"))

    def configure_criteria(self) -> nn.Module:
        """Build the loss from the ``criterion`` argument."""
        spec = self._criterion_spec
        return spec if isinstance(spec, nn.Module) else cast(nn.Module, build("criterion", spec, "criterion"))

    def configure_optimizers(self) -> Any:
        """Build the optimizer over this module's parameters, and the scheduler if configured."""
        optimizer = build("optimizer", self._optimizer_spec, "optimizer", self.parameters())
        if self._scheduler_spec is None:
            return optimizer
        spec = self._scheduler_spec
        name, cfg = split_component(spec, "lr_scheduler")
        lightning_keys = {k: cfg.pop(k) for k in ("interval", "frequency", "monitor") if k in cfg}
        scheduler = build("lr_scheduler", {"name": name, "cfg": cfg}, "lr_scheduler", optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, **lightning_keys}}

    def forward(self, x: Any) -> Any:
        """Return the network's output."""
        return self.model(x)

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """Return ``(inputs, targets)`` of a tuple or dict batch."""
        if isinstance(batch, Mapping):
            return batch[self.input_key], batch.get(self.target_key)
        if isinstance(batch, (list, tuple)):
            return batch[0], batch[1] if len(batch) > 1 else None
        return batch, None

    def shared_step(self, batch: Any, batch_idx: int, stage: Stage) -> dict[str, Any]:
        """Compute outputs, loss and metrics of a batch and log them with the stage's prefix."""
        x, y = self.split_batch(batch)
        out = self(x)
        loss = self.criterion(out, y)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True)
        if self.task == "classification":
            self.log(f"{stage}_acc", (out.argmax(dim=-1) == y).float().mean(), prog_bar=True, on_epoch=True)
        if stage != "train":
            for name, module in self.val_metrics.items():
                metric = cast(Metric, module)
                metric.update(out, y)
                self.log(f"{stage}_{name}", metric)
        return {"loss": loss, "outputs": out.detach()}

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Run :meth:`shared_step` on a training batch."""
        return self.shared_step(batch, batch_idx, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Run :meth:`shared_step` on a validation batch."""
        return self.shared_step(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Run :meth:`shared_step` on a test batch."""
        return self.shared_step(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Return the network's outputs (class probabilities for classification)."""
        out: torch.Tensor = self(self.split_batch(batch)[0])
        return out.softmax(dim=-1) if self.task == "classification" else out


def _metric_name(component: Any) -> str:
    name = split_component(component, "metrics")[0]
    if not isinstance(name, str):
        name = getattr(name, "__name__", "metric")
    name = name.rsplit(".", 1)[-1]
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


__all__ = ["SupervisedLearner"]
