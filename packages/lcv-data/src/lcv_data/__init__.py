"""lcv-data: datamodules driven by scikit-learn splitters, with staged transforms and transforms fitted per fold."""

from lcv_data.__about__ import __version__
from lcv_data.adapters import SetupFunctionDataModule, from_setup_function
from lcv_data.datamodule import CrossValDataModule, OuterFold
from lcv_data.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from lcv_data.lightning_folds import LightningFolds
from lcv_data.loaders import ResumableDataLoader, TensorBatchLoader
from lcv_data.sources import DictTensorDataset
from lcv_data.table import TableDataset, load_table
from lcv_data.transforms import (
    PCA,
    FittedTransformBase,
    LabelEncode,
    MinMaxScale,
    RobustScale,
    SklearnTransform,
    Standardize,
)

__all__ = [
    "PCA",
    "ResumableDataLoader",
    "CrossValDataModule",
    "DictTensorDataset",
    "FittedTransformBase",
    "LabelEncode",
    "LightningFolds",
    "MinMaxScale",
    "OuterFold",
    "RobustScale",
    "SetupFunctionDataModule",
    "SklearnTransform",
    "Standardize",
    "TableDataset",
    "TensorBatchLoader",
    "__version__",
    "from_setup_function",
    "load_breast_cancer",
    "load_digits",
    "load_iris",
    "load_table",
    "load_wine",
]
