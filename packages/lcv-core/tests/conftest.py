"""Fakes for lcv-core's tests: a tiny synthetic 3-class problem split into 5 folds by index arithmetic.

No lcv_data here: the fold loop only needs ``train_val_dataloaders()`` returning (train, val) loaders.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lcv_core.demos import IndexFolds, TinyClassifier, make_classification

N_SAMPLES = 150
N_FOLDS = 5


make_dataset = make_classification
FoldData = IndexFolds
TinyModule = TinyClassifier


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
