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
    """Collects what one fold's module logs during one stage of one epoch."""

    def __init__(self) -> None:
        self.stage = "train"
        self.batch_size = 1
        self.step = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._weights: dict[str, float] = {}
        self._reduce: dict[str, str] = {}
        self._metrics: dict[str, Metric] = {}
        self._steps: list[tuple[int, str, torch.Tensor]] = []
        self.prog_bar: set[str] = set()

    def start(self, stage: str) -> None:
        """Begin collecting a new stage (``train``, ``val``, ``test``); forget the previous one."""
        self.stage = stage
        self._sums.clear()
        self._weights.clear()
        self._reduce.clear()
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
        reduce, value = checked_scalar(name, value, reduce_fx)
        if on_step:
            self._steps.append((self.step, name, value))
        if on_epoch is False:
            return
        weight = float(batch_size if batch_size is not None else self.batch_size)
        if name not in self._sums:
            self._reduce[name] = reduce
            self._sums[name] = value * weight if reduce == "mean" else value
            self._weights[name] = weight
            return
        old = self._sums[name]
        value = value.to(old.device)
        if reduce == "mean":
            self._sums[name] = old + value * weight
            self._weights[name] += weight
        elif reduce == "sum":
            self._sums[name] = old + value
        elif reduce == "max":
            self._sums[name] = torch.maximum(old, value)
        else:
            self._sums[name] = torch.minimum(old, value)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values, with the signature of ``LightningModule.log_dict``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)

    def reduce(self) -> dict[str, float]:
        """Return the epoch value of every logged value (one host read) and reset logged Metric objects."""
        names = list(self._sums)
        out: dict[str, float] = {}
        if names:
            device = self._sums[names[0]].device
            values = [self._sums[n] / self._weights[n] if self._reduce[n] == "mean" else self._sums[n] for n in names]
            out = dict(zip(names, torch.stack([v.to(device) for v in values]).cpu().tolist(), strict=True))
        for name, metric in self._metrics.items():
            out[name] = float(metric.compute())
            metric.reset()
        return out

    def step_values(self) -> list[tuple[int, dict[str, float]]]:
        """Return the ``on_step`` values of this stage as ``(step, {name: value})`` rows (one host read)."""
        if not self._steps:
            return []
        device = self._steps[0][2].device
        values = torch.stack([v.to(device) for _, _, v in self._steps]).cpu().tolist()
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
