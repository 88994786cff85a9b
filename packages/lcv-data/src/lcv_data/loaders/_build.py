"""Loader settings per split, checked once, and the loader one fold's split is served by."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lcv_config import ConfigError
from lcv_config.errors import did_you_mean
from lcv_config.schema import DATALOADER_KEYS
from lcv_data.loaders.dataloader import ResumableDataLoader, SplitDataset
from lcv_data.loaders.tensor import TensorBatchLoader
from lcv_data.sources import Source
from lcv_data.transforms.staged import SPLITS, SamplePipeline

_SPLITS = ("default", *SPLITS)
_SLOW_KEYS = ("collate_fn", "sampler", "batch_sampler", "worker_init_fn", "multiprocessing_context")


def check_loader_settings(dataloaders: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the loader settings per split, or raise a ConfigError naming an unknown split or key."""
    settings = {k: dict(v) for k, v in dataloaders.items()}
    for split, values in settings.items():
        if split not in _SPLITS:
            raise ConfigError(
                f"Unknown dataloader split '{split}'.{did_you_mean(split, _SPLITS)} "
                f"Valid splits: {', '.join(_SPLITS)}.",
                "data.dataloaders",
            )
        unknown = sorted(set(values) - set(DATALOADER_KEYS))
        if unknown:
            hint = "".join(did_you_mean(k, DATALOADER_KEYS) for k in unknown)
            raise ConfigError(
                f"Unknown dataloader key(s) {', '.join(unknown)} for '{split}'.{hint} "
                f"Valid keys: {', '.join(DATALOADER_KEYS)}.",
                f"data.dataloaders.{split}",
            )
    return settings


def split_settings(loader_settings: Mapping[str, Mapping[str, Any]], split: str) -> dict[str, Any]:
    """Return the settings of ``split``: the defaults, then ``default``'s, then the split's own."""
    merged: dict[str, Any] = {"batch_size": 32, "shuffle": split == "train", "drop_last": False}
    merged.update(loader_settings.get("default", {}))
    merged.update(loader_settings.get(split, {}))
    if split != "train":
        merged["drop_last"] = False  # never drop validation, test or predict samples
    if split == "val":
        if loader_settings.get("val", {}).get("shuffle"):
            raise ConfigError(
                "data.dataloaders.val.shuffle is true, but validation batches come in the fold's order: out-of-fold "
                "predictions line up with it, and shuffling them changes no score. Remove the key (shuffle applies "
                "to training batches).",
                "data.dataloaders.val.shuffle",
            )
        merged["shuffle"] = False  # `default`'s shuffle is for the training batches
    return merged


def make_loader(
    src: Source,
    indices: np.ndarray,
    pipeline: SamplePipeline,
    split: str,
    settings: dict[str, Any],
    fitted: tuple[list[Any], list[Any]],
    seed: int,
) -> Any:
    """Return a loader over ``indices`` of ``src``: the tensor fast path when nothing needs per-sample work.

    Args:
        src: The data source.
        indices: The samples of this split.
        pipeline: The per-sample transforms.
        split: ``train``, ``val``, ``test`` or ``predict``.
        settings: The split's loader settings (from `split_settings()`).
        fitted: The fold's fitted input and target transforms.
        seed: Seed of the shuffling.
    """
    fitted_x, fitted_y = fitted
    s = settings
    fast = (
        src.tensors is not None
        and pipeline.is_empty(split)
        and not any(s.get(k) for k in _SLOW_KEYS)
        and not s.get("num_workers")
    )
    if fast:
        assert src.tensors is not None
        return TensorBatchLoader(
            src.tensors,
            torch.as_tensor(indices),
            batch_size=s["batch_size"],
            shuffle=s["shuffle"],
            drop_last=s["drop_last"],
            seed=seed,
            transform=_chain(fitted_x),
            target_transform=_chain(fitted_y),
            input_key=src.input_key,
            target_key=src.target_key,
        )
    if not s.get("num_workers"):
        s = {k: v for k, v in s.items() if k not in ("prefetch_factor", "persistent_workers")}
    if s.get("shuffle"):
        s.setdefault("generator", torch.Generator().manual_seed(seed))
    dataset = SplitDataset(src.dataset, indices, pipeline, split, fitted_x, fitted_y, src.input_key, src.target_key)
    return ResumableDataLoader(dataset, **s)


def _chain(transforms: Sequence[Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not transforms:
        return None

    def apply(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t.transform(x)
        return x

    return apply
