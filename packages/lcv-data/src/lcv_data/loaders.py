"""The loaders lcv-data serves: the tensor fast path, the resumable DataLoader, and the per-split wrapper.

Every loader here has ``state_dict()``/``load_state_dict()`` (torchdata's ``StatefulDataLoader`` names): the
state decides the next epoch's batch order, so a run resumed from a checkpoint serves the batches the
uninterrupted run would have served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lcv_config import LcvError
from lcv_data._loader_state import check_kind, dataloader_state, load_dataloader_state, persistent_iterator_alive


class TensorBatchLoader:
    """Yield ``(x, y)`` batches gathered by index from whole tensors.

    Args:
        tensors: The dataset's tensors (inputs, targets, ...) or a dict of them, all with the same first dimension.
        indices: The samples of this split.
        batch_size: Samples per batch.
        shuffle: Reshuffle the order every epoch (from ``seed`` plus the epoch count).
        drop_last: Drop a last, smaller batch.
        seed: Seed of the shuffling.
        transform: Applied to the input batch (fitted transforms of the fold).
        target_transform: Applied to the target batch.
        input_key: Where the input is: a position in ``tensors`` or a key of the dict.
        target_key: Where the target is, or ``None``.

    Raises:
        LcvError: ``batch_size`` is not a positive integer, or the tensors' first dimensions differ.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        indices: torch.Tensor | np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        target_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        input_key: str | int = 0,
        target_key: str | int | None = 1,
    ) -> None:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise LcvError(f"batch_size must be a positive integer; got {batch_size!r}.")
        values = list(tensors.values()) if isinstance(tensors, Mapping) else list(tensors)
        sizes = {len(t) for t in values}
        if len(sizes) > 1:
            raise LcvError(f"All tensors need the same number of samples; got {sorted(sizes)}.")
        self.tensors: tuple[torch.Tensor, ...] | dict[str, torch.Tensor] = (
            dict(tensors) if isinstance(tensors, Mapping) else tuple(tensors)
        )
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.transform = transform
        self.target_transform = target_transform
        self.input_key = input_key
        self.target_key = target_key
        self.epoch = 0
        """Epochs started so far: epoch ``e`` is shuffled from ``seed + e``."""

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Return what decides the next epoch's batch order: the epoch count and the seed (plain ints).

        Taken between epochs (or during one: the state then is the one the next epoch starts from).
        """
        return {"kind": "TensorBatchLoader", "epoch": self.epoch, "seed": self.seed, "num_samples": len(self.indices)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`: the next epoch yields the batches the saved loader's next epoch would.

        Raises:
            LcvError: The state is another kind of loader's, or one over a different number of samples.
        """
        check_kind(state, "TensorBatchLoader", len(self.indices))
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])

    def epoch_order(self) -> torch.Tensor:
        """Return the sample indices of the next epoch in batch order and count the epoch, as ``iter()`` does.

        Batch ``b`` is ``order[b * batch_size : (b + 1) * batch_size]`` (``len(self)`` batches). lcv-core's
        ``vectorized`` schedule uses this to gather the batches of all folds in one indexing operation.
        """
        order = self.indices
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = order[torch.randperm(len(order), generator=g)]
        self.epoch += 1
        return order

    def __iter__(self) -> Iterator[Any]:
        order = self.epoch_order()
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch: Any = (  # index_select: the same rows as t[idx] at about half the cost per batch
                {k: t.index_select(0, idx) for k, t in self.tensors.items()}
                if isinstance(self.tensors, dict)
                else [t.index_select(0, idx) for t in self.tensors]
            )
            if self.transform is not None:
                batch[self.input_key] = self.transform(batch[self.input_key])
            if self.target_transform is not None and self.target_key is not None:
                batch[self.target_key] = self.target_transform(batch[self.target_key])
            yield batch if isinstance(batch, dict) else tuple(batch)


class ResumableDataLoader(DataLoader[Any]):
    """A ``torch.utils.data.DataLoader`` whose shuffling state can be saved and restored; its batches are unchanged.

    It takes exactly ``DataLoader``'s arguments. :meth:`state_dict` holds the states of the loader's
    ``generator`` and of its sampler's (when they differ), a ``DistributedSampler``-style ``epoch`` of the
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
        """Restore a :meth:`state_dict`: the next epoch yields the batches the saved loader's next epoch would.

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
        pipeline: The staged per-sample transforms (a :class:`~lcv_data.pipeline.SamplePipeline`).
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


class SplitLoader:
    """Wrap a split's loader: apply ``before`` batch transforms and record which split and fold it serves.

    The datamodule's ``on_after_batch_transfer`` hook reads that record to pick the split's ``after`` transforms.

    Args:
        loader: The underlying loader (a :class:`TensorBatchLoader` or a ``DataLoader``).
        split: The split it serves.
        fold: The fold it belongs to.
        before: Batch transforms applied to every batch on the CPU, before the transfer.
        owner: The datamodule, whose ``active`` attribute is set to ``(split, fold)`` on every batch.
    """

    def __init__(self, loader: Any, split: str, fold: int, before: Sequence[Any] = (), owner: Any = None) -> None:
        self.loader = loader
        self.split = split
        self.fold = fold
        self.before = list(before)
        self.owner = owner

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            for t in self.before:
                batch = t(batch)
            if self.owner is not None:
                self.owner.active = (self.split, self.fold)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Return the wrapped loader's state, with the split and fold it belongs to (see the data guide).

        Raises:
            LcvError: The wrapped loader has no state to save (neither ``state_dict()`` nor a ``DataLoader``).
        """
        inner = self.loader
        if callable(getattr(inner, "state_dict", None)):
            state = inner.state_dict()
        elif isinstance(inner, DataLoader):
            state = dataloader_state(inner, 0)
        else:
            raise LcvError(
                f"The {self.split} loader of fold {self.fold} wraps a {type(inner).__name__}, which has no "
                "state_dict(); give it state_dict()/load_state_dict() for exact resume."
            )
        return {"split": self.split, "fold": self.fold, "loader": state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from the same split of the same fold.

        Raises:
            LcvError: The state belongs to another split or fold, or does not fit the wrapped loader.
        """
        if (state.get("split"), state.get("fold")) != (self.split, self.fold):
            raise LcvError(
                f"A loader state of split '{state.get('split')}', fold {state.get('fold')} cannot be loaded into the "
                f"{self.split} loader of fold {self.fold}: restore each fold's loaders from their own states."
            )
        inner = self.loader
        if callable(getattr(inner, "load_state_dict", None)):
            inner.load_state_dict(state["loader"])
        elif isinstance(inner, DataLoader):
            load_dataloader_state(inner, state["loader"])
        else:
            raise LcvError(f"The {self.split} loader of fold {self.fold} has no load_state_dict().")

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (unpickling): avoid infinite recursion
            raise AttributeError(name)
        if name == "epoch_order" and self.before:  # gathering batches directly would skip the before transforms
            raise AttributeError(name)
        return getattr(self.loader, name)  # batch_size, dataset, ... of the wrapped loader
