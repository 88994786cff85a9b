"""Staged per-sample transforms (pre -> split -> fitted -> post), target transforms and batch transforms."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lcv_config import ConfigError, LcvError, register
from lcv_config.registry import unregister
from lcv_data.datamodule import CrossValDataModule
from lcv_data.loaders import TensorBatchLoader


class Add:
    """A transform adding a constant (used to see which stages ran, in which order)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


class Times:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


def _data() -> TensorDataset:
    return TensorDataset(torch.zeros(12, 1), torch.arange(12) % 2)


def _values(loader: Any) -> set[float]:
    return {float(v) for b in loader for v in b[0].flatten()}


def test_each_split_runs_pre_its_own_stage_then_post() -> None:
    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        splitter_kwargs={"n_splits": 3},
        holdout=3,
        transforms={
            "pre": [Add(1)],
            "train": [Times(10)],
            "val": [Times(100)],
            "test": [Times(1000)],
            "post": [Add(0.5)],
        },
    )
    train, val = dm.train_val_dataloaders()[0]
    assert _values(train) == {10.5}  # (0 + 1) * 10 + 0.5: pre before the stage, post after it
    assert _values(val) == {100.5}
    assert _values(dm.test_dataloader()) == {1000.5}
    assert _values(dm.predict_dataloader()) == {1.5}  # no predict stage: pre and post only
    assert isinstance(train.loader, DataLoader), "per-sample transforms need the per-sample loader"


def test_target_transforms_run_on_targets_only() -> None:
    dm = CrossValDataModule(
        _data(), splitter="kfold", splitter_kwargs={"n_splits": 3}, target_transforms={"train": [Add(100)]}
    )
    train, val = dm.train_val_dataloaders()[0]
    assert min(int(y) for b in train for y in b[1]) >= 100
    assert max(int(y) for b in val for y in b[1]) <= 1
    assert _values(train) == {0.0}


def test_transforms_by_registered_name_and_dotted_path() -> None:
    register("transform", "add_for_test")(Add)
    try:
        dm = CrossValDataModule(
            _data(),
            splitter="kfold",
            splitter_kwargs={"n_splits": 3},
            transforms={
                "pre": [{"name": "add_for_test", "cfg": {"value": 2}}],
                "post": [{"name": "torch.nn.Hardtanh", "cfg": {"max_val": 0.5}}],
            },
        )
    finally:
        unregister("transform", "add_for_test")
    assert _values(dm.train_val_dataloaders()[0][0]) == {0.5}  # (0 + 2) clamped to 0.5


def test_unknown_stage_lists_the_valid_stages() -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown transform stage 'trian'. Did you mean 'train'\? Valid stages: pre, train, val"
    ):
        CrossValDataModule(_data(), transforms={"trian": [Add(1)]})


def test_a_transform_that_raises_names_the_sample_and_the_transform() -> None:
    def explode_on_seven(x: torch.Tensor) -> torch.Tensor:
        if float(x[0]) == 7.0:
            raise ValueError("bad value")
        return x

    data = TensorDataset(torch.arange(12.0)[:, None], torch.arange(12) % 2)
    dm = CrossValDataModule(
        data, splitter="kfold", splitter_kwargs={"n_splits": 3}, transforms={"post": [explode_on_seven]}
    )
    loaders = dm.train_val_dataloaders()
    with pytest.raises(
        LcvError,
        match=r"explode_on_seven \(stage 'post'\) failed on sample 7 of the (train|val) split: ValueError: bad value",
    ):
        for train, val in loaders:
            list(train), list(val)


def test_a_transform_failing_on_every_sample_fails_at_setup() -> None:
    dm = CrossValDataModule(
        _data(), splitter="kfold", splitter_kwargs={"n_splits": 3}, transforms={"train": [lambda x: x.reshape(5)]}
    )
    with pytest.raises(LcvError, match=r"<lambda> \(stage 'train'\) failed on sample 4 of the train split"):
        dm.setup()


def test_before_device_batch_transforms_run_in_the_loader_per_split() -> None:
    def flip(batch: Any) -> Any:
        return -batch[0] - 1, batch[1]

    dm = CrossValDataModule(
        _data(), splitter="kfold", splitter_kwargs={"n_splits": 3}, batch_transforms={"train": {"before": [flip]}}
    )
    train, val = dm.train_val_dataloaders()[0]
    assert _values(train) == {-1.0}
    assert _values(val) == {0.0}
    assert isinstance(train.loader, TensorBatchLoader), "batch transforms keep the fast path"


def test_after_device_hook_picks_the_split_that_served_the_batch() -> None:
    dm = CrossValDataModule(
        _data(),
        splitter="kfold",
        splitter_kwargs={"n_splits": 3},
        batch_transforms={
            "default": {"after": [lambda b: (b[0] + 1, b[1])]},
            "val": {"after": [lambda b: (b[0] * 5, b[1])]},
        },
    )
    train, val = dm.train_val_dataloaders()[1]
    t = dm.on_after_batch_transfer(next(iter(train)), 0)
    assert set(t[0].flatten().tolist()) == {1.0}
    v = dm.on_after_batch_transfer(next(iter(val)), 0)
    assert set(v[0].flatten().tolist()) == {5.0}  # default first, then the split's own
    assert dm.active == ("val", 1)


def test_unknown_batch_transform_side_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"Unknown batch transform key 'afterwards'. Did you mean 'after'\?"):
        CrossValDataModule(_data(), batch_transforms={"train": {"afterwards": [Add(1)]}})
