"""The configurable learner: a LightningModule built from model, criterion, optimizer and metric configs.

Hooks to override, as in torch_mate:
[`SupervisedLearner.configure_model()`][lcv_core.SupervisedLearner.configure_model],
[`configure_criteria()`][lcv_core.SupervisedLearner.configure_criteria],
[`configure_optimizers()`][lcv_core.SupervisedLearner.configure_optimizers] and
[`shared_step()`][lcv_core.SupervisedLearner.shared_step].
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import Metric

import lcv_core.learners.networks  # noqa: F401  # registers the built-in models ("mlp")
from lcv_config import ConfigError, LcvError, build
from lcv_config.errors import did_you_mean
from lcv_config.registry import split_component
from lcv_core.learners.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    metric_spec,
    named_metric,
    repeats_acc,
)
from lcv_core.learners.optimizers import configure_from_specs

Stage = Literal["train", "val", "test", "predict"]
Task = Literal["classification", "regression"]

_REGRESSION_LOSSES = {"MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "GaussianNLLLoss", "PoissonNLLLoss"}


def _guard_configure_model(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Make ``configure_model`` build once: Lightning's Trainer calls it again before fitting."""

    @functools.wraps(hook)
    def configure_model(self: SupervisedLearner) -> Any:
        existing = self._modules.get("model")
        if existing is not None:
            return existing
        return hook(self)

    configure_model._lcv_guarded = True  # type: ignore[attr-defined]  # marks the wrapper, so it is not wrapped twice
    return configure_model


class SupervisedLearner(LightningModule):
    """Supervised training of any ``nn.Module`` from config components.

    Override [`configure_model()`][lcv_core.SupervisedLearner.configure_model] (or its older name
    [`build_model()`][lcv_core.SupervisedLearner.build_model]),
    [`configure_criteria()`][lcv_core.SupervisedLearner.configure_criteria],
    [`configure_optimizers()`][lcv_core.SupervisedLearner.configure_optimizers] or
    [`shared_step()`][lcv_core.SupervisedLearner.shared_step] to customise it, as in torch_mate. ``configure_model``
    runs once, in ``__init__``; the call a plain ``lightning.Trainer`` makes before
    fitting returns the model already built instead of building a new one.

    Args:
        model: An ``nn.Module``, or a component (``{name: mlp, cfg: {...}}``) built for each fold.
        criterion: The loss (a ``torch.nn`` name such as ``CrossEntropyLoss``, or a component).
        optimizer: An optimizer component or a list of them. ``cfg.params`` (glob patterns matched against
            the network's ``named_parameters()``) picks an optimizer's parameters, ``cfg.param_groups`` (a list of
            ``{params: [patterns], lr: ..., ...}``) gives groups their own settings; parameters no pattern
            matches go to the optimizer without ``params`` (or the optimizer's default group). Adam,
            AdamW and SGD use the fused kernels where torch has them, unless ``fused``/``foreach`` is set.
        lr_scheduler: A scheduler component or a list of them, paired with the optimizers by position
            (or by ``cfg.optimizer``, an index); ``interval``, ``frequency``, ``monitor`` and ``strict``
            in its ``cfg`` are Lightning's scheduler keys and are not passed to the scheduler.
        metrics: Metrics logged in validation and test: names from
            [`CLASSIFICATION_METRICS`][lcv_core.CLASSIFICATION_METRICS] (``accuracy``, ``top5_accuracy``, ``f1``,
            ``auroc``) or [`REGRESSION_METRICS`][lcv_core.REGRESSION_METRICS]
            (``mse``, ``mae``, ``r2``), whose task and ``num_classes`` come from the model's output, or any
            torchmetrics component, logged by its class name in snake case. A classification learner logs its
            accuracy as ``val_acc`` in any case, so ``accuracy`` without a ``cfg`` adds no second name; with one
            (``average: macro``) it is another number, logged as ``val_accuracy``.
        task: ``classification`` logs ``acc`` besides the loss and predicts probabilities; ``regression``
            does not. Default: ``regression`` for a regression loss (``MSELoss``, ``L1Loss``, ...).
        input_key: The input's key when batches are dicts.
        target_key: The target's key when batches are dicts.
        num_classes: Classes of a classification task; default: the size of the model output's last dimension.
        custom_training_step: A callable ``(learner, batch, batch_idx) -> loss or {"loss": ...}`` (or its
            dotted path) that replaces the training step, NeuroMANCER style.
    """

    lcv_spec_arguments: tuple[str, ...] = ("model", "criterion", "optimizer", "lr_scheduler", "metrics")
    """Arguments this learner builds itself from ``{name, cfg}`` (``lcv_config.build`` passes them as written)."""

    def __init__(
        self,
        model: Any,
        criterion: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        metrics: Sequence[Any] = (),
        task: Task | None = None,
        input_key: str = "x",
        target_key: str = "y",
        num_classes: int | None = None,
        custom_training_step: Any = None,
    ) -> None:
        super().__init__()
        if task is None:
            task = "regression" if _criterion_name(criterion) in _REGRESSION_LOSSES else "classification"
        if task not in ("classification", "regression"):
            raise ConfigError(f"Unknown task '{task}'; expected 'classification' or 'regression'.", "learner.cfg.task")
        # Kept out of nn.Module's registry: an nn.Module given here is registered once, as ``model`` or
        # ``criterion``, so parameter names (optimizer patterns, checkpoints) read ``model.*`` as documented.
        self.__dict__["_model_spec"] = model
        self.__dict__["_criterion_spec"] = criterion or ("CrossEntropyLoss" if task == "classification" else "MSELoss")
        self._optimizer_spec = optimizer or {"name": "Adam", "cfg": {"lr": 1e-3}}
        self._scheduler_spec = lr_scheduler
        self.task: Task = task
        self.input_key = input_key
        self.target_key = target_key
        self.num_classes = num_classes
        self._custom_step = _callable(custom_training_step, "learner.cfg.custom_training_step")
        built = self.configure_model()
        if isinstance(built, nn.Module):
            self.model = built
        elif not isinstance(self._modules.get("model"), nn.Module):
            raise LcvError(f"{type(self).__name__}.configure_model() must return an nn.Module or set self.model.")
        self.criterion = self.configure_criteria()
        specs = [metric_spec(m, i, self.task) for i, m in enumerate(metrics)]
        # Named metrics need num_classes from the first batch; component metrics are built now, to fail early.
        self.val_metrics = nn.ModuleDict(
            {name: build("metric", spec, f"metrics[{i}]") for i, (name, spec, named) in enumerate(specs) if not named}
        )
        self._metric_specs = [s for s in specs if not repeats_acc(*s)]  # one name per metric: val_acc, not both
        self.stage_metrics = nn.ModuleDict()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make a subclass's ``configure_model`` override build once, whoever calls it."""
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("configure_model")
        if hook is not None and not getattr(hook, "_lcv_guarded", False):
            cls.configure_model = _guard_configure_model(hook)  # type: ignore[method-assign]

    @_guard_configure_model
    def configure_model(self) -> nn.Module | None:
        """Return the network; the default builds the ``model`` argument through `build_model()`.

        Lightning's Trainer calls this hook with no arguments before fitting; once the model exists,
        that call returns it unchanged.
        """
        return self.build_model()

    def build_model(self) -> nn.Module:
        """Build the network from the ``model`` argument (the older name of `configure_model()`)."""
        spec = self._model_spec
        return spec if isinstance(spec, nn.Module) else cast(nn.Module, build("model", spec, "model"))

    def configure_criteria(self) -> nn.Module:
        """Build the loss from the ``criterion`` argument."""
        spec = self._criterion_spec
        return spec if isinstance(spec, nn.Module) else cast(nn.Module, build("criterion", spec, "criterion"))

    def configure_optimizers(self) -> Any:
        """Build the optimizers over this module's parameters, and the schedulers if configured."""
        # Patterns match names inside the network (``net.0.weight``), as users see them in their model.
        named = [(n.removeprefix("model."), p) for n, p in self.named_parameters() if p.requires_grad]
        return configure_from_specs(self._optimizer_spec, self._scheduler_spec, named)

    def forward(self, x: Any) -> Any:
        """Return the network's output."""
        return self.model(x)

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """Return ``(inputs, targets)`` of a tuple or dict batch (keys ``input_key`` and ``target_key``)."""
        if isinstance(batch, Mapping):
            if self.input_key not in batch:
                raise LcvError(
                    f"The batch has no input key '{self.input_key}'.{did_you_mean(self.input_key, list(batch))} "
                    f"Keys: {', '.join(map(str, batch))}. Set the learner's input_key."
                )
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
            pred = out.argmax(dim=-1) if out.ndim > 1 and out.shape[-1] > 1 else (out.reshape(-1) > 0).long()
            self.log(f"{stage}_acc", (pred == y).float().mean(), prog_bar=True, on_epoch=True)
        if stage in ("val", "test"):
            self._update_metrics(stage, out, y)
        return {"loss": loss, "outputs": out.detach()}

    def _update_metrics(self, stage: Stage, out: torch.Tensor, y: Any) -> None:
        for name, module in self.val_metrics.items():
            metric = cast(Metric, module)
            metric.update(out, y)
            self.log(f"{stage}_{name}", metric)
        for name, spec, named in self._metric_specs:
            if not named:
                continue
            key = f"{stage}_{name}"
            if key not in self.stage_metrics:
                self.stage_metrics[key] = named_metric(name, spec, self.task, self._classes(out)).to(out.device)
            metric = cast(Metric, self.stage_metrics[key])
            if self.task == "regression" and out.ndim == 2 and out.shape[-1] == 1 and y.ndim == 1:
                out = out.squeeze(-1)
            metric.update(out, y)
            self.log(key, metric)

    def _classes(self, out: torch.Tensor) -> int:
        if self.num_classes is not None:
            return self.num_classes
        return int(out.shape[-1]) if out.ndim > 1 else 1

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        """Run `shared_step()` on a training batch, or the ``custom_training_step`` if one is given."""
        if self._custom_step is None:
            return self.shared_step(batch, batch_idx, "train")
        result = self._custom_step(self, batch, batch_idx)
        loss = result["loss"] if isinstance(result, Mapping) else result
        self.log("train_loss", loss, prog_bar=True, on_epoch=True)
        return result

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Run [`shared_step()`][lcv_core.SupervisedLearner.shared_step] on a validation batch."""
        return self.shared_step(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Run [`shared_step()`][lcv_core.SupervisedLearner.shared_step] on a test batch."""
        return self.shared_step(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Return the network's outputs: class probabilities for classification (sigmoid for one output)."""
        out: torch.Tensor = self(self.split_batch(batch)[0])
        if self.task != "classification":
            return out
        return out.softmax(dim=-1) if out.ndim > 1 and out.shape[-1] > 1 else out.sigmoid()


def _criterion_name(criterion: Any) -> str:
    if criterion is None:
        return ""
    if isinstance(criterion, nn.Module):
        return type(criterion).__name__
    name = split_component(criterion, "criterion")[0]
    return name.rsplit(".", 1)[-1] if isinstance(name, str) else getattr(name, "__name__", "")


def _callable(ref: Any, path: str) -> Callable[..., Any] | None:
    if ref is None or callable(ref):
        return cast(Callable[..., Any] | None, ref)
    if not isinstance(ref, str) or not ("." in ref or ":" in ref):
        raise ConfigError(f"Expected a callable or a dotted path (package.module.function), got {ref!r}.", path)
    module_name, _, attr = ref.rpartition(":") if ":" in ref else ref.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"Cannot import module '{module_name}' for '{ref}': {type(exc).__name__}: {exc}", path
        ) from exc
    if not callable(getattr(module, attr, None)):
        raise ConfigError(f"Module '{module_name}' has no function '{attr}'.", path)
    return cast(Callable[..., Any], getattr(module, attr))


__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "SupervisedLearner"]
