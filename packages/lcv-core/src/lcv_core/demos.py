"""Small, fast demo classes for tests, examples and third-party plugins (as Lightning's ``BoringModel``).

`TinyClassifier` is a LightningModule as a user writes it; `IndexFolds` is the smallest object the
trainer accepts as a datamodule (``train_val_dataloaders()``), over `make_classification()`'s learnable data.
Neither needs lcv-data.

Example:
    >>> from lcv_core import CrossValidationTrainer
    >>> from lcv_core.demos import IndexFolds, TinyClassifier
    >>> result = CrossValidationTrainer(max_epochs=2, enable_progress_bar=False).fit(TinyClassifier, IndexFolds())
    ... # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

N_FEATURES = 8
"""Inputs per sample of `make_classification()`."""
N_CLASSES = 3
"""Classes of `make_classification()`."""


def make_classification(n: int = 150, seed: int = 0) -> TensorDataset:
    """Return a learnable 3-class problem: the label is the argmax of a fixed linear map of 8 random inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEATURES, generator=g)
    w = torch.randn(N_FEATURES, N_CLASSES, generator=g)
    y = (x @ w).argmax(dim=1)
    return TensorDataset(x, y)


class IndexFolds:
    """A minimal cross-validation datamodule: fold ``i`` validates on the ``i``-th contiguous block of samples.

    Args:
        n_folds: Number of folds.
        batch_size: Training batch size.
        n: Number of samples of `make_classification()`.
        shuffle: Whether training loaders shuffle.
        val_batch_size: Validation batch size.
    """

    def __init__(
        self,
        n_folds: int = 5,
        batch_size: int = 16,
        n: int = 150,
        shuffle: bool = True,
        val_batch_size: int = 16,
    ) -> None:
        self.dataset = make_classification(n)
        self.n_folds = n_folds
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.shuffle = shuffle
        size = n // n_folds
        self.val_indices = [list(range(i * size, (i + 1) * size)) for i in range(n_folds)]
        self.train_indices = [[j for j in range(n) if not i * size <= j < (i + 1) * size] for i in range(n_folds)]

    def train_val_dataloaders(self) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        """Return one (train, val) pair of loaders per fold."""
        return [
            (
                DataLoader(Subset(self.dataset, tr), batch_size=self.batch_size, shuffle=self.shuffle),
                DataLoader(Subset(self.dataset, va), batch_size=self.val_batch_size),
            )
            for tr, va in zip(self.train_indices, self.val_indices, strict=True)
        ]


class TinyClassifier(LightningModule):
    """A plain LightningModule as a user writes it: an MLP with dropout, SGD, train/val loss and accuracy.

    Args:
        lr: SGD learning rate.
        dropout: Dropout probability after the hidden layer.
        hidden: Hidden width.
        in_features: Inputs per sample.
        num_classes: Classes.
    """

    def __init__(
        self,
        lr: float = 0.1,
        dropout: float = 0.2,
        hidden: int = 16,
        in_features: int = N_FEATURES,
        num_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the class logits of a batch."""
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        """Return the cross-entropy of a batch; log it as ``train_loss``."""
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log ``val_loss`` and ``val_acc`` of a batch."""
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        """Return plain SGD."""
        return torch.optim.SGD(self.parameters(), lr=self.lr)
