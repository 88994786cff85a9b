"""from_config builds everything from a config's data section: sources, holdout, stages, fitted, loaders."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from lcv_config import DataConfig
from lcv_data.datamodule import CrossValDataModule
from lcv_data.transforms import MinMaxScale, Standardize


def test_every_section_of_the_data_config_is_used() -> None:
    config = DataConfig(
        dataset="wine",
        splitter={"name": "stratified_kfold", "cfg": {"n_splits": 3, "shuffle": True}},
        holdout=0.2,
        transforms={"post": [{"name": "torch.nn.Hardtanh", "cfg": {"min_val": 0.1, "max_val": 0.9}}]},
        fitted_transforms=[
            "standardize",
            {"name": "lcv_data.transforms:MinMaxScale", "cfg": {"feature_range": [0, 1]}},
        ],
        batch_transforms={"val": {"before": [{"name": "torch.nn.Identity", "cfg": {}}]}},
        dataloaders={"default": {"batch_size": 16}, "val": {"batch_size": 64}},
        fold=1,
    )
    dm = CrossValDataModule.from_config(config, seed=5)
    dm.setup()
    assert dm.test_indices is not None and len(dm.test_indices) == 36  # 20% of 178, stratified
    assert [type(t) for t in dm.fitted[0]] == [Standardize, MinMaxScale]
    train = dm.train_dataloader()
    val = dm.val_dataloader()
    assert (train.batch_size, val.batch_size, dm.fold) == (16, 64, 1)
    x_val = torch.cat([b[0] for b in val])
    assert x_val.shape == (len(dm.folds[1][1]), 13)  # type: ignore[index]
    x_train = torch.cat([b[0] for b in train])
    # min-max maps the training range onto [0, 1]; the post-stage clamp runs after it
    assert (x_train.min().item(), x_train.max().item()) == pytest.approx((0.1, 0.9))


def test_config_rejects_an_unknown_transform_stage_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match=r"Unknown transform stage 'prre'. Did you mean 'pre'\?"):
        DataConfig(transforms={"prre": ["standardize"]})


def test_same_config_same_seed_same_folds() -> None:
    config = DataConfig(dataset="iris", splitter={"name": "kfold", "cfg": {"n_splits": 3, "shuffle": True}})
    a, b = CrossValDataModule.from_config(config, seed=2), CrossValDataModule.from_config(config, seed=2)
    a.setup(), b.setup()
    assert [va.tolist() for _, va in a.folds] == [va.tolist() for _, va in b.folds]  # type: ignore[union-attr]
