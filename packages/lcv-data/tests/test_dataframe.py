"""pandas DataFrames as sources: feature and target columns, groups and labels by column name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcv_config import LcvError
from lcv_data.datamodule import CrossValDataModule
from lcv_data.loaders import TensorBatchLoader
from lcv_data.transforms import Standardize

pd = pytest.importorskip("pandas")  # an optional dependency (the lcv-data[pandas] extra)


def test_dataframe_with_feature_and_target_columns() -> None:
    frame = pd.DataFrame(
        {"age": np.arange(20.0), "bmi": np.arange(20.0) * 2, "sick": ["yes", "no"] * 10, "site": np.arange(20) % 4}
    )
    dm = CrossValDataModule(
        frame,
        features=["age", "bmi"],
        target="sick",
        groups="site",
        splitter="group_kfold",
        splitter_kwargs={"n_splits": 2},
    )
    x, y = next(iter(dm.train_val_dataloaders()[0][1]))
    assert x.shape[1] == 2 and x.dtype == torch.float32
    assert set(y.tolist()) <= {0, 1}  # "no" -> 0, "yes" -> 1, sorted
    assert dm.source.feature_names == ["age", "bmi"]
    assert dm.train_val_dataloaders()[0][0].loader.__class__ is TensorBatchLoader


def test_dataframe_unknown_column_suggests_the_closest() -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0], "sick": [0, 1]})
    with pytest.raises(LcvError, match=r"no column 'agee'. Did you mean 'age'\?"):
        CrossValDataModule(frame, features=["agee"], target="sick")


def test_nan_in_a_named_column_names_it_at_setup() -> None:
    frame = pd.DataFrame({"age": np.arange(20.0), "bmi": np.arange(20.0), "sick": np.arange(20) % 2})
    frame.loc[4, "bmi"] = np.nan
    dm = CrossValDataModule(frame, target="sick", fitted_transforms=[Standardize()], splitter_kwargs={"n_splits": 2})
    with pytest.raises(LcvError, match=r"feature column 1 \('bmi'\) holds NaN or inf"):
        dm.setup()
