"""A dataset source (``example_blobs``) and a datamodule (``example_folds``) of two Gaussian blobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from lcv_example_plugins.splitters import RoundRobinStratifiedKFold


def make_blobs(n_samples: int = 60, n_features: int = 4, seed: int = 0) -> TensorDataset:
    """Two blobs, labelled 0 and 1, ``n_features`` features each."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_samples) % 2
    x = torch.randn(n_samples, n_features, generator=g) + 2.0 * y[:, None].float()
    return TensorDataset(x, y)


class ListFoldsDataModule:
    """Serves each fold's batches as lists of ``(x, y)`` tensors; folds are computed once and can be saved."""

    def __init__(self, n_samples: int = 60, n_splits: int = 3, batch_size: int = 16, seed: int = 0) -> None:
        self.dataset = make_blobs(n_samples, seed=seed)
        self.batch_size = batch_size
        labels = self.dataset.tensors[1].tolist()
        splitter = RoundRobinStratifiedKFold(n_splits, shuffle=True, random_state=seed)
        self.folds: list[tuple[list[int], list[int]]] = list(splitter.split(labels, labels))

    @classmethod
    def from_config(cls, config: Any, seed: int = 0) -> ListFoldsDataModule:
        """Build from a config's ``data`` section: ``splitter.cfg.n_splits`` and ``dataloaders.default``."""
        n_splits = int(config.splitter.cfg.get("n_splits", 3))
        batch_size = int((config.dataloaders.get("default") or {}).get("batch_size", 16))
        return cls(n_splits=n_splits, batch_size=batch_size, seed=seed)

    @property
    def n_samples(self) -> int:
        return len(self.dataset)

    def _batches(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.dataset.tensors
        return [
            (x[indices[i : i + self.batch_size]], y[indices[i : i + self.batch_size]])
            for i in range(0, len(indices), self.batch_size)
        ]

    def train_val_dataloaders(self) -> list[tuple[Any, Any]]:
        return [(self._batches(train), self._batches(val)) for train, val in self.folds]

    def save_folds(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"folds": self.folds}), encoding="utf-8")

    def load_folds(self, path: str | Path) -> None:
        self.folds = [(list(tr), list(va)) for tr, va in json.loads(Path(path).read_text(encoding="utf-8"))["folds"]]
