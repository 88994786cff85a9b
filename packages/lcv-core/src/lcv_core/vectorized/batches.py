"""The ``vectorized`` schedule's batches and steps: the folds' batches stacked, one step under ``vmap``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import torch
from lightning.fabric import Fabric
from lightning.fabric.plugins.precision import Precision
from lightning.pytorch import LightningModule
from torch import nn
from torch.func import functional_call, vmap
from torchmetrics import Metric

from lcv_config import LcvError
from lcv_core.core.lightning_compat import is_fabric_loader
from lcv_core.core.metric_log import batch_size_of, checked_scalar, on_device
from lcv_core.vectorized.batched_ops import batched_ops
from lcv_core.vectorized.metric_log import Deferred


def _prepare(batch: Any, loader: Any, fabric: Fabric | None) -> Any:
    if fabric is None:
        return batch
    if not is_fabric_loader(loader) and not on_device(batch, fabric.device):
        batch = fabric.to_device(batch)  # Fabric's loaders move batches themselves
    precision = fabric.strategy.precision
    return batch if type(precision) is Precision else precision.convert_input(batch)


def _precision(fabric: Fabric | None) -> AbstractContextManager[Any]:
    return fabric.strategy.precision.forward_context() if fabric is not None else nullcontext()


LogEntry = tuple[str, str, bool, bool, int | None]
"""One ``self.log`` call as the engine records it: name, reduction, on_step, on_epoch, batch size."""

LogValue = torch.Tensor | Deferred
"""The per-fold values of one ``self.log`` call: a tensor with the fold dimension first, or computed later."""


class _StepCall(nn.Module):
    """Holds the template module so ``functional_call`` can run its ``*_step`` methods, not only ``forward``."""

    def __init__(self, module: LightningModule) -> None:
        super().__init__()
        self.m = module

    def forward(self, stage: str, batch: Any, batch_idx: int) -> Any:
        """Run the template module's ``<stage>_step``."""
        return getattr(self.m, f"{stage}_step")(batch, batch_idx)


class _Slots:
    """Where the template's parameters and buffers are registered, to swap the folds' stacked tensors in and out.

    ``functional_call`` does this in general at a few hundred µs a call; here the registration dicts are
    updated directly. A tensor registered in several places (tied weights) gets the same stacked tensor in each.
    ``None`` from `of()` when a submodule is parametrized (``torch.nn.utils.parametrize``): those go through
    ``functional_call``.
    """

    def __init__(self, slots: list[tuple[dict[str, Any], str, str]]) -> None:
        self.slots = slots

    @classmethod
    def of(cls, module: nn.Module) -> _Slots | None:
        """Return the slots of ``module``, or ``None`` when only ``functional_call`` can swap its tensors."""
        from torch.nn.utils import parametrize

        names = {id(t): n for n, t in module.named_parameters()} | {id(t): n for n, t in module.named_buffers()}
        slots: list[tuple[dict[str, Any], str, str]] = []
        for _, sub in module.named_modules(remove_duplicate=False):
            if parametrize.is_parametrized(sub):
                return None
            for registry in (sub._parameters, sub._buffers):
                slots.extend((registry, key, names[id(t)]) for key, t in registry.items() if t is not None)
        return cls(slots)

    def call(self, state: Mapping[str, torch.Tensor], fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` with ``state``'s tensors in place of the module's own, then put those back."""
        saved = [(registry, key, registry[key]) for registry, key, _ in self.slots]
        try:
            for registry, key, name in self.slots:
                registry[key] = state[name]
            return fn(*args)
        finally:
            for registry, key, old in reversed(saved):
                registry[key] = old


class _Recorder:
    """Stands in for ``self.log`` inside ``vmap``: remembers names and options, returns the values as outputs."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.values: list[torch.Tensor] = []

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
        if isinstance(value, Metric):
            raise LcvError(f"self.log('{name}', <torchmetrics Metric>) cannot run per fold inside one batched step")
        if isinstance(value, torch.Tensor) and reduce_fx == "mean" and value.numel() == 1:
            reduce = "mean"  # the common case: no tensor op here (each costs more under vmap); detached outside
        else:
            reduce, value = checked_scalar(name, value, reduce_fx)
        self.entries.append((name, reduce, bool(on_step), on_epoch is not False, batch_size))
        self.values.append(value)

    def log_dict(self, dictionary: Mapping[str, Any], **kwargs: Any) -> None:
        """Record several values, with the signature of ``LightningModule.log_dict``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)


def _signature(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return (tuple(batch.shape), batch.dtype, batch.device)
    if isinstance(batch, Mapping):
        return tuple((k, _signature(v)) for k, v in batch.items())
    if isinstance(batch, (list, tuple)):
        return (type(batch).__name__, tuple(_signature(v) for v in batch))
    return ("leaf", repr(batch))


def _stack(batches: Sequence[Any]) -> tuple[Any, Any]:
    """Stack a list of same-shaped batches along a new fold dimension; return ``(stacked, in_dims)``."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(batches)), 0
    if isinstance(first, Mapping):
        parts = {k: _stack([b[k] for b in batches]) for k in first}
        return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}
    if isinstance(first, (list, tuple)):
        items = [_stack([b[i] for b in batches]) for i in range(len(first))]
        return type(first)(v[0] for v in items), type(first)(v[1] for v in items)
    return first, None


class _Group:
    """Folds whose batches of one step have the same shapes, their batches stacked along a new fold dimension."""

    __slots__ = ("batch", "folds", "in_dims", "sizes")

    def __init__(self, folds: list[int], batch: Any, in_dims: Any, sizes: list[float]) -> None:
        self.folds = folds
        self.batch = batch
        self.in_dims = in_dims
        self.sizes = sizes
        """Each fold's batch size (the weight of its logged values)."""

    @classmethod
    def of(cls, folds: list[int], batches: Sequence[Any]) -> _Group:
        """Stack the batches of ``folds``."""
        batch, in_dims = _stack(batches)
        return cls(folds, batch, in_dims, [float(max(1, batch_size_of(b))) for b in batches])


class _Gather:
    """All folds' batches of a step as one indexing operation on the dataset's tensors (lcv-data's fast path).

    Usable when every fold's loader is an lcv-data ``TensorBatchLoader`` (it has ``epoch_order()``) over the
    same tensors, with the same batch size and no fitted transforms: the batch of step ``b`` of every fold is
    then ``tensors[index]`` with ``index`` of shape ``(k, batch)``, already stacked for ``vmap``; consecutive whole
    steps are gathered together (one ``index_select`` per tensor for up to ``CHUNK_BYTES``). Batch order
    is the loaders' own (``epoch_order()`` advances their epoch as iterating would). Steps where a fold's batch
    is smaller (the last one) or missing gather the folds of each batch size together.
    """

    def __init__(self, loaders: Sequence[Any]) -> None:
        self.loaders = list(loaders)
        first = self.loaders[0]
        self.tensors = first.tensors
        self.batch_size = int(first.batch_size)

    @staticmethod
    def usable(loaders: Sequence[Any]) -> bool:
        """Whether the loaders qualify (see the class docstring)."""
        first = loaders[0]
        return all(
            callable(getattr(loader, "epoch_order", None))
            and getattr(loader, "tensors", None) is getattr(first, "tensors", None)
            and getattr(loader, "batch_size", None) == getattr(first, "batch_size", None)
            and getattr(loader, "transform", None) is None
            and getattr(loader, "target_transform", None) is None
            for loader in loaders
        )

    CHUNK_BYTES = 16 * 2**20
    """Whole steps are gathered together up to this many bytes of batches (one indexing operation per tensor)."""

    def _take(self, index: torch.Tensor) -> Any:
        # index_select on the flattened index: about half the cost of advanced indexing ``t[index]``
        flat, shape = index.reshape(-1), tuple(index.shape)
        if isinstance(self.tensors, dict):
            return {k: t.index_select(0, flat).view(*shape, *t.shape[1:]) for k, t in self.tensors.items()}
        return tuple(t.index_select(0, flat).view(*shape, *t.shape[1:]) for t in self.tensors)

    def _chunk_steps(self, k: int) -> int:
        """How many whole steps of ``k`` folds one gather takes."""
        tensors = self.tensors.values() if isinstance(self.tensors, dict) else self.tensors
        step_bytes = k * self.batch_size * sum(int(t[:1].numel() * t.element_size()) for t in tensors)
        return max(1, min(64, self.CHUNK_BYTES // max(1, step_bytes)))

    def _split(self, chunk: Any) -> list[Any]:
        """Split a gathered chunk ``(steps, k, batch, ...)`` into each step's stacked batch."""
        if isinstance(chunk, dict):
            parts = {key: t.unbind(0) for key, t in chunk.items()}
            return [{key: p[i] for key, p in parts.items()} for i in range(len(next(iter(parts.values()))))]
        return list(zip(*(t.unbind(0) for t in chunk), strict=True))  # tuples, as `_take` gives

    def steps(self, counts: list[int], fabric: Fabric | None) -> Iterator[list[_Group]]:
        """Yield the groups of every step of one epoch; fold ``f`` takes part in its first ``counts[f]`` steps."""
        orders = [loader.epoch_order() for loader in self.loaders]
        bs, k = self.batch_size, len(orders)
        full = min(min(len(o) // bs for o in orders), min(counts))  # steps where every fold has a whole batch
        stacked = torch.stack([o[: full * bs].view(full, bs) for o in orders], dim=1) if full else None
        in_dims = {key: 0 for key in self.tensors} if isinstance(self.tensors, dict) else (0,) * len(self.tensors)
        sizes = [float(bs)] * k
        every = list(range(k))
        if stacked is not None:
            chunk = self._chunk_steps(k)
            for start in range(0, full, chunk):
                gathered = _prepare(self._take(stacked[start : start + chunk]), None, fabric)
                for batch in self._split(gathered):
                    yield [_Group(every, batch, in_dims, sizes)]
        for b in range(full, max(counts)):
            by_size: dict[int, tuple[list[int], list[torch.Tensor]]] = {}  # folds whose batches have one size
            for f, o in enumerate(orders):
                if b < counts[f]:
                    rows = o[b * bs : (b + 1) * bs]
                    folds, parts = by_size.setdefault(len(rows), ([], []))
                    folds.append(f)
                    parts.append(rows)
            yield [
                _Group(
                    folds,
                    _prepare(self._take(torch.stack(parts)), None, fabric),
                    in_dims,
                    [float(max(1, n))] * len(folds),
                )
                for n, (folds, parts) in by_size.items()
            ]


def _group(items: list[tuple[int, Any]]) -> list[_Group]:
    """Split one step's ``(fold, batch)`` items into groups of same-shaped batches, stacked."""
    groups: dict[Any, tuple[list[int], list[Any]]] = {}
    for fold, batch in items:
        folds, batches = groups.setdefault(_signature(batch), ([], []))
        folds.append(fold)
        batches.append(batch)
    return [_Group.of(folds, batches) for folds, batches in groups.values()]


class Stepper(Protocol):
    """Runs one step of k folds on their stacked parameters: the ``vmap`` one or lcv's grouped kernels."""

    def __call__(
        self,
        stage: str,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        group: _Group,
        batch_idx: int,
    ) -> tuple[torch.Tensor | None, list[LogEntry], list[LogValue]]:
        """Return the per-fold losses (``None`` outside training), the log entries and their per-fold values."""
        ...

    def epoch_metrics(self, k: int) -> list[dict[str, float]]:
        """Compute and reset the metric objects updated since the last call; return their values per fold."""
        ...

    def discard_metrics(self) -> None:
        """Reset the metric objects updated since the last call without computing them (after a trial step)."""
        ...

    def stored(self, name: str, stacked: torch.Tensor) -> torch.Tensor:
        """Return parameter ``name`` stacked as the module holds it, ``(k, *shape)``, in the layout the step uses."""
        ...

    def module_view(self, name: str, stored: torch.Tensor) -> torch.Tensor:
        """Return a tensor in the step's layout as a ``(k, *shape)`` view in the module's layout."""
        ...


class _Stepper:
    """Runs ``<stage>_step`` of the template module under ``vmap`` over stacked parameters and batches."""

    def __init__(self, module: LightningModule) -> None:
        self.module = module
        self.call = _StepCall(module)
        self.slots = _Slots.of(module)
        self.recorder = _Recorder()

    def __call__(
        self,
        stage: str,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        group: _Group,
        batch_idx: int,
    ) -> tuple[torch.Tensor | None, list[LogEntry], list[LogValue]]:
        """Return the per-fold losses (``None`` in validation), the log entries and their per-fold values."""
        batch, in_dims = group.batch, group.in_dims
        slots, recorder = self.slots, self.recorder
        if slots is None:
            state = {f"m.{n}": t for n, t in params.items()} | {f"m.{n}": t for n, t in buffers.items()}
        else:
            state = params | buffers if buffers else params
        method = getattr(self.module, f"{stage}_step")

        def step(state: dict[str, torch.Tensor], batch: Any) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            recorder.entries, recorder.values = [], []
            if slots is None:
                out = functional_call(self.call, state, (stage, batch, batch_idx))
            else:
                out = slots.call(state, method, batch, batch_idx)
            if stage != "training":
                return torch.zeros(()), tuple(recorder.values)
            loss = out["loss"] if isinstance(out, Mapping) else out
            if not isinstance(loss, torch.Tensor):
                raise LcvError(f"training_step returned {type(out).__name__}; the vectorized schedule needs a loss.")
            return loss, tuple(recorder.values)

        # self.log goes to the recorder; set in the instance dict directly (nn.Module.__setattr__ is slow)
        attrs = self.module.__dict__
        saved: dict[str, Any] = {k: attrs[k] for k in ("log", "log_dict") if k in attrs}
        attrs["log"], attrs["log_dict"] = recorder.log, recorder.log_dict
        try:
            with batched_ops():  # F.linear / F.cross_entropy on the stacked tensors directly (same numbers, faster)
                loss, values = vmap(step, in_dims=(0, in_dims), randomness="different")(state, batch)
        finally:
            attrs.pop("log", None)
            attrs.pop("log_dict", None)
            attrs.update(saved)
        return (loss if stage == "training" else None), list(recorder.entries), list(values)

    def epoch_metrics(self, k: int) -> list[dict[str, float]]:
        """No metric objects under ``vmap`` (``self.log`` of a torchmetrics ``Metric`` is refused): empty dicts."""
        return [{} for _ in range(k)]

    def discard_metrics(self) -> None:
        """Nothing to reset under ``vmap``."""

    def stored(self, name: str, stacked: torch.Tensor) -> torch.Tensor:
        """The module's layout: ``vmap`` swaps each fold's slice into the module as it is."""
        return stacked

    def module_view(self, name: str, stored: torch.Tensor) -> torch.Tensor:
        """The module's layout already."""
        return stored
