"""lcv-data's plugins pass lcv-config's conformance suites: fitted transforms, the datamodule, dataset sources."""

from __future__ import annotations

from typing import Any

import torch

from lcv_config.testing import DataModuleContract, DatasetContract, FittedTransformContract
from lcv_data import CrossValDataModule, load_digits, load_iris
from lcv_data.transforms import PCA, LabelEncode, MinMaxScale, RobustScale, SklearnTransform, Standardize


def _features() -> torch.Tensor:
    return torch.arange(40, dtype=torch.float32).reshape(10, 4) ** 1.5


class TestStandardize(FittedTransformContract):
    def make_transform(self) -> Any:
        return Standardize()

    def make_data(self) -> Any:
        return _features()


class TestMinMaxScale(TestStandardize):
    def make_transform(self) -> Any:
        return MinMaxScale()


class TestRobustScale(TestStandardize):
    def make_transform(self) -> Any:
        return RobustScale()


class TestPCA(TestStandardize):
    def make_transform(self) -> Any:
        return PCA(n_components=2)

    def make_data(self) -> Any:
        return torch.randn(12, 4, generator=torch.Generator().manual_seed(0))


class TestLabelEncode(FittedTransformContract):
    def make_transform(self) -> Any:
        return LabelEncode()

    def make_data(self) -> Any:
        return torch.tensor([3.0, 7.0, 3.0, 7.0, 9.0, 9.0])

    def make_other_data(self) -> Any:
        return torch.tensor([1.0, 3.0, 7.0, 9.0])  # another fold's classes: 3 becomes 1, not 0


class TestSklearnStandardScaler(TestStandardize):
    def make_transform(self) -> Any:
        return SklearnTransform("StandardScaler")


class TestCrossValDataModule(DataModuleContract):
    datamodule_class = CrossValDataModule

    def make_source(self) -> Any:
        return CrossValDataModule(
            load_iris(),
            splitter="stratified_kfold",
            splitter_kwargs={"n_splits": 3, "shuffle": True, "random_state": 0},
            fitted_transforms=[Standardize()],
            dataloaders={"default": {"batch_size": 32}},
        )

    def make_config(self) -> Any:
        return {"dataset": "iris", "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 3}}}


class TestDigits(DatasetContract):
    def make_dataset(self) -> Any:
        return load_digits()


class TestIris(DatasetContract):
    def make_dataset(self) -> Any:
        return load_iris()
