"""Shared data for lcv-data's tests: small real datasets, no lcv-core."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import TensorDataset

from lcv_data import load_digits


@pytest.fixture(scope="session")
def digits() -> TensorDataset:
    """scikit-learn's bundled digits: 1797 samples, 64 features, 10 classes."""
    return load_digits()


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray]:
    """100 samples, 4 features, 4 balanced classes; feature 3 is constant."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4)).astype(np.float32)
    X[:, 3] = 5.0
    y = np.arange(100) % 4
    return X, y
