"""A Lightning user's project as it is: the MNIST datamodule of Lightning's docs and a classifier, unchanged.

The images are generated (torchvision's ``MNIST`` arguments and attributes, 600 training and 100 test images in
which a bright row marks the class), so nothing downloads. The integration tests import this module by its dotted
path (``mnist_project.MNISTDataModule``), as a config file names a user's class.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split


class MNIST(Dataset[tuple[torch.Tensor, int]]):
    """torchvision's ``MNIST`` (same arguments, ``data`` and ``targets``), generated; classes are imbalanced."""

    def __init__(self, root: str, train: bool = True, transform: Any = None, download: bool = False) -> None:
        n = 600 if train else 100
        g = torch.Generator().manual_seed(0 if train else 1)
        weights = torch.tensor([2.0] * 5 + [1.0] * 5)
        self.targets = torch.multinomial(weights, n, replacement=True, generator=g)
        self.data = (torch.rand(n, 28, 28, generator=g) * 128).to(torch.uint8)
        self.data[torch.arange(n), self.targets * 2] = 255
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.data[index].float().div(255).unsqueeze(0)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``transforms.Normalize((0.1307,), (0.3081,))``."""
    return (x - 0.1307) / 0.3081


class MNISTDataModule(LightningDataModule):
    """The datamodule of Lightning's docs ("LightningDataModule"), with 550/50 instead of 55000/5000 images."""

    def __init__(self, data_dir: str = "./", batch_size: int = 32) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.transform = normalize

    def prepare_data(self) -> None:
        # download
        MNIST(self.data_dir, train=True, download=True)
        MNIST(self.data_dir, train=False, download=True)

    def setup(self, stage: str) -> None:
        # Assign train/val datasets for use in dataloaders
        if stage == "fit":
            mnist_full = MNIST(self.data_dir, train=True, transform=self.transform)
            self.mnist_train, self.mnist_val = random_split(
                mnist_full, [550, 50], generator=torch.Generator().manual_seed(42)
            )

        # Assign test dataset for use in dataloader(s)
        if stage == "test":
            self.mnist_test = MNIST(self.data_dir, train=False, transform=self.transform)

        if stage == "predict":
            self.mnist_predict = MNIST(self.data_dir, train=False, transform=self.transform)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_train, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_val, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_test, batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_predict, batch_size=self.batch_size)


class LitMNIST(LightningModule):
    """A linear classifier of 28x28 images, as in Lightning's MNIST examples."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]  # nn.Sequential is untyped

    def _step(self, batch: Any, prefix: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log(f"{prefix}_loss", loss)
        self.log(f"{prefix}_acc", (logits.argmax(1) == y).float().mean())
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch[0]).softmax(-1)  # type: ignore[no-any-return]  # a Tensor

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
