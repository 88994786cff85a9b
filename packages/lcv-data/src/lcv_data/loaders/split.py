"""The loader every split is served by: ``before`` batch transforms, the split and fold it serves, its state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader

from lcv_config import LcvError
from lcv_data.loaders._state import dataloader_state, load_dataloader_state


class SplitLoader:
    """Wrap a split's loader: apply ``before`` batch transforms and record which split and fold it serves.

    The datamodule's ``on_after_batch_transfer`` hook reads that record to pick the split's ``after`` transforms.

    Args:
        loader: The underlying loader (a `TensorBatchLoader` or a ``DataLoader``).
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
        """Restore a `state_dict()` taken from the same split of the same fold.

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
