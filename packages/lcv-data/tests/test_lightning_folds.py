"""LightningFolds: the MNIST datamodule of Lightning's docs, unchanged, cross-validated on generated images."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, random_split

from lcv_config import ConfigError, DataConfig, LcvError
from lcv_config.testing import DataModuleContract
from lcv_data import LightningFolds


class MNIST(Dataset[tuple[torch.Tensor, int]]):
    """torchvision's ``MNIST`` (same arguments, ``data`` and ``targets``), generated: 600 train and 100 test images.

    Classes are imbalanced (class ``c`` has about twice the samples of class ``c + 5``), so stratification shows.
    """

    def __init__(self, root: str, train: bool = True, transform: Any = None, download: bool = False) -> None:
        n = 600 if train else 100
        g = torch.Generator().manual_seed(0 if train else 1)
        weights = torch.tensor([2.0] * 5 + [1.0] * 5)
        self.targets = torch.multinomial(weights, n, replacement=True, generator=g)
        self.data = (torch.rand(n, 28, 28, generator=g) * 128).to(torch.uint8)
        self.data[torch.arange(n), self.targets * 2] = 255  # the class is written in the image: a bright row
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.data[index].float().div(255).unsqueeze(0)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``transforms.Normalize((0.1307,), (0.3081,))``."""
    return (x - 0.1307) / 0.3081


class MNISTDataModule(LightningDataModule):
    """The datamodule of Lightning's docs ("LightningDataModule"), with 550/50 instead of 55000/5000 images."""

    def __init__(self, data_dir: str = "./", batch_size: int = 32) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.transform = normalize

    def prepare_data(self) -> None:
        # download
        MNIST(self.data_dir, train=True, download=True)
        MNIST(self.data_dir, train=False, download=True)

    def setup(self, stage: str) -> None:
        # Assign train/val datasets for use in dataloaders
        if stage == "fit":
            mnist_full = MNIST(self.data_dir, train=True, transform=self.transform)
            self.mnist_train, self.mnist_val = random_split(
                mnist_full, [550, 50], generator=torch.Generator().manual_seed(42)
            )

        # Assign test dataset for use in dataloader(s)
        if stage == "test":
            self.mnist_test = MNIST(self.data_dir, train=False, transform=self.transform)

        if stage == "predict":
            self.mnist_predict = MNIST(self.data_dir, train=False, transform=self.transform)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_train, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_val, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_test, batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_predict, batch_size=self.batch_size)


def dict_collate(samples: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """A collate function of the user's: dict batches with flat images."""
    return {"image": torch.stack([x.flatten() for x, _ in samples]), "label": torch.tensor([y for _, y in samples])}


class TunedLoaders(MNISTDataModule):
    """The docs' datamodule with loader settings of its own: lcv keeps every one of them per fold."""

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_train, batch_size=16, shuffle=True, drop_last=True, collate_fn=dict_collate)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.mnist_val, batch_size=100, collate_fn=dict_collate)


def stratified(**kwargs: Any) -> LightningFolds:
    return LightningFolds(
        MNISTDataModule(), "stratified_kfold", splitter_kwargs={"n_splits": 5, "shuffle": True}, **kwargs
    )


def test_folds_split_the_training_dataset_with_the_class_proportions_of_the_whole() -> None:
    folds = stratified()
    folds.setup("fit")
    assert folds.folds is not None and len(folds.folds) == 5
    assert folds.n_samples == 550  # the training part of random_split; the 50 validation images are not split
    vals = np.concatenate([va for _, va in folds.folds])
    assert sorted(vals.tolist()) == list(range(550))
    dataset = folds.datamodule.mnist_train
    labels = np.array([int(dataset[i][1]) for i in range(550)])
    overall = Counter(labels.tolist())
    for train, val in folds.folds:
        assert not set(train.tolist()) & set(val.tolist())
        counts = Counter(labels[val].tolist())
        for c, total in overall.items():
            assert abs(counts[c] - total / 5) <= 1, (c, counts[c], total)  # each fold holds a fifth of every class


def test_labels_from_targets_through_the_subset_an_attribute_name_or_a_function_give_the_same_folds() -> None:
    default, by_name = stratified(), stratified(labels="targets")
    by_function = stratified(labels=lambda sample: sample[1])
    for folds in (default, by_name, by_function):
        folds.setup("fit")
    assert default.labels is not None and default.labels.dtype.kind == "i"
    for folds in (by_name, by_function):
        assert folds.folds is not None and default.folds is not None
        for (a, b), (c, d) in zip(default.folds, folds.folds, strict=True):
            assert np.array_equal(a, c) and np.array_equal(b, d)


class Unlabelled(Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.full((3,), float(index))


class UnlabelledDataModule(LightningDataModule):
    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(Unlabelled(), batch_size=8)


def test_a_stratified_splitter_without_readable_labels_says_how_to_give_them() -> None:
    folds = LightningFolds(UnlabelledDataModule(), "stratified_kfold")
    with pytest.raises(LcvError, match=r"StratifiedKFold needs one label per sample.*labels='<attribute of the"):
        folds.setup("fit")
    with pytest.raises(LcvError, match=r"labels='nope' names no attribute of Subset"):
        stratified(labels="nope").setup("fit")
    with pytest.raises(LcvError, match="labels has 3 entries but the dataset has 550"):
        stratified(labels=[0, 1, 2]).setup("fit")
    plain = LightningFolds(UnlabelledDataModule(), "kfold", splitter_kwargs={"n_splits": 4})
    plain.setup("fit")  # a splitter without labels reads no sample
    assert plain.labels is None and plain.folds is not None and len(plain.folds) == 4


def test_groups_come_from_a_function_of_the_sample_and_no_group_is_split() -> None:
    folds = LightningFolds(MNISTDataModule(), "group_kfold", splitter_kwargs={"n_splits": 5})
    with pytest.raises(LcvError, match="group splitter but no groups were given"):
        folds.setup("fit")
    folds = LightningFolds(
        MNISTDataModule(), "group_kfold", splitter_kwargs={"n_splits": 5}, groups=lambda s: int(s[0].sum() > 0)
    )
    with pytest.raises(LcvError, match="n_splits=5 is larger than the number of groups"):
        folds.setup("fit")
    folds = LightningFolds(
        MNISTDataModule(), "group_kfold", splitter_kwargs={"n_splits": 5}, groups=lambda s: int(s[1])
    )
    with pytest.warns(UserWarning, match=r"class is in a fold's validation part but not in its training part"):
        folds.setup("fit")  # grouped by class: each fold validates on classes it never trains on
    strict = LightningFolds(MNISTDataModule(), "group_kfold", groups=lambda s: int(s[1]), strict=True)
    with pytest.raises(LcvError, match="strict=True makes this an error"):
        strict.setup("fit")
    assert folds.folds is not None and folds.groups is not None
    for train, val in folds.folds:
        assert not set(folds.groups[train].tolist()) & set(folds.groups[val].tolist())


def test_every_fold_loader_keeps_the_datamodules_loader_settings_and_collate_function() -> None:
    folds = LightningFolds(TunedLoaders(), "stratified_kfold", splitter_kwargs={"n_splits": 3})
    pairs = folds.train_val_dataloaders()
    assert len(pairs) == 3
    for i, (train, val) in enumerate(pairs):
        assert folds.folds is not None
        n_train, n_val = len(folds.folds[i][0]), len(folds.folds[i][1])
        assert train.batch_size == 16 and train.drop_last and train.collate_fn is dict_collate
        assert isinstance(train.sampler, torch.utils.data.RandomSampler)
        assert len(train) == n_train // 16  # drop_last: only full batches
        batch = next(iter(train))
        assert set(batch) == {"image", "label"} and batch["image"].shape == (16, 784)
        # Validation: val_dataloader()'s batch size and collate function, never shuffled, nothing dropped.
        assert val.batch_size == 100 and val.collate_fn is dict_collate and not val.drop_last
        assert isinstance(val.sampler, torch.utils.data.SequentialSampler)
        seen = torch.cat([b["label"] for b in val])
        assert len(seen) == n_val
        expected = [int(folds.dataset[j][1]) for j in folds.folds[i][1]]
        assert seen.tolist() == expected  # in the order of the fold's indices (out-of-fold predictions rely on it)


def test_the_docs_datamodule_keeps_its_unshuffled_training_loader() -> None:
    train, val = stratified().train_val_dataloaders()[0]
    assert train.batch_size == 32 and isinstance(train.sampler, torch.utils.data.SequentialSampler)
    assert val.batch_size == 32


def epoch(loader: Any) -> list[torch.Tensor]:
    return [b["label"] for b in loader]


def test_fold_loaders_resume_exactly_from_their_state() -> None:
    first = LightningFolds(TunedLoaders(), "stratified_kfold", splitter_kwargs={"n_splits": 3}, seed=3)
    loaders = first.train_val_dataloaders()
    for train, _ in loaders:
        epoch(train)
    states = [(train.state_dict(), val.state_dict()) for train, val in loaders]
    expected = [epoch(train) for train, _ in loaders]
    fresh = LightningFolds(TunedLoaders(), "stratified_kfold", splitter_kwargs={"n_splits": 3}, seed=3)
    resumed = fresh.train_val_dataloaders()
    for (train, val), (train_state, val_state) in zip(resumed, states, strict=True):
        train.load_state_dict(train_state)
        val.load_state_dict(val_state)
    for (train, _), want in zip(resumed, expected, strict=True):
        got = epoch(train)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    untouched = LightningFolds(TunedLoaders(), "stratified_kfold", splitter_kwargs={"n_splits": 3}, seed=3)
    assert not torch.equal(epoch(untouched.train_val_dataloaders()[0][0])[0], expected[0][0])  # a new epoch's order
    with pytest.raises(LcvError, match="fold 0 cannot be loaded into the train loader of fold 1"):
        resumed[1][0].load_state_dict(states[0][0])


class Counting(MNISTDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")
        super().prepare_data()

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")
        super().setup(stage)


def test_prepare_data_and_setup_run_once_and_test_and_predict_use_the_datamodules_loaders() -> None:
    dm = Counting()
    folds = LightningFolds(dm, "stratified_kfold", splitter_kwargs={"n_splits": 5})
    folds.prepare_data()
    folds.setup("fit")
    folds.train_val_dataloaders()
    folds.setup("fit")
    assert dm.calls == ["prepare_data", "setup:fit"]
    test = folds.test_dataloader(fold=2)
    assert isinstance(test, DataLoader) and test.dataset is dm.mnist_test and len(test.dataset) == 100
    assert folds.predict_dataloader(0).dataset is dm.mnist_predict
    assert folds.test_dataloader().dataset is dm.mnist_test
    assert dm.calls == ["prepare_data", "setup:fit", "setup:test", "setup:predict"]


def test_pooling_the_validation_dataset_splits_all_600_images() -> None:
    folds = stratified(pool_validation=True)
    folds.setup("fit")
    assert folds.n_samples == 600 and folds.n_train == 550
    assert folds.folds is not None
    assert sorted(np.concatenate([va for _, va in folds.folds]).tolist()) == list(range(600))
    no_val = LightningFolds(UnlabelledDataModule(), "kfold", pool_validation=True)
    with pytest.raises(LcvError, match="pool_validation=True needs the validation data"):
        no_val.setup("fit")


def test_named_dataset_attributes_are_used_instead_of_the_loaders_datasets() -> None:
    folds = stratified(train_dataset="mnist_val", val_dataset="mnist_train", pool_validation=True)
    folds.setup("fit")
    assert folds.n_train == 50 and folds.n_samples == 600
    with pytest.raises(LcvError, match="train_dataset='mnist' names no attribute of MNISTDataModule"):
        stratified(train_dataset="mnist").setup("fit")


class WeightedLoaders(MNISTDataModule):
    def train_dataloader(self) -> DataLoader[Any]:
        sampler = WeightedRandomSampler(torch.ones(len(self.mnist_train)), num_samples=len(self.mnist_train))
        return DataLoader(self.mnist_train, batch_size=8, sampler=sampler)


class TwoLoaders(MNISTDataModule):
    def train_dataloader(self) -> Any:
        return [super().train_dataloader(), super().train_dataloader()]


def test_loaders_that_cannot_be_split_are_refused_with_the_fix() -> None:
    with pytest.raises(LcvError, match=r"custom sampler \(WeightedRandomSampler\).*shuffle=True or shuffle=False"):
        LightningFolds(WeightedLoaders(), "kfold").setup("fit")
    with pytest.raises(LcvError, match=r"TwoLoaders.train_dataloader\(\) returned a list"):
        LightningFolds(TwoLoaders(), "kfold").setup("fit")
    with pytest.raises(LcvError, match="needs a LightningDataModule with train_dataloader"):
        LightningFolds(object(), "kfold")


def test_saved_folds_are_restored_into_a_new_object(tmp_path: Path) -> None:
    folds = stratified()
    folds.save_folds(tmp_path / "folds.json")
    data = json.loads((tmp_path / "folds.json").read_text(encoding="utf-8"))
    assert data["n_samples"] == 550 and len(data["folds"]) == 5 and "StratifiedKFold" in data["splitter"]
    other = LightningFolds(
        MNISTDataModule(), "stratified_kfold", splitter_kwargs={"n_splits": 5, "shuffle": True}, seed=9
    )
    other.load_folds(tmp_path / "folds.json")
    assert other.folds is not None and folds.folds is not None
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds.folds, other.folds, strict=True))
    small = LightningFolds(UnlabelledDataModule(), "kfold")
    with pytest.raises(LcvError, match="holds folds of 550 samples; this dataset has 40"):
        small.load_folds(tmp_path / "folds.json")


class DeviceHooks(MNISTDataModule):
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return x.flatten(1), y

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return x * 2, y


def test_the_datamodules_batch_transfer_hooks_are_kept() -> None:
    folds = LightningFolds(DeviceHooks(), "kfold", splitter_kwargs={"n_splits": 2})
    train, _ = folds.train_val_dataloaders()[0]
    x, _ = next(iter(train))
    assert x.shape == (32, 784)  # on_before_batch_transfer ran in the loader
    assert folds.has_device_transforms and torch.equal(folds.on_after_batch_transfer((x, None), 0)[0], x * 2)
    plain = LightningFolds(MNISTDataModule(), "kfold", splitter_kwargs={"n_splits": 2})
    assert not plain.has_device_transforms
    assert next(iter(plain.train_val_dataloaders()[0][0]))[0].shape == (32, 1, 28, 28)


def test_from_config_builds_the_named_datamodule_class_with_its_arguments() -> None:
    config = DataConfig(
        datamodule="lightning",
        dataset={"name": TunedLoaders, "cfg": {"batch_size": 8}},
        splitter={"name": "stratified_kfold", "cfg": {"n_splits": 4, "shuffle": True}},
        labels="targets",
        pool_validation=True,
        fold=2,
    )
    folds = LightningFolds.from_config(config, seed=4)
    folds.setup()
    assert isinstance(folds.datamodule, TunedLoaders) and folds.datamodule.batch_size == 8
    assert folds.n_samples == 600 and folds.fold == 2 and folds.splitter.random_state == 4
    assert len(folds.train_dataloader().dataset) == len(folds.folds[2][0])  # type: ignore[index]
    with pytest.raises(ConfigError, match="data.holdout is not used with datamodule: lightning"):
        LightningFolds.from_config(config.model_copy(update={"holdout": 0.2}))
    with pytest.raises(ConfigError, match="needs dataset:"):
        LightningFolds.from_config(DataConfig(datamodule="lightning"))
    with pytest.raises(ConfigError, match="has no train_dataloader"):
        LightningFolds.from_config(DataConfig(datamodule="lightning", dataset={"name": dict, "cfg": {}}))


def test_pool_validation_is_refused_by_the_other_datamodules() -> None:
    from lcv_data import CrossValDataModule

    with pytest.raises(ConfigError, match="data.pool_validation applies to datamodule: lightning"):
        CrossValDataModule.from_config(DataConfig(dataset="iris", pool_validation=True))


def test_a_batch_size_set_on_the_folds_reaches_the_datamodule_and_the_next_loaders() -> None:
    folds = stratified()
    assert folds.train_val_dataloaders()[0][0].batch_size == 32
    folds.batch_size = 8  # what a batch-size finder does, as Lightning's sets datamodule.batch_size
    assert folds.datamodule.batch_size == 8
    train, val = folds.train_val_dataloaders()[0]
    assert train.batch_size == 8 and val.batch_size == 8
    assert not hasattr(LightningFolds(UnlabelledDataModule(), "kfold"), "batch_size")


class TestLightningFoldsContract(DataModuleContract):
    """The datamodule plugin contract: from_config, folds matching the loaders, saved folds, resumable loaders."""

    datamodule_class = LightningFolds

    def make_source(self) -> Any:
        return LightningFolds(TunedLoaders(), "stratified_kfold", splitter_kwargs={"n_splits": 3, "shuffle": True})

    def make_config(self) -> Any:
        return {
            "datamodule": "lightning",
            "dataset": {"name": MNISTDataModule, "cfg": {"batch_size": 64}},
            "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 3}},
        }
