"""What k folds log in one batched step, reduced per fold (the ``vectorized`` schedule)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from lcv_config import LcvError
from lcv_core.core.metric_log import FoldMetricLog


class Deferred:
    """A per-fold value of one step computed later, together with the others of its kind (one op per batch of them).

    ``compute`` takes the ``args`` of several deferred values with equal shapes and returns their values as rows
    of an ``(n, k)`` tensor, exactly those each would give alone: the step's own ops, vectorized over steps.
    """

    __slots__ = ("args", "compute", "nbytes")
    requires_grad = False

    def __init__(self, compute: Callable[[list[tuple[torch.Tensor, ...]]], torch.Tensor], *args: torch.Tensor) -> None:
        self.compute, self.args = compute, args
        self.nbytes = sum(a.numel() * a.element_size() for a in args)

    def key(self) -> tuple[Any, ...]:
        """Deferred values with one key are computed together."""
        return (self.compute, *((a.shape, a.dtype, a.device) for a in self.args))

    @staticmethod
    def resolve(values: list[Any]) -> list[torch.Tensor]:
        """Return ``values`` with every run of deferred ones of one key computed together, one row each."""
        out: list[torch.Tensor] = []
        i = 0
        while i < len(values):
            value = values[i]
            if not isinstance(value, Deferred):
                out.append(value)
                i += 1
                continue
            key, j = value.key(), i + 1
            while j < len(values) and isinstance(values[j], Deferred) and values[j].key() == key:
                j += 1
            out.extend(value.compute([v.args for v in values[i:j]]).unbind(0))
            i = j
        return out


class _FoldsLog:
    """Epoch values logged by k folds, reduced per fold on device with one host read per epoch."""

    DEFERRED_BYTES = 4 * 2**20
    """`Deferred` values of a name are computed once they hold this many bytes (and at every flush)."""

    def __init__(self, k: int, device: torch.device) -> None:
        self.k, self.device = k, device
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.reduce_fx: dict[str, str] = {}
        self.pending: dict[str, list[tuple[torch.Tensor | Deferred, list[float]]]] = {}
        self.deferred_bytes: dict[str, int] = {}
        self.steps: list[tuple[list[int], list[int], str, torch.Tensor]] = []

    def start(self) -> None:
        """Forget the previous stage."""
        self.sums.clear()
        self.weights.clear()
        self.counts.clear()
        self.reduce_fx.clear()
        self.pending.clear()
        self.deferred_bytes.clear()
        self.steps.clear()

    def add(
        self,
        name: str,
        reduce: str,
        folds: torch.Tensor | None,
        values: torch.Tensor | Deferred,
        weights: torch.Tensor | list[float],
    ) -> None:
        """Accumulate ``values`` (one per fold in ``folds``, all folds when ``None``) weighted by ``weights``.

        Values of all folds are only kept until the end of the stage (or ``FoldMetricLog.FLUSH_EVERY`` of them)
        and then reduced together; a subset of folds (a ragged last batch) is accumulated at once.
        """
        if name not in self.sums:
            fill = {"mean": 0.0, "sum": 0.0, "max": -math.inf, "min": math.inf}[reduce]
            self.sums[name] = torch.full((self.k,), fill, device=self.device)
            self.weights[name] = torch.zeros(self.k, device=self.device)
            self.counts[name] = torch.zeros(self.k, device=self.device)
            self.reduce_fx[name] = reduce
        elif self.reduce_fx[name] != reduce:
            raise LcvError(
                f"self.log('{name}', ...) was logged with reduce_fx={self.reduce_fx[name]!r} and then {reduce!r} "
                "in the same epoch; log a metric with one reduction."
            )
        if folds is None:
            pending = self.pending.setdefault(name, [])
            pending.append((values, weights if isinstance(weights, list) else weights.tolist()))
            if len(pending) >= FoldMetricLog.FLUSH_EVERY:
                self._flush(name)
            elif isinstance(values, Deferred):
                held = self.deferred_bytes[name] = self.deferred_bytes.get(name, 0) + values.nbytes
                if held >= self.DEFERRED_BYTES:
                    self._resolve(name)
            return
        if isinstance(values, Deferred):
            values = Deferred.resolve([values])[0]
        self._accumulate(name, folds, values, weights)

    def _resolve(self, name: str) -> None:
        """Compute the name's pending `Deferred` values now (memory), leaving them pending as tensors."""
        pending = self.pending.get(name, [])
        resolved = Deferred.resolve([v for v, _ in pending])
        self.pending[name] = [(v, w) for v, (_, w) in zip(resolved, pending, strict=True)]
        self.deferred_bytes[name] = 0

    def _flush(self, name: str) -> None:
        pending = self.pending.pop(name, [])
        self.deferred_bytes.pop(name, None)
        if not pending:
            return
        rows = Deferred.resolve([v for v, _ in pending])
        values = torch.stack([v.reshape(self.k).to(self.device, torch.float32) for v in rows])
        weights = torch.tensor([w for _, w in pending], dtype=torch.float32, device=self.device)
        self.counts[name] += len(pending)
        reduce = self.reduce_fx[name]
        self.weights[name] += weights.sum(0)
        if reduce == "mean":
            self.sums[name] += (values * weights).sum(0)
        elif reduce == "sum":
            self.sums[name] += values.sum(0)
        else:
            op = torch.maximum if reduce == "max" else torch.minimum
            self.sums[name] = op(self.sums[name], values.amax(0) if reduce == "max" else values.amin(0))

    def _accumulate(
        self, name: str, folds: torch.Tensor, values: torch.Tensor, weights: torch.Tensor | list[float]
    ) -> None:
        reduce = self.reduce_fx[name]
        values = values.reshape(-1).to(self.device, torch.float32)  # as FoldMetricLog: epoch values in float32
        weights = torch.as_tensor(weights, dtype=torch.float32).to(self.device)
        ones = torch.ones_like(values)
        self.counts[name].index_add_(0, folds, ones)
        self.weights[name].index_add_(0, folds, weights)
        if reduce in ("mean", "sum"):
            self.sums[name].index_add_(0, folds, values * weights if reduce == "mean" else values)
        else:
            op = torch.maximum if reduce == "max" else torch.minimum
            self.sums[name][folds] = op(self.sums[name][folds], values)

    def reduce(self) -> list[dict[str, float]]:
        """Return each fold's epoch values."""
        for name in list(self.pending):
            self._flush(name)
        out: list[dict[str, float]] = [{} for _ in range(self.k)]
        names = list(self.sums)
        if not names:
            return out
        rows = []
        for n in names:
            value = self.sums[n] / self.weights[n] if self.reduce_fx[n] == "mean" else self.sums[n]
            rows.append(torch.stack([value, self.counts[n]]))
        table = torch.stack(rows).cpu().tolist()
        for n, (values, counts) in zip(names, table, strict=True):
            for fold in range(self.k):
                if counts[fold] > 0:
                    out[fold][n] = values[fold]
        return out

    def step_rows(self) -> list[list[tuple[int, dict[str, float]]]]:
        """Return every fold's ``on_step`` values as ``(step, {name: value})`` rows (one host read for all)."""
        rows: list[dict[int, dict[str, float]]] = [{} for _ in range(self.k)]
        if not self.steps:
            return [[] for _ in range(self.k)]
        read = iter(torch.cat([v.reshape(-1).to(torch.float64) for *_, v in self.steps]).cpu().tolist())
        for folds, steps, name, _ in self.steps:
            for fold, step in zip(folds, steps, strict=True):
                rows[fold].setdefault(step, {})[name] = next(read)
        return [list(r.items()) for r in rows]


class _HookLog:
    """``self.log`` of one fold's module in its epoch hooks, routed into the folds' log."""

    def __init__(self, log: _FoldsLog, fold: int) -> None:
        self._log, self._fold = log, fold

    def log(self, name: str, value: Any, reduce_fx: Any = "mean", batch_size: int | None = None, **_: Any) -> None:
        """Record one value of this fold."""
        reduce = reduce_fx if isinstance(reduce_fx, str) else getattr(reduce_fx, "__name__", "mean")
        tensor = value.detach().reshape(1).float() if isinstance(value, torch.Tensor) else torch.tensor([float(value)])
        weight = torch.tensor([float(batch_size or 1)], device=self._log.device)
        self._log.add(name, reduce, torch.tensor([self._fold], device=self._log.device), tensor, weight)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values of this fold."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)
