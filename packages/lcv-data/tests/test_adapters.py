"""from_setup_function: a NeuroMANCER-style setup function becomes a datamodule, with or without a splitter."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from lcv_config import DataConfig, LcvError
from lcv_data.adapters import SetupFunctionDataModule, from_setup_function
from lcv_data.transforms import Standardize


def setup_dicts(n_train: int = 40, n_dev: int = 20, nx: int = 3) -> tuple[Any, Any, Any, int]:
    """Simulated data as dicts of tensors, the way NeuroMANCER examples return them."""
    g = torch.Generator().manual_seed(0)

    def part(n: int, offset: float) -> dict[str, torch.Tensor]:
        X = torch.randn(n, nx, generator=g) + offset
        return {"X": X, "Y": X.sum(1, keepdim=True)}

    return part(n_train, 0.0), part(n_dev, 0.0), part(10, 0.0), 8


class DictSamples(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"X": torch.full((2,), float(i)), "Y": torch.tensor([float(i)])}


def test_without_a_splitter_dev_is_the_one_validation_fold() -> None:
    dm = from_setup_function(setup_dicts, n_train=30, n_dev=12)
    folds = dm.train_val_dataloaders()
    assert len(folds) == 1
    train, val = folds[0]
    assert sum(len(b["X"]) for b in train) == 30 and sum(len(b["X"]) for b in val) == 12
    assert next(iter(train))["X"].shape[0] == 8  # the function's batch_size
    assert sum(len(b["X"]) for b in dm.test_dataloader()) == 10


def test_with_a_splitter_train_and_dev_are_pooled_and_split() -> None:
    dm = from_setup_function(setup_dicts, "kfold", splitter_kwargs={"n_splits": 4}, fitted_transforms=[Standardize()])
    folds = dm.train_val_dataloaders()
    assert len(folds) == 4
    assert sorted(i for _, va in dm.folds for i in va.tolist()) == list(range(60))  # type: ignore[union-attr]
    x = torch.cat([b["X"] for b in folds[0][0]])
    assert torch.allclose(x.mean(0), torch.zeros(3), atol=1e-5)  # standardized with the fold's own statistics


def test_datasets_of_dict_samples_are_pooled_too() -> None:
    dm = from_setup_function(
        lambda: (DictSamples(9), DictSamples(6), None, 5), "kfold", splitter_kwargs={"n_splits": 3}
    )
    served = sorted(float(v) for _, val in dm.train_val_dataloaders() for b in val for v in b["Y"].flatten())
    assert served == sorted([float(i) for i in range(9)] + [float(i) for i in range(6)])


def test_a_function_returning_the_wrong_shape_is_an_error() -> None:
    with pytest.raises(LcvError, match=r"must return \(train, dev, test, batch_size\); got tuple of 2 items"):
        from_setup_function(lambda: ({}, {}))


def test_setup_function_plugin_from_config() -> None:
    config = DataConfig(
        datamodule="setup_function",
        dataset={"name": "test_adapters_helper_unused", "cfg": {}},
        splitter={"name": "kfold", "cfg": {"n_splits": 3}},
    )
    config.dataset.name = setup_dicts  # type: ignore[union-attr]  # an object, as a Python config may give
    config.dataset.cfg = {"n_train": 15, "n_dev": 15}  # type: ignore[union-attr]
    dm = SetupFunctionDataModule.from_config(config, seed=1)
    assert len(dm.train_val_dataloaders()) == 3
    assert sum(len(b["X"]) for _, va in dm.train_val_dataloaders() for b in va) == 30


def test_setup_function_plugin_takes_dataloader_settings_over_the_functions_batch_size() -> None:
    config = DataConfig(
        datamodule="setup_function",
        dataset={"name": setup_dicts, "cfg": {"n_train": 30, "n_dev": 12}},
        splitter={"name": "kfold", "cfg": {"n_splits": 2}},
        dataloaders={"val": {"batch_size": 4}},
    )
    dm = SetupFunctionDataModule.from_config(config, seed=1)
    (train, val), _ = dm.train_val_dataloaders()
    assert [len(b["X"]) for b in train] == [8, 8, 5]  # the function's batch size is the default
    assert [len(b["X"]) for b in val] == [4, 4, 4, 4, 4, 1]  # the config's val setting overrides it


def test_setup_function_plugin_refuses_keys_it_cannot_use() -> None:
    from lcv_config import ConfigError

    config = DataConfig(datamodule="setup_function", dataset={"name": setup_dicts}, labels="Y")
    with pytest.raises(ConfigError, match=r"data\.labels is not used with datamodule: setup_function"):
        SetupFunctionDataModule.from_config(config)
