"""Holdout carved off first (stratified or grouped), a separate test dataset, and nested cross-validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lcv_config import ConfigError, LcvError
from lcv_data.datamodule import CrossValDataModule
from lcv_data.transforms import Standardize


def test_holdout_fraction_is_stratified_and_never_in_any_fold(digits: TensorDataset) -> None:
    dm = CrossValDataModule(digits, splitter_kwargs={"n_splits": 5, "shuffle": True}, holdout=0.2)
    dm.setup()
    assert dm.folds is not None and dm.test_indices is not None
    test = set(dm.test_indices.tolist())
    assert len(test) == 360
    for train, val in dm.folds:
        assert test.isdisjoint(train.tolist()) and test.isdisjoint(val.tolist())
    assert sorted(i for _, va in dm.folds for i in va.tolist()) == sorted(set(range(1797)) - test)
    y = digits.tensors[1].numpy()
    share = np.bincount(y[dm.test_indices], minlength=10) / 360
    assert np.abs(share - np.bincount(y, minlength=10) / 1797).max() < 0.01  # class shares kept


def test_holdout_count_with_groups_keeps_groups_whole() -> None:
    X, y = torch.randn(60, 2), torch.arange(60) % 2
    groups = np.arange(60) // 6  # 10 groups of 6
    dm = CrossValDataModule(X=X, y=y, groups=groups, splitter="group_kfold", splitter_kwargs={"n_splits": 4}, holdout=2)
    dm.setup()
    assert dm.test_indices is not None
    assert len(dm.test_indices) == 12  # two whole groups
    assert set(groups[dm.test_indices]).isdisjoint(set(groups[np.concatenate(dm.folds[0])]))  # type: ignore[index]


def test_test_dataloader_uses_the_folds_fitted_statistics(digits: TensorDataset) -> None:
    dm = CrossValDataModule(digits, splitter="kfold", holdout=0.25, fitted_transforms=[Standardize()])
    served = torch.cat([b[0] for b in dm.test_dataloader(fold=3)])
    fitted = dm.fitted[3][0]
    assert dm.test_indices is not None
    expected = (digits.tensors[0][torch.as_tensor(dm.test_indices)] - fitted.mean) / fitted.std
    assert torch.allclose(served, expected)
    assert len(dm.test_dataloaders()) == 5


def test_separate_test_dataset_and_predict_default_to_it(digits: TensorDataset) -> None:
    test = TensorDataset(torch.ones(7, 64), torch.zeros(7, dtype=torch.long))
    dm = CrossValDataModule(digits, splitter="kfold", test_dataset=test)
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 7
    assert sum(len(b[0]) for b in dm.predict_dataloader()) == 7


def test_no_test_data_names_the_fix(digits: TensorDataset) -> None:
    with pytest.raises(LcvError, match="No test data: pass holdout=0.2"):
        CrossValDataModule(digits, splitter="kfold").test_dataloader()


@pytest.mark.parametrize("holdout", [0.0, 1.5, 2000, -1])
def test_holdout_out_of_range_is_an_error(digits: TensorDataset, holdout: float) -> None:
    with pytest.raises(LcvError, match=rf"holdout={holdout!r} is out of range"):
        CrossValDataModule(digits, splitter="kfold", holdout=holdout).setup()


def test_holdout_indices_are_saved_and_restored(digits: TensorDataset, tmp_path: Path) -> None:
    dm = CrossValDataModule(digits, splitter="kfold", holdout=0.1, seed=3)
    dm.save_folds(tmp_path / "folds.json")
    saved = json.loads((tmp_path / "folds.json").read_text())
    assert saved["test"] == dm.test_indices.tolist()  # type: ignore[union-attr]
    other = CrossValDataModule(digits, splitter="kfold", holdout=0.1, seed=4)
    other.load_folds(tmp_path / "folds.json")
    other.setup()
    assert other.test_indices.tolist() == saved["test"]  # type: ignore[union-attr]


def test_nested_cv_splits_each_outer_training_part_again(digits: TensorDataset) -> None:
    dm = CrossValDataModule(
        digits, splitter="stratified_kfold", splitter_kwargs={"n_splits": 3}, fitted_transforms=[Standardize()]
    )
    outer = dm.outer_folds("stratified_kfold", {"n_splits": 4})
    assert len(outer) == 4
    assert sorted(i for o in outer for i in o.test_indices.tolist()) == list(range(1797))
    for o in outer:
        inner = o.datamodule
        inner.setup()
        assert inner.folds is not None and len(inner.folds) == 3
        inner_all = sorted(i for _, va in inner.folds for i in va.tolist())
        assert inner_all == sorted(o.train_indices.tolist())  # inner folds partition the outer training part
        assert sum(len(b[0]) for b in inner.test_dataloader()) == len(o.test_indices)
    assert dm.folds is None, "the outer datamodule itself is untouched"


def test_data_outer_keeps_an_outer_folds_test_rows_out_of_every_fold(digits: Any) -> None:
    from lcv_config.schema import DataConfig

    base = {"dataset": "digits", "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 3}}}
    outer = {"splitter": "stratified_kfold", "cfg": {"n_splits": 4, "shuffle": True}}
    expected = CrossValDataModule(digits, splitter="stratified_kfold", splitter_kwargs={"n_splits": 3}, seed=7)
    splits = expected.outer_folds("stratified_kfold", {"n_splits": 4, "shuffle": True})
    for j in range(4):
        dm = CrossValDataModule.from_config(DataConfig.model_validate({**base, "outer": {**outer, "fold": j}}), seed=7)
        dm.setup("fit")
        assert dm.folds is not None and dm.test_indices is not None
        assert dm.test_indices.tolist() == splits[j].test_indices.tolist()
        seen = {i for tr, va in dm.folds for part in (tr, va) for i in part.tolist()}
        assert seen == set(splits[j].train_indices.tolist())
        assert not seen & set(dm.test_indices.tolist())


def test_data_outer_refuses_a_second_test_set_and_a_missing_fold() -> None:
    from lcv_config.schema import DataConfig

    outer = {"splitter": "kfold", "cfg": {"n_splits": 3}, "fold": 0}
    with pytest.raises(ConfigError, match="data.holdout would be a second test set"):
        CrossValDataModule.from_config(DataConfig.model_validate({"dataset": "digits", "holdout": 0.2, "outer": outer}))
    dm_cfg = DataConfig.model_validate({"dataset": "digits", "outer": {**outer, "fold": 3}})
    with pytest.raises(LcvError, match=r"data.outer.fold=3 does not exist: .* folds 0..2"):
        CrossValDataModule.from_config(dm_cfg)
