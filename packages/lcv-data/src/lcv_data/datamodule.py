"""A LightningDataModule whose folds come from any scikit-learn splitter, computed once from a seed."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule

from lcv_config import ConfigError, DataConfig, LcvError, build
from lcv_data._checks import check_before_split, unseen_classes_message
from lcv_data._fold_files import read_folds, restore_transforms, write_folds, write_transforms
from lcv_data._holdout import carve_holdout
from lcv_data._splitting import make_splitter, split_pool
from lcv_data.loaders import SplitDataset, SplitLoader
from lcv_data.loaders._build import check_loader_settings, make_loader, split_settings
from lcv_data.loaders._fold_access import FoldAccess
from lcv_data.sources import Source, column, default_labels, make_source
from lcv_data.transforms._fitting import fit_fold
from lcv_data.transforms.staged import SamplePipeline, build_batch_stages, build_stages, build_transform


@dataclass
class OuterFold:
    """One outer fold of nested cross-validation: an inner datamodule over the outer training part."""

    index: int
    """The outer fold's number."""
    train_indices: np.ndarray
    """The outer training samples, split again by the inner splitter."""
    test_indices: np.ndarray
    """The outer test samples: the inner datamodule's ``test_dataloader()``."""
    datamodule: CrossValDataModule
    """Inner cross-validation over ``train_indices``, with ``test_indices`` as its holdout."""


class CrossValDataModule(FoldAccess, LightningDataModule):
    """Cross-validation folds of one dataset, served as ``(train_loader, val_loader)`` pairs.

    Folds are index views of the one dataset, computed once from ``seed``: memory does not grow with the
    number of folds, and every epoch and trial sees the same folds.

    Args:
        dataset: Any map-style torch ``Dataset`` (tuple or dict samples), a dict of tensors, a pandas
            DataFrame, or a bundled dataset's name (``digits``); or give ``X``/``y`` instead.
        X: Inputs, when no ``dataset`` is given (numpy, torch, or a DataFrame with ``features``/``target``).
        y: Targets, when no ``dataset`` is given.
        features: DataFrame columns used as inputs (default: every column but ``target``).
        target: The DataFrame column used as target.
        input_key: The key of a dict sample holding the input (default: ``x``, ``X``, ``input``...).
        target_key: The key of a dict sample holding the target (default: ``y``, ``Y``, ``target``...).
        labels: Labels for stratification: an array, an attribute name, a DataFrame column, a dict-sample
            key, or a callable over samples (default: the targets, when they are one class per sample).
        groups: Group labels per sample for group splitters, given like ``labels``.
        splitter: A splitter object or class, a name in ``lcv.splitters`` (``stratified_kfold``), or a dotted path.
        splitter_kwargs: Arguments for a splitter given by name or class.
        holdout: A test split carved off before the folds: a fraction (``0.2``) or a count. Stratified when
            labels exist, grouped when groups exist.
        test_dataset: A separate test dataset (instead of ``holdout``), in any form ``dataset`` accepts.
        predict_dataset: Data for ``predict_dataloader()`` (default: the test data).
        transforms: Per-sample input transforms by stage: ``pre``, ``train``, ``val``, ``test``, ``predict``, ``post``.
        target_transforms: Per-sample target transforms, same stages.
        fitted_transforms: Transforms with ``fit``/``transform`` fitted on each fold's training data (inputs,
            or targets for those with ``on = "target"``).
        batch_transforms: Batch transforms per split (``default``, ``train``, ...), each ``{before: [...],
            after: [...]}``: before or after the batch moves to the device.
        dataloaders: Loader settings per split (``train``, ``val``, ``test``, ``predict``) with ``default`` for all.
        fold: The fold served by ``train_dataloader()``/``val_dataloader()`` (a plain ``lightning.Trainer``).
        seed: Seed of the splitter and of the shuffling.
        strict: Make a class found in a fold's validation part but not in its training part an error at
            ``setup()``, not a warning.

    Raises:
        LcvError: No data, an empty dataset, or labels/groups whose length differs from the dataset's.
        ConfigError: An unknown splitter, transform stage, split or dataloader key.
    """

    def __init__(
        self,
        dataset: Any = None,
        *,
        X: Any = None,
        y: Any = None,
        features: Sequence[str] | None = None,
        target: str | None = None,
        input_key: str | None = None,
        target_key: str | None = None,
        labels: Any = None,
        groups: Any = None,
        splitter: Any = "stratified_kfold",
        splitter_kwargs: Mapping[str, Any] | None = None,
        holdout: float | int | None = None,
        test_dataset: Any = None,
        predict_dataset: Any = None,
        transforms: Mapping[str, Sequence[Any]] | None = None,
        target_transforms: Mapping[str, Sequence[Any]] | None = None,
        fitted_transforms: Sequence[Any] = (),
        batch_transforms: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
        dataloaders: Mapping[str, Mapping[str, Any]] | None = None,
        fold: int = 0,
        seed: int = 0,
        strict: bool = False,
    ) -> None:
        super().__init__()
        keys: dict[str, Any] = {
            "features": features,
            "target": target,
            "input_key": input_key,
            "target_key": target_key,
        }
        self.source = make_source(dataset, X=X, y=y, **keys)
        self.dataset = self.source.dataset
        if len(self.dataset) == 0:  # type: ignore[arg-type]  # map-style: make_source checked __len__
            raise LcvError("The dataset is empty: cross-validation needs samples to split.")
        self.label_values = column(labels, self.source, "labels")
        self.groups = column(groups, self.source, "groups")
        if holdout is not None and test_dataset is not None:
            raise LcvError("Give holdout= or test_dataset=, not both: the test data come from one of them.")
        self.holdout = holdout
        self.test_source = None if test_dataset is None else make_source(test_dataset, **keys)
        self.predict_source = None if predict_dataset is None else make_source(predict_dataset, **keys)
        self.splitter = self._make_splitter(splitter, dict(splitter_kwargs or {}), seed)
        self.pipeline = SamplePipeline(
            build_stages(transforms, "data.transforms"), build_stages(target_transforms, "data.target_transforms")
        )
        self.fitted_transforms = [
            build_transform(t, f"data.fitted_transforms[{i}]") for i, t in enumerate(fitted_transforms)
        ]
        self.batch_transforms = build_batch_stages(batch_transforms, "data.batch_transforms")
        self.loader_settings = check_loader_settings(dataloaders or {"default": {"batch_size": 32}})
        self.fold = fold
        self.seed = seed
        self.strict = strict
        self.folds: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.test_indices: np.ndarray | None = None
        self.fitted: list[list[Any]] = []
        self.active: tuple[str, int] = ("train", fold)
        self._fixed: tuple[np.ndarray, np.ndarray | None] | None = None  # (pool, test) of an outer fold

    @staticmethod
    def _make_splitter(splitter: Any, kwargs: dict[str, Any], seed: int) -> Any:
        return make_splitter(splitter, kwargs, seed)

    @classmethod
    def from_config(cls, config: DataConfig, seed: int = 0) -> CrossValDataModule:
        """Build the datamodule a config's ``data`` section describes."""
        if config.dataset is None:
            raise ConfigError("The data section needs a dataset (e.g. 'digits').", "data.dataset")
        if getattr(config, "pool_validation", False):
            raise ConfigError(
                "data.pool_validation applies to datamodule: lightning (a LightningDataModule's training and "
                "validation datasets split together); with this datamodule every sample of data.dataset is split: "
                "remove it.",
                "data.pool_validation",
            )
        keys = ("labels", "groups", "features", "target", "fold", "strict")
        extra = {k: getattr(config, k, None) for k in keys}
        test = getattr(config, "test_dataset", None)
        outer = getattr(config, "outer", None)
        if outer is not None and (config.holdout is not None or test is not None):
            key = "holdout" if config.holdout is not None else "test_dataset"
            raise ConfigError(
                f"data.outer makes the outer fold's test rows the test data; data.{key} would be a second test "
                f"set: remove data.{key}.",
                f"data.{key}",
            )
        datamodule = cls(
            build("dataset", config.dataset, "data.dataset"),
            splitter=config.splitter.name,
            splitter_kwargs=config.splitter.cfg,
            holdout=config.holdout,
            test_dataset=None if test is None else build("dataset", test, "data.test_dataset"),
            transforms=config.transforms,
            target_transforms=config.target_transforms,
            fitted_transforms=config.fitted_transforms,
            batch_transforms=getattr(config, "batch_transforms", None),
            dataloaders=config.dataloaders,
            seed=seed,
            **{k: v for k, v in extra.items() if v is not None},
        )
        if outer is not None:
            datamodule.restrict_to_outer_fold(outer.splitter, outer.cfg, outer.fold)
        return datamodule

    @property
    def labels(self) -> np.ndarray | None:
        """The labels used for stratification: ``labels=`` if given, else the targets if they are classes."""
        return self.label_values if self.label_values is not None else default_labels(self.source)

    # ----------------------------------------------------------------------------------------- folds
    def setup(self, stage: str | None = None) -> None:
        """Carve the holdout and compute the folds once (later calls keep them), then fit each fold's transforms.

        A class in a fold's validation part that its training part lacks is a warning naming fold and class
        (an error with ``strict=True``).

        Raises:
            LcvError: The splitter cannot split this dataset, or a transform fails; the message names the cause.
        """
        if self.folds is None:
            self.folds = self._split()
            self._check_folds(self.folds)
        if len(self.fitted) != len(self.folds):
            self.fitted = [
                fit_fold(self.source, self.pipeline, self.fitted_transforms, i, tr)
                for i, (tr, _) in enumerate(self.folds)
            ]
            self._probe()

    def _split(self) -> list[tuple[np.ndarray, np.ndarray]]:
        n = len(self.dataset)  # type: ignore[arg-type]
        labels, groups = self.labels, self.groups
        if self._fixed is not None:
            pool, self.test_indices = self._fixed
        elif self.holdout is not None:
            pool, self.test_indices = carve_holdout(self.holdout, n, labels, groups, self.seed)
        else:
            pool = np.arange(n, dtype=np.int64)
        return split_pool(self.splitter, pool, labels, groups)

    def _check_folds(self, folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
        labels = self.labels
        message = None if labels is None else unseen_classes_message(labels, folds)
        if message is not None and self.strict:
            raise LcvError(message)
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=3)

    def _probe(self) -> None:
        """Run every split's per-sample transforms on its first sample, so a broken transform fails before training."""
        assert self.folds is not None
        train, val = self.folds[0]
        for split, indices in (("train", train), ("val", val), ("test", self.test_indices)):
            if indices is not None and len(indices) and not self.pipeline.is_empty(split):
                SplitDataset(self.dataset, indices[:1], self.pipeline, split, *self._fitted_parts(0), *self._keys())[0]

    def _keys(self, source: Source | None = None) -> tuple[str | int, str | int | None]:
        src = source or self.source
        return src.input_key, src.target_key

    def _fitted_parts(self, fold: int) -> tuple[list[Any], list[Any]]:
        transforms = self.fitted[fold] if self.fitted else []
        return (
            [t for t in transforms if getattr(t, "on", "input") != "target"],
            [t for t in transforms if getattr(t, "on", "input") == "target"],
        )

    # ----------------------------------------------------------------------------------------- loaders
    def _loader(self, fold: int, split: str, indices: np.ndarray, source: Source | None = None) -> SplitLoader:
        src = source or self.source
        s = split_settings(self.loader_settings, split)
        loader = make_loader(src, indices, self.pipeline, split, s, self._fitted_parts(fold), self.seed * 1000 + fold)
        return SplitLoader(loader, split, fold, self.batch_transforms[split]["before"], owner=self)

    def train_val_dataloaders(self) -> list[tuple[SplitLoader, SplitLoader]]:
        """Return ``(train_loader, val_loader)`` per fold; the same folds on every call."""
        self.setup("fit")
        assert self.folds is not None
        return [(self._loader(i, "train", tr), self._loader(i, "val", va)) for i, (tr, va) in enumerate(self.folds)]

    def _holdout_loader(self, split: str, fold: int | None, source: Source | None) -> SplitLoader:
        k = self._fold_index(fold)
        if source is not None:
            return self._loader(k, split, np.arange(len(source.dataset)), source)  # type: ignore[arg-type]
        if self.test_indices is None:
            raise LcvError(
                f"No {split} data: pass holdout=0.2 (a fraction or a count) or test_dataset= to the datamodule."
            )
        return self._loader(k, split, self.test_indices)

    def test_dataloader(self, fold: int | None = None) -> SplitLoader:
        """Return the holdout test loader, with fold ``fold``'s fitted transforms (default: ``self.fold``)."""
        return self._holdout_loader("test", fold, self.test_source)

    def test_dataloaders(self) -> list[SplitLoader]:
        """Return the test loader once per fold, each with that fold's fitted transforms (for a fold ensemble)."""
        self.setup("fit")
        assert self.folds is not None
        return [self.test_dataloader(k) for k in range(len(self.folds))]

    def predict_dataloader(self, fold: int | None = None) -> SplitLoader:
        """Return the prediction loader: ``predict_dataset`` if given, else the test data."""
        return self._holdout_loader("predict", fold, self.predict_source or self.test_source)

    # ------------------------------------------------------------------------------------- device hooks
    def _current_split(self) -> str:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            for flag, split in (("training", "train"), ("sanity_checking", "val"), ("validating", "val")):
                if getattr(trainer, flag, False):
                    return split
            for flag, split in (("testing", "test"), ("predicting", "predict")):
                if getattr(trainer, flag, False):
                    return split
        return self.active[0]

    @property
    def has_device_transforms(self) -> bool:
        """Whether any split has ``after`` batch transforms (run by `on_after_batch_transfer()` on the device).

        lcv-core's trainer reads this: without them it does not call the hook on every batch, and its
        ``vectorized`` schedule (which stacks the folds' batches) can run.
        """
        return any(stages["after"] for stages in self.batch_transforms.values())

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the current split's ``after`` batch transforms, on the device (Lightning's hook name).

        The ``before`` transforms already ran in the loader, so ``on_before_batch_transfer`` is left as is.
        """
        for t in self.batch_transforms[self._current_split()]["after"]:
            batch = t(batch)
        return batch

    # ------------------------------------------------------------------------------------- nested CV
    def outer_folds(self, splitter: Any = "kfold", splitter_kwargs: Mapping[str, Any] | None = None) -> list[OuterFold]:
        """Split the data with an outer splitter; each outer training part is split again by this datamodule's splitter.

        Returns:
            One [`OuterFold`][lcv_data.OuterFold] per outer split, whose ``datamodule`` serves the inner folds and whose
            ``test_dataloader()`` serves the outer test part.
        """
        result = []
        for i, split in enumerate(self._outer_splits(splitter, splitter_kwargs)):
            inner = copy.copy(self)
            inner._fixed = split
            inner.folds, inner.fitted, inner.test_indices = None, [], None
            result.append(OuterFold(i, split[0], split[1], inner))
        return result

    def restrict_to_outer_fold(
        self, splitter: Any, splitter_kwargs: Mapping[str, Any] | None, fold: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Serve only outer fold ``fold``: its training rows are split into the folds, its test rows are the test data.

        The outer split is the one [`outer_folds()`][lcv_data.CrossValDataModule.outer_folds] computes (same splitter,
        same seed), so the outer test rows never enter a fold's training or validation part or a fitted transform. This
        is what ``data.outer`` does.

        Returns:
            The outer fold's ``(train_indices, test_indices)``.

        Raises:
            LcvError: The outer splitter cannot split the data, or ``fold`` does not exist.
        """
        splits = self._outer_splits(splitter, splitter_kwargs)
        if not 0 <= fold < len(splits):
            raise LcvError(
                f"data.outer.fold={fold} does not exist: the outer splitter makes folds 0..{len(splits) - 1}."
            )
        self._fixed = splits[fold]
        self.folds, self.fitted, self.test_indices = None, [], None
        return splits[fold]

    def _outer_splits(
        self, splitter: Any, splitter_kwargs: Mapping[str, Any] | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        outer = self._make_splitter(splitter, dict(splitter_kwargs or {}), self.seed)
        n = len(self.dataset)  # type: ignore[arg-type]
        labels, groups = self.labels, self.groups
        check_before_split(outer, n, labels, groups)
        try:
            splits = list(outer.split(np.zeros(n), labels, **({} if groups is None else {"groups": groups})))
        except (ValueError, TypeError) as exc:
            raise LcvError(f"Outer {type(outer).__name__} cannot split this dataset: {exc}") from exc
        return [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in splits]

    # ------------------------------------------------------------------------------------- saving
    def save_folds(self, path: str | Path) -> None:
        """Write the folds as JSON (splitter, every fold's train/validation indices, the holdout's indices).

        When the datamodule has fitted transforms, their fitted state goes to ``transforms.json`` beside it.
        """
        self.setup("fit")
        assert self.folds is not None
        n = len(self.dataset)  # type: ignore[arg-type]  # map-style: make_source checked __len__
        write_folds(path, self.splitter, n, self.folds, self.test_indices)
        if self.fitted_transforms:
            self.save_transforms(Path(path).with_name("transforms.json"))

    def load_folds(self, path: str | Path) -> None:
        """Restore folds written by `save_folds()` (a resumed run serves the very same folds).

        Raises:
            LcvError: The file was written for a dataset of another size, or an index is out of range.
        """
        n = len(self.dataset)  # type: ignore[arg-type]  # map-style: make_source checked __len__
        folds, test = read_folds(path, n)
        self.folds, self.test_indices, self.fitted = folds, test, []

    def save_transforms(self, path: str | Path) -> None:
        """Write every fold's fitted transform state as JSON (no pickle): class and ``state_dict()`` per transform."""
        self.setup("fit")
        write_transforms(path, self.fitted)

    def load_transforms(self, path: str | Path) -> None:
        """Restore fitted transforms saved by `save_transforms()`, so test and predict reuse the run's state.

        Raises:
            LcvError: The file's transforms or fold count differ from this datamodule's.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if self.folds is None:
            self.folds = self._split()
        self.fitted = restore_transforms(path, data, self.fitted_transforms, len(self.folds))
