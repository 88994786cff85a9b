"""Intercept a LightningModule's ``self.log``/``self.log_dict`` inside the fold loop.

Values are accumulated on their device (weighted by batch size) and read back once per fold and
epoch, so logging adds no host synchronisation per step.

Semantics, as in Lightning where it makes sense for cross-validation:

- ``on_epoch`` (default ``True`` in every stage, unlike Lightning's ``False`` in ``training_step``,
  because fold means need epoch values): the value is reduced over the epoch with ``reduce_fx``
  (``mean`` weighted by batch size, ``sum``, ``max``, ``min``) and lands in the fold's history.
- ``on_step=True``: every value is also kept and sent to the loggers as ``fold_<i>/<name>_step``
  at the fold's optimizer step, once per epoch (one host read for the whole epoch).
- A ``torchmetrics.Metric`` object is computed at the end of the epoch and then reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import Metric

from lcv_config import LcvError

_REDUCTIONS = ("mean", "sum", "max", "min")


def checked_scalar(name: str, value: Any, reduce_fx: Any) -> tuple[str, torch.Tensor]:
    """Return the reduction's name and ``value`` as a detached float32 scalar tensor, as ``self.log`` accepts them.

    Raises:
        LcvError: An unknown reduction, or a tensor with more than one element; the message names the metric.
    """
    reduce = reduce_fx if isinstance(reduce_fx, str) else getattr(reduce_fx, "__name__", repr(reduce_fx))
    if reduce not in _REDUCTIONS:
        raise LcvError(
            f"self.log('{name}', ..., reduce_fx={reduce!r}): lcv reduces with one of {', '.join(_REDUCTIONS)}."
        )
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise LcvError(f"self.log('{name}', ...) needs a scalar; got a tensor of shape {tuple(value.shape)}.")
        return reduce, value.detach().reshape(()).float()
    return reduce, torch.tensor(float(value), dtype=torch.float32)


class FoldMetricLog:
    """Collects what one fold's module logs during one stage of one epoch.

    ``log`` only appends the detached value and its weight; the reduction runs once per stage (and every
    ``FLUSH_EVERY`` values of a name, which bounds the memory of long epochs), on the values' device.
    """

    FLUSH_EVERY = 1024
    """Values of one name kept before they are folded into the running reduction."""

    def __init__(self) -> None:
        self.stage = "train"
        self.batch_size = 1
        self.step = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._weights: dict[str, float] = {}
        self._reduce: dict[str, str] = {}
        self._pending: dict[str, tuple[list[Any], list[float]]] = {}
        self._metrics: dict[str, Metric] = {}
        self._steps: list[tuple[int, str, torch.Tensor]] = []
        self.prog_bar: set[str] = set()
        self.latest: dict[str, float] = {}
        """The last epoch value of every name this fold logged (training and validation): Lightning's
        ``callback_metrics``."""

    def callback_metrics(self) -> dict[str, torch.Tensor]:
        """Return `latest` as tensors, as ``lightning.Trainer.callback_metrics`` holds them."""
        return {name: torch.tensor(value) for name, value in self.latest.items()}

    def progress_bar_metrics(self) -> dict[str, float]:
        """Return the latest values of the names logged with ``prog_bar=True``."""
        return {name: value for name, value in self.latest.items() if name in self.prog_bar}

    def start(self, stage: str) -> None:
        """Begin collecting a new stage (``train``, ``val``, ``test``); forget the previous one."""
        self.stage = stage
        self._sums.clear()
        self._weights.clear()
        self._reduce.clear()
        self._pending.clear()
        self._metrics.clear()
        self._steps.clear()

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
        if prog_bar:
            self.prog_bar.add(name)
        if isinstance(value, Metric):
            if on_epoch is not False:
                self._metrics[name] = value
            return
        if isinstance(value, torch.Tensor) and reduce_fx == "mean" and value.numel() == 1:
            value = value.detach()  # the common case, checked without a copy; cast and reshaped per stage
        else:
            reduce_fx, value = checked_scalar(name, value, reduce_fx)
        if on_step:
            self._steps.append((self.step, name, value))
        if on_epoch is False:
            return
        known = self._reduce.setdefault(name, reduce_fx)  # a name from here on ("mean" or checked_scalar's)
        if known != reduce_fx:
            raise LcvError(
                f"self.log('{name}', ...) was logged with reduce_fx={known!r} and then {reduce_fx!r} in the same "
                "epoch; log a metric with one reduction."
            )
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = ([], [])
        values, weights = pending
        values.append(value)
        weights.append(batch_size if batch_size is not None else self.batch_size)
        if len(values) >= self.FLUSH_EVERY:
            self._flush(name)

    def _flush(self, name: str) -> None:
        """Fold the pending values of ``name`` into its running reduction (a few tensor ops for all of them)."""
        values, weights = self._pending.pop(name)
        if not values:
            return
        device = values[0].device
        stacked = torch.stack([v.reshape(()).to(device, torch.float32) for v in values])
        reduce = self._reduce[name]
        if reduce == "mean":
            part = (stacked * torch.tensor(weights, dtype=torch.float32, device=device)).sum()
        elif reduce == "sum":
            part = stacked.sum()
        elif reduce == "max":
            part = stacked.max()
        else:
            part = stacked.min()
        old = self._sums.get(name)
        if old is None:
            self._sums[name] = part
            self._weights[name] = float(sum(weights))
            return
        part = part.to(old.device)
        if reduce in ("mean", "sum"):
            self._sums[name] = old + part
        elif reduce == "max":
            self._sums[name] = torch.maximum(old, part)
        else:
            self._sums[name] = torch.minimum(old, part)
        self._weights[name] += float(sum(weights))

    def flush(self) -> None:
        """Fold every pending value into the running reductions (``reduce`` does this itself)."""
        for name in list(self._pending):
            self._flush(name)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values, with the signature of ``LightningModule.log_dict``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)

    def reduce(self) -> dict[str, float]:
        """Return the epoch value of every logged value (one host read) and reset logged Metric objects."""
        self.flush()
        names = list(self._sums)
        out: dict[str, float] = {}
        if names:
            device = self._sums[names[0]].device
            values = [self._sums[n] / self._weights[n] if self._reduce[n] == "mean" else self._sums[n] for n in names]
            out = dict(zip(names, torch.stack([v.to(device) for v in values]).cpu().tolist(), strict=True))
        for name, metric in self._metrics.items():
            out[name] = float(metric.compute())
            metric.reset()
        self.latest.update(out)
        return out

    def step_values(self) -> list[tuple[int, dict[str, float]]]:
        """Return the ``on_step`` values of this stage as ``(step, {name: value})`` rows (one host read)."""
        if not self._steps:
            return []
        device = self._steps[0][2].device
        values = torch.stack([v.reshape(()).to(device, torch.float32) for _, _, v in self._steps]).cpu().tolist()
        rows: dict[int, dict[str, float]] = {}
        for (step, name, _), value in zip(self._steps, values, strict=True):
            rows.setdefault(step, {})[name] = value
        return list(rows.items())


def batch_size_of(batch: Any) -> int:
    """Infer the batch size as Lightning does: the length of the first tensor found in the batch."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        for v in batch.values():
            size = batch_size_of(v)
            if size:
                return size
    if isinstance(batch, (list, tuple)):
        for v in batch:
            size = batch_size_of(v)
            if size:
                return size
    return 0


def on_device(batch: Any, device: torch.device) -> bool:
    """Whether ``batch`` (a tensor, or a flat tuple/list/dict of tensors) is on ``device`` already.

    Nested or other batches answer ``False`` (and go through ``Fabric.to_device``, which handles any structure).
    """
    if isinstance(batch, torch.Tensor):
        return batch.device == device
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else None
    return items is not None and all(isinstance(t, torch.Tensor) and t.device == device for t in items)
