"""The ``DataLoader`` path: one split as an index view of the dataset, served by a resumable ``DataLoader``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lcv_data.loaders._state import dataloader_state, load_dataloader_state, persistent_iterator_alive


class ResumableDataLoader(DataLoader[Any]):
    """A ``torch.utils.data.DataLoader`` whose shuffling state can be saved and restored; its batches are unchanged.

    It takes exactly ``DataLoader``'s arguments. [`state_dict()`][lcv_data.ResumableDataLoader.state_dict] holds the
    states of the loader's ``generator`` and of its sampler's (when they differ), a ``DistributedSampler``-style
    ``epoch`` of the
    sampler, and the number of epochs started. lcv-data serves every ``DataLoader`` as one of these.
    """

    epoch: int = 0
    """Epochs started so far (iterations begun)."""
    # Class defaults, no __init__ override: Fabric and Lightning re-instantiate DataLoader subclasses from
    # DataLoader's own signature.
    _skip_seed_draw: bool = False

    def __iter__(self) -> Any:
        self.epoch = self.epoch + 1
        skip, self._skip_seed_draw = self._skip_seed_draw, False
        if skip and not persistent_iterator_alive(self) and self.generator is not None:
            # The saved loader's persistent-workers iterator drew its workers' base seed from the generator once,
            # in its first epoch, before the saved state. A new iterator draws it again, before the sampler's
            # first draw: take that one from a stand-in so the sampler continues the saved stream.
            own = self.generator
            self.generator = torch.Generator().manual_seed(self.epoch)
            try:
                return super().__iter__()
            finally:
                self.generator = own
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """Return what decides the next epoch's batch order: generator states (uint8 tensors), epoch counts.

        Taken between epochs. Worker processes' own random streams are not part of it: with
        ``persistent_workers`` random per-sample transforms in workers do not resume exactly (batch order does).
        """
        return dataloader_state(self, self.epoch)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`: the next epoch yields the batches the saved loader's next epoch would.

        Raises:
            LcvError: The state is another kind of loader's, or holds a different number of generators or samples.
        """
        self.epoch = load_dataloader_state(self, state)
        self._skip_seed_draw = bool(state.get("persistent_iterator")) and self.persistent_workers


class SplitDataset(Dataset[Any]):
    """One split of a dataset as an index view (no copy), with one fold's per-sample transforms applied.

    Args:
        dataset: The whole dataset.
        indices: The samples of this split.
        pipeline: The staged per-sample transforms (a `SamplePipeline`).
        split: ``train``, ``val``, ``test`` or ``predict``.
        fitted_x: The fold's fitted input transforms.
        fitted_y: The fold's fitted target transforms.
        input_key: Where a sample keeps its input (tuple position or dict key).
        target_key: Where a sample keeps its target, or ``None``.
    """

    def __init__(
        self,
        dataset: Any,
        indices: np.ndarray,
        pipeline: Any,
        split: str,
        fitted_x: Sequence[Any] = (),
        fitted_y: Sequence[Any] = (),
        input_key: str | int = 0,
        target_key: str | int | None = 1,
    ) -> None:
        self.dataset = dataset
        self.indices = indices
        self.pipeline = pipeline
        self.split = split
        self.fitted_x = list(fitted_x)
        self.fitted_y = list(fitted_y)
        self.input_key = input_key
        self.target_key = target_key

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        index = int(self.indices[i])
        sample = self.dataset[index]
        mutable: Any = (
            dict(sample)
            if isinstance(sample, Mapping)
            else list(sample)
            if isinstance(sample, (tuple, list))
            else [sample]
        )
        has_target = self.target_key is not None
        x = mutable[self.input_key]
        y = mutable[self.target_key] if has_target else None
        x, y = self.pipeline.apply(x, y, self.split, index, self.fitted_x, self.fitted_y)
        mutable[self.input_key] = x
        if has_target:
            mutable[self.target_key] = y
        if isinstance(sample, Mapping):
            return mutable
        return tuple(mutable) if isinstance(sample, (tuple, list)) else mutable[0]
