"""Per-split dataloader settings, the fast path as default, and the per-sample DataLoader when needed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

from lcv_config import ConfigError
from lcv_data.datamodule import CrossValDataModule
from lcv_data.loaders import TensorBatchLoader


def _data(n: int = 50) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 2)


def test_in_memory_tensors_take_the_fast_path_by_default() -> None:
    train, val = CrossValDataModule(_data(), splitter="kfold").train_val_dataloaders()[0]
    assert isinstance(train.loader, TensorBatchLoader) and isinstance(val.loader, TensorBatchLoader)


def test_a_collate_fn_or_workers_switch_to_a_dataloader_over_an_index_view() -> None:
    def collate(samples: list[Any]) -> Any:
        x, y = default_collate(samples)
        return x * 2, y

    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        splitter_kwargs={"n_splits": 5},
        dataloaders={"default": {"batch_size": 4}, "train": {"collate_fn": collate}},
    )
    train, val = dm.train_val_dataloaders()[0]
    assert isinstance(train.loader, DataLoader)
    assert train.loader.dataset.indices is dm.folds[0][0]  # type: ignore[index]  # a view, not a copy
    assert sorted(float(v) for b in train for v in b[0].flatten()) == sorted(2.0 * i for i in dm.folds[0][0])  # type: ignore[index]
    assert isinstance(val.loader, TensorBatchLoader), "val has no collate_fn: it keeps the fast path"


def test_slow_and_fast_paths_serve_the_same_validation_batches() -> None:
    fast = CrossValDataModule(_data(), splitter="kfold", dataloaders={"default": {"batch_size": 8}})
    slow = CrossValDataModule(
        _data(), splitter="kfold", dataloaders={"default": {"batch_size": 8, "collate_fn": default_collate}}
    )
    for (_, a), (_, b) in zip(fast.train_val_dataloaders(), slow.train_val_dataloaders(), strict=True):
        assert [x.tolist() for x, _ in a] == [x.tolist() for x, _ in b]


def test_per_split_overrides_and_defaults() -> None:
    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        holdout=10,
        dataloaders={"default": {"batch_size": 4}, "val": {"batch_size": 3}, "test": {"shuffle": True}},
    )
    train, val = dm.train_val_dataloaders()[0]
    assert (train.batch_size, val.batch_size) == (4, 3)
    assert (train.shuffle, val.shuffle, dm.test_dataloader().shuffle) == (True, False, True)


def test_drop_last_never_drops_validation_test_or_predict_samples() -> None:
    dm = CrossValDataModule(
        _data(53), splitter="kfold", holdout=13, dataloaders={"default": {"batch_size": 5, "drop_last": True}}
    )
    train, val = dm.train_val_dataloaders()[0]
    assert sum(len(b[0]) for b in val) == 8
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 13
    assert sum(len(b[0]) for b in dm.predict_dataloader()) == 13
    assert sum(len(b[0]) for b in train) == 30  # 32 training samples, the short last batch dropped


def test_worker_settings_reach_the_dataloader() -> None:
    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        dataloaders={
            "train": {"num_workers": 1, "persistent_workers": True, "prefetch_factor": 3, "pin_memory": False}
        },
    )
    train, _ = dm.train_val_dataloaders()[0]
    assert isinstance(train.loader, DataLoader)
    assert (train.loader.num_workers, train.loader.persistent_workers, train.loader.prefetch_factor) == (1, True, 3)
    assert sum(len(b[0]) for b in train) == 40


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"key\(s\) num_worker for 'default'. Did you mean 'num_workers'.*Valid keys: batch_size, shuffle",
    ):
        CrossValDataModule(_data(), dataloaders={"default": {"num_worker": 2}})


def test_plain_trainer_fold_out_of_range_names_the_valid_folds() -> None:
    from lcv_config import LcvError

    dm = CrossValDataModule(_data(), splitter="kfold", fold=5)
    with pytest.raises(LcvError, match=r"fold=5 does not exist: this datamodule has folds 0..4"):
        dm.train_dataloader()
