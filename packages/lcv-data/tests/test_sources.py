"""Every kind of source: torch Datasets, arrays, DataFrames, dict samples, bundled names; labels and groups."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from lcv_config import LcvError
from lcv_data.datamodule import CrossValDataModule
from lcv_data.loaders import TensorBatchLoader


class TupleDataset(Dataset[tuple[torch.Tensor, int]]):
    """A plain map-style dataset with a ``targets`` attribute (torchvision's convention) and ``site`` groups."""

    def __init__(self, n: int = 40) -> None:
        self.x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
        self.targets = [i % 2 for i in range(n)]
        self.site = [i % 4 for i in range(n)]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.targets[i]


class DictDataset(Dataset[dict[str, Any]]):
    def __init__(self, n: int = 30) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": torch.full((3,), float(i)), "y": i % 3, "patient": i // 5}


def _served(dm: CrossValDataModule, fold: int = 0) -> list[Any]:
    train, val = dm.train_val_dataloaders()[fold]
    return list(train) + list(val)


def test_any_map_style_dataset_is_served_through_a_dataloader() -> None:
    dm = CrossValDataModule(TupleDataset(), splitter="stratified_kfold", splitter_kwargs={"n_splits": 4})
    batches = _served(dm)
    xs = torch.cat([b[0] for b in batches])
    assert sorted(xs[:, 0].tolist()) == [float(2 * i) for i in range(40)]
    assert dm.labels is not None and dm.labels.tolist() == [i % 2 for i in range(40)]


def test_groups_from_an_attribute_name_keep_each_site_together() -> None:
    dm = CrossValDataModule(TupleDataset(), splitter="group_kfold", splitter_kwargs={"n_splits": 4}, groups="site")
    dm.setup()
    assert dm.folds is not None
    for train, val in dm.folds:
        assert {i % 4 for i in train}.isdisjoint({i % 4 for i in val})


def test_dict_of_tensors_is_served_as_dict_batches_by_the_fast_path() -> None:
    data = {"X": torch.randn(30, 3), "Y": torch.arange(30) % 3}
    dm = CrossValDataModule(data, splitter="stratified_kfold", splitter_kwargs={"n_splits": 3})
    train, _ = dm.train_val_dataloaders()[0]
    batch = next(iter(train))
    assert set(batch) == {"X", "Y"}
    assert batch["X"].shape[1] == 3 and len(batch["X"]) == len(batch["Y"])
    assert isinstance(train.loader, TensorBatchLoader)
    assert dm.labels is not None and dm.labels.tolist() == [i % 3 for i in range(30)]


def test_dict_samples_with_labels_and_groups_from_sample_keys() -> None:
    dm = CrossValDataModule(
        DictDataset(), splitter="stratified_group_kfold", splitter_kwargs={"n_splits": 3}, labels="y", groups="patient"
    )
    dm.setup()
    assert dm.folds is not None
    for train, val in dm.folds:
        assert {i // 5 for i in train}.isdisjoint({i // 5 for i in val})
    batch = next(iter(dm.train_val_dataloaders()[0][1]))
    assert set(batch) == {"x", "y", "patient"}


def test_labels_from_a_callable_over_samples() -> None:
    dm = CrossValDataModule(
        DictDataset(), splitter="stratified_kfold", splitter_kwargs={"n_splits": 3}, labels=lambda s: s["y"]
    )
    assert dm.labels is not None and dm.labels.tolist() == [i % 3 for i in range(30)]


def test_bundled_dataset_by_name() -> None:
    dm = CrossValDataModule("iris", splitter_kwargs={"n_splits": 3})
    assert len(dm.dataset) == 150  # type: ignore[arg-type]
    assert len(dm.train_val_dataloaders()) == 3


def test_labels_naming_nothing_is_an_error() -> None:
    with pytest.raises(LcvError, match=r"labels='nope' names no attribute of TupleDataset"):
        CrossValDataModule(TupleDataset(), labels="nope")


def test_labels_of_the_wrong_length_is_an_error() -> None:
    with pytest.raises(LcvError, match="labels has 3 entries but the dataset has 40 samples"):
        CrossValDataModule(TupleDataset(), labels=[0, 1, 0])


def test_dict_samples_without_a_known_input_key_name_the_keys() -> None:
    class Odd(DictDataset):
        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"signal": torch.zeros(2)}

    with pytest.raises(LcvError, match=r"pass input_key=<one of \['signal'\]>"):
        CrossValDataModule(Odd(), splitter="kfold")


def test_empty_torch_dataset_is_an_error() -> None:
    with pytest.raises(LcvError, match="The dataset is empty"):
        CrossValDataModule(TupleDataset(0), splitter="kfold")
