"""CrossValDataModule passes lcv-config's fold data source conformance suite."""

from __future__ import annotations

from typing import Any

import numpy as np

from lcv_config.testing import FoldDataSourceContract
from lcv_data import CrossValDataModule, Standardize, load_digits


class TestDigitsDataModule(FoldDataSourceContract):
    def make_source(self) -> Any:
        return CrossValDataModule(
            load_digits(),
            splitter="stratified_kfold",
            splitter_kwargs={"n_splits": 5, "shuffle": True},
            fitted_transforms=[Standardize()],
            dataloaders={"default": {"batch_size": 128}},
        )


class TestArraysDataModule(FoldDataSourceContract):
    def make_source(self) -> Any:
        rng = np.random.default_rng(0)
        return CrossValDataModule(
            X=rng.normal(size=(30, 3)), y=np.arange(30) % 2, splitter="kfold", splitter_kwargs={"n_splits": 3}
        )
