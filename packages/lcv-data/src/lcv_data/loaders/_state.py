"""The saved state of a torch ``DataLoader``: what decides its next epoch's batch order, checked when restored.

The one place that reads torch's private ``DataLoader._iterator`` (whether persistent workers are alive).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from lcv_config import LcvError


def check_kind(state: Mapping[str, Any], kind: str, num_samples: int) -> None:
    """Raise an `LcvError` unless ``state`` is a ``kind`` loader's over ``num_samples`` samples."""
    if state.get("kind") != kind:
        raise LcvError(
            f"A state of a {state.get('kind')} loader cannot be loaded into a {kind}: the resumed run serves its data "
            "through another loader (were the dataloader settings or transforms changed?)."
        )
    if state.get("num_samples") != num_samples:
        raise LcvError(
            f"The loader state was taken from a loader over {state.get('num_samples')} samples; this one serves "
            f"{num_samples}: a different fold or dataset."
        )


def _generators(loader: DataLoader[Any]) -> list[torch.Generator]:
    """Return the distinct generators the loader and its samplers draw from, in a fixed order."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    holders = (loader, loader.sampler, getattr(batch_sampler, "sampler", None))
    found: list[torch.Generator] = []
    for holder in holders:
        g = getattr(holder, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not seen for seen in found):
            found.append(g)
    return found


def persistent_iterator_alive(loader: DataLoader[Any]) -> bool:
    """Return whether the loader keeps a persistent-workers iterator (torch's private ``_iterator``)."""
    return getattr(loader, "_iterator", None) is not None


def dataloader_state(loader: DataLoader[Any], epoch: int) -> dict[str, Any]:
    """Return the state of any ``DataLoader``: its generators' states, its sampler's epoch, ``epoch`` started."""
    sampler_epoch = getattr(loader.sampler, "epoch", None)  # DistributedSampler shuffles from seed + epoch
    return {
        "kind": "DataLoader",
        "epoch": epoch,
        "generators": [g.get_state() for g in _generators(loader)],
        "sampler_epoch": sampler_epoch if isinstance(sampler_epoch, int) else None,
        "persistent_iterator": persistent_iterator_alive(loader),
        "num_samples": len(loader.dataset),  # type: ignore[arg-type]  # lcv-data serves map-style datasets
    }


def load_dataloader_state(loader: DataLoader[Any], state: Mapping[str, Any]) -> int:
    """Restore a `dataloader_state()` into ``loader``; return the saved epoch count.

    Raises:
        LcvError: The state is not a ``DataLoader``'s, or its samples or generators differ from the loader's.
    """
    check_kind(state, "DataLoader", len(loader.dataset))  # type: ignore[arg-type]
    generators = _generators(loader)
    saved = list(state["generators"])
    if len(saved) != len(generators):
        raise LcvError(
            f"The loader state holds {len(saved)} generator state(s); this loader draws from {len(generators)}: "
            "was shuffle or the sampler changed?"
        )
    for g, g_state in zip(generators, saved, strict=True):
        g.set_state(g_state)
    if state.get("sampler_epoch") is not None and callable(getattr(loader.sampler, "set_epoch", None)):
        loader.sampler.set_epoch(int(state["sampler_epoch"]))  # type: ignore[attr-defined]  # checked just above
    return int(state["epoch"])
