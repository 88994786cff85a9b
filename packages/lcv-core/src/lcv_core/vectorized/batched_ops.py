"""Faster ``F.linear`` and ``F.cross_entropy`` for the folds' step under ``vmap`` (same numbers, fewer µs).

Under ``torch.func.vmap`` each operation of the user's ``training_step`` goes through functorch's batching rules:
``F.linear`` on stacked weights costs about 3 times a ``baddbmm`` over the same tensors, and ``F.cross_entropy``
runs a Python decomposition of ``nll_loss`` (about twice the plain kernel). While the folds' step runs,
`batched_ops` puts in ``torch.nn.functional`` two functions that, when both operands are batched over the folds at
the ``vmap`` level of that step (fold dimension first), compute the same result on the stacked tensors directly
(``baddbmm`` per layer; one ``cross_entropy`` over all folds' rows, averaged per fold) and hand it back batched. Any
other call (other arguments, shapes, levels, autocast on) goes to torch's own function unchanged.

The results and gradients are bitwise those of the batching rules (`tests/test_vectorized_ops.py`); it only
changes what a module reaching ``F.linear`` / ``F.cross_entropy`` through ``torch.nn.functional`` (``nn.Linear``,
``nn.CrossEntropyLoss``, ``F.cross_entropy(...)``) costs under ``vmap``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import functional

try:  # private functorch API (pinned torch); without it everything goes through the batching rules
    from torch._C._functorch import (
        _add_batch_dim,
        get_unwrapped,
        is_batchedtensor,
        maybe_get_bdim,
        maybe_get_level,
    )
except ImportError:  # pragma: no cover - depends on the torch build
    _AVAILABLE = False
else:
    _AVAILABLE = True

_linear = functional.linear
_cross_entropy = functional.cross_entropy


def _unwrapped(tensor: Any, level: int) -> torch.Tensor | None:
    """Return the stacked tensor under ``tensor`` if it is batched at ``level`` over dimension 0, else ``None``."""
    if (
        isinstance(tensor, torch.Tensor)
        and is_batchedtensor(tensor)
        and maybe_get_level(tensor) == level
        and maybe_get_bdim(tensor) == 0
    ):
        return get_unwrapped(tensor)
    return None


def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``; on a batch ``(k, n, in)`` and weights ``(k, out, in)`` batched over the folds, one ``baddbmm``."""
    if is_batchedtensor(weight) and not torch.is_autocast_enabled(weight.device.type):
        level = maybe_get_level(weight)
        x, w = _unwrapped(input, level), _unwrapped(weight, level)
        b = None if bias is None else _unwrapped(bias, level)
        if x is not None and w is not None and x.dim() == 3 and w.dim() == 3 and (bias is None or b is not None):
            out = torch.bmm(x, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            return _add_batch_dim(out, 0, level)
    return _linear(input, weight, bias)


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``F.cross_entropy``; on logits ``(k, n, classes)`` and class indices ``(k, n)`` batched over the folds, one call.

    One kernel over the ``k·n`` rows, averaged per fold over the rows whose target is not ``ignore_index``.
    """
    plain = weight is None and size_average is None and reduce is None and reduction == "mean" and not label_smoothing
    if plain and is_batchedtensor(input):
        level = maybe_get_level(input)
        logits, classes = _unwrapped(input, level), _unwrapped(target, level)
        if (
            logits is not None
            and classes is not None
            and logits.dim() == 3
            and classes.dim() == 2
            and not classes.is_floating_point()
            and not torch.is_autocast_enabled(logits.device.type)
        ):
            k, n, c = logits.shape
            rows = _cross_entropy(
                logits.reshape(k * n, c), classes.reshape(k * n), reduction="none", ignore_index=ignore_index
            )
            out = rows.view(k, n).sum(1) / (classes != ignore_index).sum(1)
            return _add_batch_dim(out, 0, level)
    return _cross_entropy(input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing)


@contextmanager
def batched_ops() -> Iterator[None]:
    """Put `linear` and `cross_entropy` in ``torch.nn.functional`` for the block (the folds' step under ``vmap``)."""
    if not _AVAILABLE:
        yield
        return
    functional.linear, functional.cross_entropy = linear, cross_entropy
    try:
        yield
    finally:
        functional.linear, functional.cross_entropy = _linear, _cross_entropy
