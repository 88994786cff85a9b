"""CrossValDataModule: frozen seeded folds, index views, saved folds, per-split loaders, bad input."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lcv_config import ConfigError, LcvError, PluginClashWarning
from lcv_data import CrossValDataModule, Standardize


def _folds(dm: CrossValDataModule) -> list[tuple[list[int], list[int]]]:
    dm.setup("fit")
    assert dm.folds is not None
    return [(tr.tolist(), va.tolist()) for tr, va in dm.folds]


def _batches(loader: Iterable[tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
    return list(loader)


def test_folds_are_computed_once_and_identical_across_calls(digits: TensorDataset) -> None:
    dm = CrossValDataModule(digits, splitter="stratified_kfold", splitter_kwargs={"n_splits": 5, "shuffle": True})
    first = _folds(dm)
    folds_object = dm.folds
    dm.setup("fit")
    dm.train_val_dataloaders()
    assert dm.folds is folds_object, "setup recomputed the folds"
    assert _folds(dm) == first


def test_same_seed_same_folds_other_seed_other_folds(digits: TensorDataset) -> None:
    def folds(seed: int) -> list[tuple[list[int], list[int]]]:
        kwargs = {"n_splits": 5, "shuffle": True}
        return _folds(CrossValDataModule(digits, splitter="kfold", splitter_kwargs=kwargs, seed=seed))

    a, b, c = folds(3), folds(3), folds(4)
    assert a == b
    assert a != c
    assert [sorted(va) for _, va in a] != [sorted(va) for _, va in c]


def test_save_folds_writes_the_indices(digits: TensorDataset, tmp_path: Path) -> None:
    dm = CrossValDataModule(digits, splitter_kwargs={"n_splits": 5, "shuffle": True})
    dm.save_folds(tmp_path / "folds.json")
    data = json.loads((tmp_path / "folds.json").read_text())
    assert data["n_samples"] == 1797
    assert "StratifiedKFold" in data["splitter"]
    assert [(f["train"], f["val"]) for f in data["folds"]] == _folds(dm)


def test_load_folds_restores_saved_folds(digits: TensorDataset, tmp_path: Path) -> None:
    saved = CrossValDataModule(digits, splitter="kfold", splitter_kwargs={"n_splits": 4, "shuffle": True}, seed=7)
    saved.save_folds(tmp_path / "folds.json")
    other = CrossValDataModule(digits, splitter="kfold", splitter_kwargs={"n_splits": 4, "shuffle": True}, seed=8)
    other.load_folds(tmp_path / "folds.json")
    assert _folds(other) == _folds(saved)
    assert len(other.fitted) == 4


def test_load_folds_of_another_dataset_is_an_error(digits: TensorDataset, arrays: tuple, tmp_path: Path) -> None:
    CrossValDataModule(digits, splitter="kfold").save_folds(tmp_path / "folds.json")
    X, y = arrays
    with pytest.raises(LcvError, match="1797 samples; this dataset has 100"):
        CrossValDataModule(X=X, y=y).load_folds(tmp_path / "folds.json")


def test_kfold_train_and_val_partition_the_dataset(digits: TensorDataset) -> None:
    folds = _folds(CrossValDataModule(digits, splitter="kfold", splitter_kwargs={"n_splits": 5}))
    for train, val in folds:
        assert sorted(train + val) == list(range(1797))
    assert sorted(i for _, val in folds for i in val) == list(range(1797))


def test_folds_are_index_views_of_one_dataset(digits: TensorDataset) -> None:
    dm = CrossValDataModule(digits, splitter="kfold", splitter_kwargs={"n_splits": 5})
    for train, val in dm.train_val_dataloaders():
        for loader in (train, val):
            assert all(a is b for a, b in zip(loader.tensors, digits.tensors, strict=True)), "a fold copied the data"


def test_stratified_folds_keep_class_proportions(digits: TensorDataset) -> None:
    y = digits.tensors[1].numpy()
    overall = np.bincount(y, minlength=10) / len(y)
    dm = CrossValDataModule(digits, splitter="stratified_kfold", splitter_kwargs={"n_splits": 5, "shuffle": True})
    for _, val in _folds(dm):
        share = np.bincount(y[val], minlength=10) / len(val)
        assert np.abs(share - overall).max() < 0.01


def test_group_splitter_without_groups_names_the_fix(arrays: tuple) -> None:
    X, y = arrays
    dm = CrossValDataModule(X=X, y=y, splitter="group_kfold", splitter_kwargs={"n_splits": 3})
    with pytest.raises(LcvError, match=r"GroupKFold is a group splitter but no groups were given: pass groups="):
        dm.setup("fit")


def test_group_splitter_with_groups_keeps_groups_together(arrays: tuple) -> None:
    X, y = arrays
    groups = np.arange(100) // 10
    dm = CrossValDataModule(X=X, y=y, groups=groups, splitter="group_kfold", splitter_kwargs={"n_splits": 5})
    for train, val in _folds(dm):
        assert set(groups[train]).isdisjoint(groups[val])


def test_more_splits_than_groups_is_an_error(arrays: tuple) -> None:
    X, y = arrays
    groups = np.arange(100) % 3
    dm = CrossValDataModule(X=X, y=y, groups=groups, splitter="group_kfold", splitter_kwargs={"n_splits": 5})
    with pytest.raises(LcvError, match=r"n_splits=5 is larger than the number of groups \(3\)"):
        dm.setup("fit")


def test_more_splits_than_samples_is_an_error() -> None:
    dm = CrossValDataModule(X=np.zeros((4, 2)), y=[0, 1, 0, 1], splitter="kfold", splitter_kwargs={"n_splits": 5})
    with pytest.raises(LcvError, match=r"n_splits=5 is larger than the number of samples \(4\)"):
        dm.setup("fit")


def test_class_rarer_than_n_splits_names_the_class_and_count() -> None:
    y = np.array([i % 7 for i in range(68)] + [7, 7])
    dm = CrossValDataModule(X=np.zeros((70, 2)), y=y, splitter="stratified_kfold", splitter_kwargs={"n_splits": 5})
    with pytest.raises(LcvError, match=r"class 7 has 2 samples, fewer than n_splits=5"):
        dm.setup("fit")


def test_repeated_stratified_checks_rare_classes_too() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2])
    dm = CrossValDataModule(
        X=np.zeros((21, 1)), y=y, splitter="repeated_stratified_kfold", splitter_kwargs={"n_splits": 3}
    )
    with pytest.raises(LcvError, match=r"class 2 has 1 sample, fewer than n_splits=3"):
        dm.setup("fit")


def _one_rare_class() -> tuple[np.ndarray, np.ndarray]:
    """100 samples of classes 0-2, and one sample of class 7 (index 99: kfold puts it in fold 4's validation)."""
    y = np.arange(100) % 3
    y[99] = 7
    return np.zeros((100, 2), dtype=np.float32), y


def test_a_class_missing_from_a_folds_training_part_is_a_warning_naming_fold_and_class() -> None:
    X, y = _one_rare_class()
    dm = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 5})
    with pytest.warns(UserWarning, match=r"not in its training part \(fold 4: class 7\).*strict=True"):
        dm.setup("fit")
    assert dm.folds is not None and len(dm.folds) == 5  # a warning: the folds are still served


def test_strict_makes_a_class_missing_from_training_an_error() -> None:
    X, y = _one_rare_class()
    dm = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 5}, strict=True)
    with pytest.raises(LcvError, match=r"\(fold 4: class 7\).*Use a stratified splitter"):
        dm.setup("fit")


def test_every_fold_with_unseen_classes_is_named_once() -> None:
    X, y = _one_rare_class()
    y[0], y[1] = 8, 9  # both in fold 0's validation part
    dm = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 5})
    with pytest.warns(UserWarning) as caught:
        dm.setup("fit")
    assert [str(w.message).split("(")[1].split(")")[0] for w in caught] == ["fold 0: classes 8, 9; fold 4: class 7"]


def test_folds_seeing_every_class_or_a_continuous_target_give_no_warning(digits: TensorDataset) -> None:
    X = np.zeros((100, 2), dtype=np.float32)
    regression = np.linspace(0, 1, 100).astype(np.float32)  # every value unique: not classes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a third party's stratified_kfold installed beside lcv-data (the integration env) is not this warning
        warnings.filterwarnings("ignore", category=PluginClashWarning)
        CrossValDataModule(digits, splitter_kwargs={"n_splits": 5}).setup("fit")
        CrossValDataModule(X=X, y=regression, splitter="kfold").setup("fit")


def test_stratified_splitter_without_labels_is_an_error() -> None:
    dm = CrossValDataModule(X=np.zeros((20, 2)), splitter="stratified_kfold")
    with pytest.raises(LcvError, match="no targets: give y, or use 'kfold'"):
        dm.setup("fit")


def test_labels_length_mismatch_is_an_error() -> None:
    with pytest.raises(LcvError, match="X has 10 samples but y has 9"):
        CrossValDataModule(X=np.zeros((10, 2)), y=np.zeros(9))


def test_groups_length_mismatch_is_an_error(arrays: tuple) -> None:
    X, y = arrays
    with pytest.raises(LcvError, match="groups has 99 entries but the dataset has 100 samples"):
        CrossValDataModule(X=X, y=y, groups=np.zeros(99), splitter="group_kfold")


def test_empty_dataset_is_an_error() -> None:
    with pytest.raises(LcvError, match="The dataset is empty"):
        CrossValDataModule(X=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(LcvError, match="The dataset is empty"):
        CrossValDataModule(TensorDataset(torch.zeros(0, 3)))


def test_no_data_is_an_error() -> None:
    with pytest.raises(LcvError, match="needs a dataset or arrays X"):
        CrossValDataModule()


def test_unknown_splitter_suggests_the_closest_name(arrays: tuple) -> None:
    X, y = arrays
    with pytest.raises(ConfigError, match="Did you mean 'stratified_kfold'"):
        CrossValDataModule(X=X, y=y, splitter="stratifed_kfold")


def test_unknown_dataloader_key_lists_the_valid_keys(arrays: tuple) -> None:
    X, y = arrays
    expected = (
        r"batch_sise for 'train'. Did you mean 'batch_size'.*Valid keys: batch_size, shuffle, .*persistent_workers"
    )
    with pytest.raises(ConfigError, match=expected):
        CrossValDataModule(X=X, y=y, dataloaders={"train": {"batch_sise": 8}})


def test_unknown_dataloader_split_lists_the_valid_splits(arrays: tuple) -> None:
    X, y = arrays
    with pytest.raises(ConfigError, match=r"Unknown dataloader split 'trian'. Did you mean 'train'\?"):
        CrossValDataModule(X=X, y=y, dataloaders={"trian": {"batch_size": 8}})


def test_drop_last_never_drops_validation_samples(arrays: tuple) -> None:
    X, y = arrays
    dm = CrossValDataModule(
        X=X,
        y=y,
        splitter="kfold",
        splitter_kwargs={"n_splits": 3},
        dataloaders={"default": {"batch_size": 8, "drop_last": True}},
    )
    for (train, val), (train_idx, val_idx) in zip(dm.train_val_dataloaders(), dm.folds or [], strict=True):
        assert sum(len(b[0]) for b in _batches(val)) == len(val_idx)  # 33 or 34: not a multiple of 8
        assert sum(len(b[0]) for b in _batches(train)) == len(train_idx) // 8 * 8


def test_train_shuffles_per_epoch_and_val_does_not(arrays: tuple) -> None:
    X, y = arrays
    settings = {"default": {"batch_size": 10}}
    dm = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 4}, dataloaders=settings)
    train, val = dm.train_val_dataloaders()[0]
    epoch1 = torch.cat([b[0] for b in _batches(train)])
    epoch2 = torch.cat([b[0] for b in _batches(train)])
    assert not torch.equal(epoch1, epoch2), "train served the same order twice"
    same_samples = torch.equal(epoch1[epoch1[:, 0].argsort()], epoch2[epoch2[:, 0].argsort()])
    assert same_samples, "the two train epochs hold different samples"
    val_idx = dm.folds[0][1] if dm.folds else None
    val1 = torch.cat([b[0] for b in _batches(val)])
    val2 = torch.cat([b[0] for b in _batches(val)])
    assert torch.equal(val1, val2)
    assert torch.equal(val1, torch.as_tensor(X[val_idx]))


def test_per_split_settings_override_the_default(arrays: tuple) -> None:
    X, y = arrays
    dm = CrossValDataModule(
        X=X,
        y=y,
        splitter="kfold",
        splitter_kwargs={"n_splits": 4},
        dataloaders={"default": {"batch_size": 5}, "val": {"batch_size": 25}, "train": {"shuffle": False}},
    )
    train, val = dm.train_val_dataloaders()[0]
    assert [len(b[0]) for b in _batches(train)] == [5] * 15
    assert [len(b[0]) for b in _batches(val)] == [25]
    assert dm.folds is not None
    assert torch.equal(torch.cat([b[0] for b in _batches(train)]), torch.as_tensor(X[dm.folds[0][0]]))


def test_fitted_transforms_are_applied_to_each_fold_with_its_own_statistics(arrays: tuple) -> None:
    X, y = arrays
    dm = CrossValDataModule(
        X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 4}, fitted_transforms=[Standardize()]
    )
    loaders = dm.train_val_dataloaders()
    assert dm.fitted_transforms[0].mean is None, "the template transform was fitted in place"
    means = [dm.fitted[i][0].mean for i in range(4)]
    assert not torch.allclose(means[0], means[1])
    for (train, _), (train_idx, _) in zip(loaders, dm.folds or [], strict=True):
        served = torch.cat([b[0] for b in _batches(train)])
        assert served[:, :3].mean(0).abs().max() < 1e-5
        assert torch.allclose(served[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4)
        assert len(served) == len(train_idx)


def test_seed_fills_random_state_only_when_the_splitter_shuffles(arrays: tuple) -> None:
    X, y = arrays
    shuffled = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 3, "shuffle": True}, seed=11)
    plain = CrossValDataModule(X=X, y=y, splitter="kfold", splitter_kwargs={"n_splits": 3}, seed=11)
    drawn = CrossValDataModule(X=X, y=y, splitter="shuffle_split", splitter_kwargs={"n_splits": 3}, seed=11)
    assert shuffled.splitter.random_state == 11
    assert plain.splitter.random_state is None
    assert drawn.splitter.random_state == 11


def test_splitter_instance_is_used_as_given(arrays: tuple) -> None:
    from sklearn.model_selection import KFold

    X, y = arrays
    splitter = KFold(n_splits=2)
    dm = CrossValDataModule(X=X, y=y, splitter=splitter)
    assert dm.splitter is splitter
    assert [len(va) for _, va in _folds(dm)] == [50, 50]
