"""Every plugin of lcv-example-plugins passes lcv-config's conformance suite for its kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lcv_example_plugins.commands import FoldSizesCommand
from lcv_example_plugins.data import ListFoldsDataModule, make_blobs
from lcv_example_plugins.nets import Regressor, TinyLinear
from lcv_example_plugins.splitters import RoundRobinStratifiedKFold
from lcv_example_plugins.training import EpochCounter, JsonLinesLogger
from lcv_example_plugins.transforms import Center, Clip
from lcv_example_plugins.tuners import RandomSearchTuner

from lcv_config.testing import (
    CallbackContract,
    CommandContract,
    DataModuleContract,
    DatasetContract,
    FittedTransformContract,
    LearnerContract,
    LoggerContract,
    ModelContract,
    SplitterContract,
    TransformContract,
    TunerContract,
)


class TestStratifiedKFold(SplitterContract):
    def make_splitter(self) -> Any:
        return RoundRobinStratifiedKFold(n_splits=4, shuffle=True, random_state=0)


class TestFolds(DataModuleContract):
    datamodule_class = ListFoldsDataModule

    def make_source(self) -> Any:
        return ListFoldsDataModule(n_splits=3)

    def make_config(self) -> Any:
        return {"datamodule": "example_folds", "splitter": {"name": "kfold", "cfg": {"n_splits": 3}}}


class TestBlobs(DatasetContract):
    def make_dataset(self) -> Any:
        return make_blobs()


class TestClip(TransformContract):
    def make_transform(self) -> Any:
        return Clip(-1.0, 1.0)

    def make_input(self) -> Any:
        return torch.tensor([-3.0, 0.5, 2.0])


class TestCenter(FittedTransformContract):
    def make_transform(self) -> Any:
        return Center()

    def make_data(self) -> Any:
        return make_blobs(20).tensors[0]


class TestTinyLinear(ModelContract):
    def make_model(self) -> Any:
        return TinyLinear(4, 2)

    def make_input(self) -> Any:
        return torch.randn(5, 4)


class TestRegressor(LearnerContract):
    def make_learner(self) -> Any:
        return Regressor(in_features=4)

    def make_batch(self) -> Any:
        return make_blobs(8).tensors


class TestEpochCounter(CallbackContract):
    try:
        from lcv_core.callbacks import Callback as hooks_from  # noqa: N813  # the suite's attribute name
    except ImportError:  # lcv-core not installed: signatures only
        hooks_from = None

    def make_callback(self) -> Any:
        return EpochCounter()


class TestJsonLinesLogger(LoggerContract):
    def make_logger(self, root_dir: Path) -> Any:
        return JsonLinesLogger(root_dir=root_dir)


class TestRandomSearch(TunerContract):
    tuner_class = RandomSearchTuner


class TestFoldSizes(CommandContract):
    target = "lcv_example_plugins.commands:FoldSizesCommand"

    def make_command(self) -> Any:
        return FoldSizesCommand()
