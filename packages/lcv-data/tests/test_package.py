"""The public surface of lcv-data, its entry points, and its independence from lcv-core."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

import lcv_data
from lcv_config import DATAMODULES, TRANSFORMS, build, list_plugins, resolve


def test_public_api_is_pinned() -> None:
    assert sorted(lcv_data.__all__) == [
        "CrossValDataModule",
        "DictTensorDataset",
        "FittedTransformBase",
        "LabelEncode",
        "LightningFolds",
        "MinMaxScale",
        "OuterFold",
        "PCA",
        "ResumableDataLoader",
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


@pytest.mark.parametrize(
    ("name", "n_samples", "n_features", "n_classes"),
    [("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2)],
)
def test_bundled_datasets_load_by_name(name: str, n_samples: int, n_features: int, n_classes: int) -> None:
    dataset = build("dataset", name)
    X, y = dataset.tensors
    assert X.shape == (n_samples, n_features) and X.dtype == torch.float32
    assert y.dtype == torch.int64 and len(y.unique()) == n_classes


def test_entry_points_are_registered() -> None:
    datamodules = {"cross_val", "setup_function", "lightning", "digits", "iris", "wine", "breast_cancer"}
    assert datamodules <= {p.name for p in list_plugins(DATAMODULES)}
    transforms = {"standardize", "min_max_scale", "robust_scale", "pca", "label_encode", "sklearn"}
    assert transforms <= {p.name for p in list_plugins(TRANSFORMS)}


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("lcv_data.transforms", "Standardize"),
        ("lcv_data.transforms", "MinMaxScale"),
        ("lcv_data.transforms", "RobustScale"),
        ("lcv_data.transforms", "PCA"),
        ("lcv_data.transforms", "LabelEncode"),
        ("lcv_data.transforms", "FittedTransformBase"),
        ("lcv_data.sklearn_transform", "SklearnTransform"),
        ("lcv_data.loaders", "TensorBatchLoader"),
        ("lcv_data.datamodule", "CrossValDataModule"),
        ("lcv_data.adapters", "from_setup_function"),
        ("lcv_data.adapters", "SetupFunctionDataModule"),
        ("lcv_data.datasets", "load_digits"),
        ("lcv_data.sources", "DictTensorDataset"),
    ],
)
def test_documented_module_paths_still_import(module: str, name: str) -> None:
    """The module paths the docs, examples and earlier releases name keep working after the regrouping."""
    assert getattr(importlib.import_module(module), name) is getattr(lcv_data, name)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("standardize", "Standardize"),
        ("min_max_scale", "MinMaxScale"),
        ("robust_scale", "RobustScale"),
        ("pca", "PCA"),
        ("label_encode", "LabelEncode"),
        ("sklearn", "SklearnTransform"),
    ],
)
def test_transform_entry_points_load_lcv_datas_classes(name: str, cls: str) -> None:
    assert resolve("transform", name) is getattr(lcv_data, cls)


def test_using_lcv_data_never_imports_a_sibling() -> None:
    """Building and serving folds imports no lcv package but lcv_config (siblings meet through entry points)."""
    dm = lcv_data.CrossValDataModule(lcv_data.load_iris(), fitted_transforms=[lcv_data.Standardize()])
    dm.train_val_dataloaders()
    siblings = sorted(m for m in sys.modules if m.split(".")[0] in ("lcv_core", "lcv_tune_optuna", "lcv_tune_wandb"))
    assert siblings == []
