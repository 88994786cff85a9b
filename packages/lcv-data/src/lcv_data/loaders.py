"""A fast path for in-memory tensor data: one gather per batch, no per-sample collate."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from lcv_config import LcvError


class TensorBatchLoader:
    """Yield ``(x, y)`` batches gathered by index from whole tensors.

    Args:
        tensors: The dataset's tensors (inputs, targets, ...), all with the same first dimension.
        indices: The samples of this split.
        batch_size: Samples per batch.
        shuffle: Reshuffle the order every epoch (from ``seed`` plus the epoch count).
        drop_last: Drop a last, smaller batch.
        seed: Seed of the shuffling.
        transform: Applied to the input batch (fitted transforms of the fold).

    Raises:
        LcvError: ``batch_size`` is not a positive integer, or the tensors' first dimensions differ.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        indices: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise LcvError(f"batch_size must be a positive integer; got {batch_size!r}.")
        sizes = {len(t) for t in tensors}
        if len(sizes) > 1:
            raise LcvError(f"All tensors need the same number of samples; got {sorted(sizes)}.")
        self.tensors = tuple(tensors)
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.indices
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = order[torch.randperm(len(order), generator=g)]
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = [t[idx] for t in self.tensors]
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            yield tuple(batch)
