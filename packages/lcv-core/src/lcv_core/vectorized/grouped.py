"""The ``vectorized`` schedule's grouped kernels for lcv's own learner: no ``vmap`` where lcv knows the model.

``vmap`` runs any ``training_step``, but each operation under it costs several times the same work written for
stacked tensors (``benchmarks/vectorized_floor.py --ops``: a ``Linear`` 312 µs against 61 µs by hand at width 8).
For the configurable learner ([`SupervisedLearner`][lcv_core.SupervisedLearner] with its own ``shared_step``) lcv
knows the whole step, so it runs it on the stacked tensors directly:

- each ``nn.Linear`` of the network is one ``baddbmm`` over the k folds' stacked weights, activations and
  dropout run elementwise on ``(k, batch, features)`` (dropout draws different masks per fold, as under
  ``vmap(randomness="different")``);
- the loss is the criterion with ``reduction="none"``, averaged per fold exactly as the criterion's own
  ``mean`` would (``ignore_index`` and class weights included);
- ``{stage}_loss`` and ``{stage}_acc`` are logged per fold as the learner logs them; validation and test
  metrics (torchmetrics) are updated on each fold's own metric objects and computed at the end of the epoch.

Networks are the registered ``mlp`` ([`MLP`][lcv_core.MLP]) or an ``nn.Sequential`` of ``Linear``,
elementwise activations, ``Dropout`` and ``Flatten``. Anything else (another network, a subclass that changes the
step, a criterion or batch shape this module does not cover) runs under ``vmap`` as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.nn import functional
from torchmetrics import Metric

from lcv_core.learners.networks import MLP
from lcv_core.learners.supervised import SupervisedLearner
from lcv_core.vectorized.batches import LogEntry, LogValue, Stepper, _Group, _Stepper
from lcv_core.vectorized.metric_log import Deferred

_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Dropout,
)
_ELEMENTWISE_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCEWithLogitsLoss)
_PREFIXES = {"training": "train", "validation": "val", "test": "test"}
_LEARNER_METHODS = ("shared_step", "training_step", "validation_step", "forward", "split_batch", "_update_metrics")


def _layers(module: SupervisedLearner) -> tuple[list[tuple[str, nn.Module]], bool] | None:
    """Return the network's layers with their parameter prefixes and whether inputs are flattened first."""
    net = module._modules.get("model")
    if type(net) is MLP:
        seq, prefix, flatten = net.net, "model.net", True
    elif type(net) is nn.Sequential:
        seq, prefix, flatten = net, "model", False
    else:
        return None
    layers: list[tuple[str, nn.Module]] = []
    for name, layer in seq.named_children():
        if type(layer) is nn.Flatten:
            if (layer.start_dim, layer.end_dim) != (1, -1) or any(type(m) is nn.Linear for _, m in layers):
                return None  # a Flatten before the first Linear, over all but the batch dimension
            flatten = True
        elif not (type(layer) is nn.Linear or type(layer) in _ELEMENTWISE):
            return None
        layers.append((f"{prefix}.{name}", layer))
    return layers, flatten


def _fold_equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a == b`` with the broadcasting each fold's slices would get on their own (the fold dimension first)."""
    if a.ndim < b.ndim:
        a = a.view(a.shape[0], *([1] * (b.ndim - a.ndim)), *a.shape[1:])
    elif b.ndim < a.ndim:
        b = b.view(b.shape[0], *([1] * (a.ndim - b.ndim)), *b.shape[1:])
    return a == b


def _whole_vectors(t: torch.Tensor) -> bool:
    """Whether ``t`` fills whole 64-byte vectors (AVX-512's; AVX2's and NEON's divide them)."""
    return t.numel() * t.element_size() % 64 == 0


def _accuracies(steps: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """Each fold's accuracy in each step, ``(steps, k)``, from the steps' logits ``(k, batch, classes)`` and targets."""
    if len(steps) == 1:
        out, y = steps[0]
        return (out.argmax(dim=-1) == y).float().mean(1).unsqueeze(0)
    outs, ys = torch.stack([s[0] for s in steps]), torch.stack([s[1] for s in steps])
    return (outs.argmax(dim=-1) == ys).float().mean(-1)


def _criterion_supported(criterion: nn.Module) -> bool:
    if getattr(criterion, "reduction", None) != "mean":
        return False
    if type(criterion) in (nn.CrossEntropyLoss, nn.NLLLoss):
        return True
    if type(criterion) is nn.BCEWithLogitsLoss:
        return criterion.weight is None  # a per-sample weight is indexed by batch, not by fold
    return type(criterion) in _ELEMENTWISE_LOSSES


def grouped_supported(module: LightningModule) -> bool:
    """Whether ``module`` is a configurable learner whose step this module can run without ``vmap``."""
    if not isinstance(module, SupervisedLearner) or module._custom_step is not None:
        return False
    cls = type(module)
    if any(getattr(cls, m) is not getattr(SupervisedLearner, m) for m in _LEARNER_METHODS):
        return False
    return _layers(module) is not None and _criterion_supported(module.criterion)


class _UnsupportedError(Exception):
    """This batch does not fit the grouped step (its shapes); it runs under ``vmap`` instead."""


class _GroupedStepper:
    """Runs the configurable learner's step on stacked tensors; same call as `_Stepper`.

    Args:
        modules: The fold modules, in fold order (validation metrics are updated on each fold's own objects).
    """

    def __init__(self, modules: Sequence[LightningModule]) -> None:
        self.modules = list(modules)
        self.template = cast(SupervisedLearner, self.modules[0])
        found = _layers(self.template)
        assert found is not None  # grouped_supported() was checked
        self.layers, self.flatten = found
        self._plan = [self._planned(name, layer) for name, layer in self.layers]
        # Linear weights the step takes as (k, in, out): no transpose per step, and their gradients arrive in the
        # parameter's layout (else autograd copies each from the transposed one). Only where a fold's weight fills
        # whole 64-byte vectors: elementwise kernels (the optimizer's) round a vector body and a scalar tail
        # differently, and a layout with no tail updates every element as the module's layout does.
        self.transposed = {
            weight
            for kind, weight, _, layer in self._plan
            if kind in ("linear", "bmm") and _whole_vectors(cast(nn.Linear, layer).weight)
        }
        self.rows = {bias for kind, _, bias, _ in self._plan if kind == "linear"}  # biases as (k, 1, out)
        self.vmapped = _Stepper(self.template)
        self.metrics: dict[int, dict[str, Metric]] = {}

    def __call__(
        self,
        stage: str,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        group: _Group,
        batch_idx: int,
    ) -> tuple[torch.Tensor | None, list[LogEntry], list[LogValue]]:
        """Return the per-fold losses (``None`` outside training), the log entries and their per-fold values."""
        try:
            x, y = self._split(group)
        except _UnsupportedError:
            modules = {n: self.module_view(n, t) for n, t in params.items()}
            return self.vmapped(stage, modules, buffers, group, batch_idx)
        prefix = _PREFIXES[stage]
        out = self._forward(params, x)
        learner = self.template
        k = out.shape[0]
        loss = self._loss(out, y, k)
        entries: list[LogEntry] = [(f"{prefix}_loss", "mean", False, True, None)]
        values: list[LogValue] = [loss.detach()]
        if learner.task == "classification":
            entries.append((f"{prefix}_acc", "mean", False, True, None))
            multiclass = out.ndim > 2 and out.shape[-1] > 1
            if multiclass and out.ndim == 3 and y.ndim == 2:
                values.append(Deferred(_accuracies, out.detach(), y))  # computed for many steps at once
            else:
                pred = out.argmax(dim=-1) if multiclass else (out.reshape(k, -1) > 0).long()
                values.append(_fold_equal(pred, y).reshape(k, -1).float().mean(1))
        if prefix != "train":
            self._update_metrics(prefix, group.folds, out, y)
        return (loss if stage == "training" else None), entries, values

    def epoch_metrics(self, k: int) -> list[dict[str, float]]:
        """Compute and reset the metric objects updated since the last call; return their values per fold."""
        out: list[dict[str, float]] = [{} for _ in range(k)]
        for fold, metrics in self.metrics.items():
            for name, metric in metrics.items():
                out[fold][name] = float(metric.compute())
                metric.reset()
        self.metrics.clear()
        return out

    def discard_metrics(self) -> None:
        """Reset the metric objects updated since the last call without computing them (after a trial step)."""
        for metrics in self.metrics.values():
            for metric in metrics.values():
                metric.reset()
        self.metrics.clear()

    def stored(self, name: str, stacked: torch.Tensor) -> torch.Tensor:
        """Weights in `transposed` as ``(k, in, out)``, biases of ``Linear`` layers as ``(k, 1, out)`` (new tensors)."""
        if name in self.transposed:
            return stacked.transpose(1, 2).contiguous()
        if name in self.rows:
            return stacked.unsqueeze(1).contiguous()
        return stacked

    def module_view(self, name: str, stored: torch.Tensor) -> torch.Tensor:
        """The inverse of `stored`, as a view."""
        if name in self.transposed:
            return stored.transpose(1, 2)
        if name in self.rows:
            return stored.squeeze(1)
        return stored

    # -- internals ----------------------------------------------------------------------------------

    def _split(self, group: _Group) -> tuple[torch.Tensor, torch.Tensor]:
        batch, in_dims = group.batch, group.in_dims
        learner = self.template
        if isinstance(batch, Mapping):
            x, y = batch.get(learner.input_key), batch.get(learner.target_key)
            dims = (in_dims.get(learner.input_key), in_dims.get(learner.target_key))
        elif isinstance(batch, (list, tuple)) and len(batch) >= 2:
            x, y, dims = batch[0], batch[1], (in_dims[0], in_dims[1])
        else:
            raise _UnsupportedError
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and dims == (0, 0)):
            raise _UnsupportedError
        if (x.ndim < 3 if self.flatten else x.ndim != 3) or x.shape[0] != y.shape[0]:
            raise _UnsupportedError
        criterion = learner.criterion
        if type(criterion) in (nn.CrossEntropyLoss, nn.NLLLoss):
            if y.ndim != 2 or y.dtype not in (torch.int64, torch.int32):  # class indices, one per sample
                raise _UnsupportedError
        elif y.shape[1:] != self._output_shape(x):  # elementwise losses: the target has the output's shape
            raise _UnsupportedError
        return x, y

    def _output_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        last = next(layer for _, layer in reversed(self.layers) if type(layer) is nn.Linear)
        return (x.shape[1], int(last.out_features))

    @staticmethod
    def _planned(name: str, layer: nn.Module) -> tuple[str, str, str, nn.Module]:
        """Return ``(kind, weight name, bias name, layer)``: what `_forward` does with one layer."""
        if type(layer) is nn.Linear:
            kind = "linear" if getattr(layer, "bias", None) is not None else "bmm"
            return kind, f"{name}.weight", f"{name}.bias", layer
        if type(layer) is nn.Flatten:
            return "flatten", "", "", layer
        if type(layer) is nn.ReLU and not (layer._forward_hooks or layer._forward_pre_hooks):
            return ("relu_" if layer.inplace else "relu"), "", "", layer  # what ReLU.forward calls, without __call__
        return "module", "", "", layer

    def _forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2) if self.flatten else x
        transposed = self.transposed
        for kind, weight, bias, layer in self._plan:
            if kind == "linear":
                w = params[weight] if weight in transposed else params[weight].transpose(1, 2)
                h = torch.baddbmm(params[bias], h, w)
            elif kind == "relu":
                h = torch.relu(h)
            elif kind == "bmm":
                h = torch.bmm(h, params[weight] if weight in transposed else params[weight].transpose(1, 2))
            elif kind == "flatten":
                h = h.flatten(2)  # Flatten(1, -1) of each fold's batch
            elif kind == "relu_":
                h = torch.relu_(h)
            else:
                h = layer(h)
        return h

    def _loss(self, out: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """Each fold's loss, as the criterion's ``mean`` reduction gives it on that fold's batch alone."""
        criterion: Any = self.template.criterion
        if type(criterion) in (nn.CrossEntropyLoss, nn.NLLLoss):
            flat_out, flat_y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
            losses: torch.Tensor
            if type(criterion) is nn.CrossEntropyLoss:
                losses = functional.cross_entropy(
                    flat_out,
                    flat_y,
                    weight=criterion.weight,
                    ignore_index=criterion.ignore_index,
                    reduction="none",
                    label_smoothing=criterion.label_smoothing,
                )
            else:
                losses = functional.nll_loss(
                    flat_out, flat_y, weight=criterion.weight, ignore_index=criterion.ignore_index, reduction="none"
                )
            # torch's mean: over the targets not ignored
            kept: torch.Tensor = y != criterion.ignore_index  # (k, batch): class indices, one per sample
            if criterion.weight is None:
                return losses.view(k, -1).sum(1) / kept.sum(1)
            weights = criterion.weight[flat_y.view(k, -1).masked_fill(~kept, 0)]  # weighted by the targets' class
            return losses.view(k, -1).sum(1) / torch.where(kept, weights, 0).sum(1)
        original = criterion.reduction
        criterion.reduction = "none"
        try:
            per_element: torch.Tensor = criterion(out, y)
        finally:
            criterion.reduction = original
        return per_element.reshape(k, -1).mean(1)

    def _update_metrics(self, prefix: str, folds: list[int], out: torch.Tensor, y: torch.Tensor) -> None:
        if not self.template.val_metrics and not any(named for _, _, named in self.template._metric_specs):
            return
        for j, fold in enumerate(folds):
            module = cast(SupervisedLearner, self.modules[fold])
            logged = self.metrics.setdefault(fold, {})

            def log(name: str, value: Any, *_: Any, _logged: dict[str, Metric] = logged, **__: Any) -> None:
                if isinstance(value, Metric):
                    _logged[name] = value

            module.__dict__["log"] = log
            try:
                module._update_metrics(cast(Any, prefix), out[j], y[j])
            finally:
                module.__dict__.pop("log", None)


def make_stepper(modules: Sequence[LightningModule]) -> Stepper:
    """Return the grouped stepper when lcv knows the modules' step, else the ``vmap`` one."""
    if grouped_supported(modules[0]):
        return _GroupedStepper(modules)
    return _Stepper(modules[0])
