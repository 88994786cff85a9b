"""Fakes for lcv-core's tests: a tiny synthetic 3-class problem split into 5 folds by index arithmetic.

No lcv_data here: the fold loop only needs ``train_val_dataloaders()`` returning (train, val) loaders.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

N_SAMPLES = 150
N_FEATURES = 8
N_CLASSES = 3
N_FOLDS = 5


def make_dataset(n: int = N_SAMPLES, seed: int = 0) -> TensorDataset:
    """Return a learnable 3-class problem: the label is the argmax of a fixed linear map of the inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEATURES, generator=g)
    w = torch.randn(N_FEATURES, N_CLASSES, generator=g)
    y = (x @ w).argmax(dim=1)
    return TensorDataset(x, y)


class FoldData:
    """A fake cross-validation datamodule: fold i validates on the i-th contiguous block of samples."""

    def __init__(
        self,
        n_folds: int = N_FOLDS,
        batch_size: int = 16,
        n: int = N_SAMPLES,
        shuffle: bool = True,
        val_batch_size: int = 16,
    ) -> None:
        self.dataset = make_dataset(n)
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


class TinyModule(LightningModule):
    """A plain LightningModule as a user writes it: an MLP with dropout, SGD, train/val loss and accuracy."""

    def __init__(self, lr: float = 0.1, dropout: float = 0.2, hidden: int = 16) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, N_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": 2,
    "seed": 0,
    "enable_progress_bar": False,
}


@pytest.fixture
def data() -> FoldData:
    """Five folds of 120 training and 30 validation samples, batches of 16."""
    return FoldData()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a 2-core machine


@pytest.fixture
def tiny() -> type[TinyModule]:
    """The TinyModule class (tests subclass it to vary one thing)."""
    return TinyModule


@pytest.fixture
def fold_data() -> type[FoldData]:
    """The FoldData class, for tests that need other fold counts or batch sizes."""
    return FoldData


@pytest.fixture
def trainer_kwargs() -> dict[str, Any]:
    """CPU, 2 epochs, seed 0, no progress bar."""
    return dict(TRAINER_DEFAULTS)
