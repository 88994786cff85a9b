"""lcv-data: datamodules driven by scikit-learn splitters, with transforms fitted per fold."""

from lcv_data.__about__ import __version__
from lcv_data.datamodule import CrossValDataModule
from lcv_data.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from lcv_data.loaders import TensorBatchLoader
from lcv_data.transforms import Standardize

__all__ = [
    "CrossValDataModule",
    "Standardize",
    "TensorBatchLoader",
    "__version__",
    "load_breast_cancer",
    "load_digits",
    "load_iris",
    "load_wine",
]
