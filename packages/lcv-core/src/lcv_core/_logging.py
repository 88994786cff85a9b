"""Intercept a LightningModule's ``self.log``/``self.log_dict`` inside the fold loop.

Values are accumulated on their device (weighted by batch size) and read back once per fold and
epoch, so logging adds no host synchronisation per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import Metric


class FoldMetricLog:
    """Collects what one fold's module logs during one stage of one epoch."""

    def __init__(self) -> None:
        self.stage = "train"
        self.batch_size = 1
        self._sums: dict[str, torch.Tensor] = {}
        self._weights: dict[str, float] = {}
        self._metrics: dict[str, Metric] = {}
        self.prog_bar: set[str] = set()
        self.step_values: dict[str, torch.Tensor] = {}

    def start(self, stage: str) -> None:
        """Begin collecting a new stage (``train``, ``val``, ``test``); forget the previous one."""
        self.stage = stage
        self._sums.clear()
        self._weights.clear()
        self._metrics.clear()
        self.step_values.clear()

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
            self._metrics[name] = value
            return
        weight = float(batch_size if batch_size is not None else self.batch_size)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"self.log('{name}', ...) needs a scalar; got a tensor of shape {tuple(value.shape)}")
            value = value.detach().reshape(()).float()
        else:
            value = torch.tensor(float(value))
        self.step_values[name] = value
        if name in self._sums:
            self._sums[name] = self._sums[name] + value.to(self._sums[name].device) * weight
            self._weights[name] += weight
        else:
            self._sums[name] = value * weight
            self._weights[name] = weight

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values, with the signature of ``LightningModule.log_dict``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)

    def reduce(self) -> dict[str, float]:
        """Return the batch-size-weighted epoch mean of every logged value, with one host read."""
        names = list(self._sums)
        out: dict[str, float] = {}
        if names:
            devices = {self._sums[n].device for n in names}
            device = next(iter(devices))
            means = torch.stack([(self._sums[n] / self._weights[n]).to(device) for n in names])
            out = dict(zip(names, means.cpu().tolist()))
        for name, metric in self._metrics.items():
            out[name] = float(metric.compute())
            metric.reset()
        return out


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
