"""scikit-learn's bundled datasets as tensor datasets: no download, ever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import datasets as skd
from torch.utils.data import TensorDataset


def _as_dataset(loader: Callable[..., Any], regression: bool = False) -> TensorDataset:
    X, y = loader(return_X_y=True)
    x_t = torch.as_tensor(np.asarray(X, dtype=np.float32))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32 if regression else np.int64))
    return TensorDataset(x_t, y_t)


def load_digits() -> TensorDataset:
    """8×8 handwritten digits: 1797 samples, 64 pixel features (0–16), 10 classes."""
    return _as_dataset(skd.load_digits)


def load_iris() -> TensorDataset:
    """Iris flowers: 150 samples, 4 features, 3 classes."""
    return _as_dataset(skd.load_iris)


def load_wine() -> TensorDataset:
    """Wine cultivars: 178 samples, 13 features, 3 classes."""
    return _as_dataset(skd.load_wine)


def load_breast_cancer() -> TensorDataset:
    """Breast cancer Wisconsin: 569 samples, 30 features, 2 classes."""
    return _as_dataset(skd.load_breast_cancer)
