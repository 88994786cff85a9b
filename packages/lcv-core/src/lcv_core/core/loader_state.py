"""Loaders' shuffling state: find the loader that keeps it behind wrappers, and put it back after a look ahead.

Iterating a loader counts an epoch (lcv-data's loaders, Fabric's wrapper) and draws from its generator (a
``DataLoader`` with ``generator=``). Code that takes a batch before training (the vectorized trial step, the ``auto``
schedule's probe) must leave both as they were, or the fold's batch order would shift against the other schedules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def loader_chain(loader: Any) -> list[Any]:
    """Return ``loader`` and the loaders it wraps (Fabric's ``_dataloader``, lcv-data's ``loader``)."""
    chain: list[Any] = []
    obj = loader
    while obj is not None and all(obj is not seen for seen in chain):
        chain.append(obj)
        attrs = getattr(obj, "__dict__", {})
        obj = attrs.get("_dataloader", attrs.get("loader"))
    return chain


LOADER_COUNTERS = ("epoch", "_num_iter_calls", "_skip_seed_draw")
"""Loader attributes iterating changes: epochs started (lcv-data's loaders), Fabric's iteration count, lcv-data's
resume flag."""


@contextmanager
def kept_loader_state(loaders: list[Any]) -> Iterator[None]:
    """Put every loader's shuffling state back after the block: generators, epoch and iteration counters.

    Iterating counts an epoch (lcv-data's loaders, Fabric's wrapper) and draws from the loader's generator (a
    ``DataLoader`` with ``generator=``); without the restore the probe would shift the folds' batch order.
    """
    generators: dict[int, tuple[torch.Generator, torch.Tensor]] = {}
    counters: list[tuple[Any, str, bool, Any]] = []  # holder, attribute, whether the instance had it, its value
    for loader in loaders:
        for obj in loader_chain(loader):
            holders = (
                obj,
                getattr(obj, "sampler", None),
                getattr(getattr(obj, "batch_sampler", None), "sampler", None),
            )
            for holder in holders:
                g = getattr(holder, "generator", None)
                if isinstance(g, torch.Generator) and id(g) not in generators:
                    generators[id(g)] = (g, g.get_state())
                for name in LOADER_COUNTERS:
                    value = getattr(holder, name, None)
                    if holder is not None and isinstance(value, (int, bool)):  # a class default counts as well
                        counters.append((holder, name, name in getattr(holder, "__dict__", {}), value))
    try:
        yield
    finally:
        for g, state in generators.values():
            g.set_state(state)
        for holder, name, own, value in counters:
            if own:
                setattr(holder, name, value)
            else:
                vars(holder).pop(name, None)  # back to the class default the loader started from
