"""A LightningDataModule whose folds come from any scikit-learn splitter, computed once from a seed."""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset, TensorDataset

from lcv_config import ConfigError, DataConfig, LcvError, build, resolve
from lcv_config.errors import did_you_mean
from lcv_data._checks import check_before_split
from lcv_data.loaders import TensorBatchLoader

_LOADER_KEYS = ("batch_size", "shuffle", "drop_last")
_SPLITS = ("default", "train", "val", "test", "predict")


class CrossValDataModule(LightningDataModule):
    """Cross-validation folds of one dataset, served as ``(train_loader, val_loader)`` pairs.

    Folds are index views of the one dataset: every loader gathers from the same tensors, so memory does
    not grow with the number of folds.

    Args:
        dataset: A ``TensorDataset`` (inputs, targets), or arrays given as ``X``/``y`` instead.
        X: Inputs, when no ``dataset`` is given (numpy or torch).
        y: Targets, when no ``dataset`` is given.
        splitter: A splitter object, or a name in ``lcv.splitters`` (``stratified_kfold``).
        splitter_kwargs: Arguments for a splitter given by name.
        groups: Group labels per sample, for group splitters.
        fitted_transforms: Transforms with ``fit``/``transform`` fitted on each fold's training inputs.
        dataloaders: Loader settings per split (``train``, ``val``) with ``default`` for all.
        seed: Seed of the splitter and of the shuffling.

    Raises:
        LcvError: No data, an empty dataset, or ``groups`` whose length differs from the dataset's.
        ConfigError: An unknown splitter, split or dataloader key.
    """

    def __init__(
        self,
        dataset: Dataset[Any] | None = None,
        *,
        X: Any = None,
        y: Any = None,
        splitter: Any = "stratified_kfold",
        splitter_kwargs: Mapping[str, Any] | None = None,
        groups: Any = None,
        fitted_transforms: Sequence[Any] = (),
        dataloaders: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dataset is None:
            if X is None:
                raise LcvError("CrossValDataModule needs a dataset or arrays X (and y).")
            tensors = [torch.as_tensor(np.asarray(X))]
            if y is not None:
                y_t = torch.as_tensor(np.asarray(y))
                if len(y_t) != len(tensors[0]):
                    raise LcvError(f"X has {len(tensors[0])} samples but y has {len(y_t)}; give one target per sample.")
                tensors.append(y_t)
            dataset = TensorDataset(*tensors)
        if not isinstance(dataset, TensorDataset):
            raise LcvError(
                f"This version of CrossValDataModule takes a TensorDataset or arrays; got {type(dataset).__name__}."
            )
        if len(dataset) == 0:
            raise LcvError("The dataset is empty: cross-validation needs samples to split.")
        self.dataset = dataset
        self.splitter = self._make_splitter(splitter, dict(splitter_kwargs or {}), seed)
        self.groups = None if groups is None else np.asarray(groups)
        if self.groups is not None and len(self.groups) != len(dataset):
            raise LcvError(
                f"groups has {len(self.groups)} entries but the dataset has {len(dataset)} samples; "
                "give one group label per sample."
            )
        self.fitted_transforms = list(fitted_transforms)
        self.loader_settings = {k: dict(v) for k, v in (dataloaders or {"default": {"batch_size": 32}}).items()}
        for split, settings in self.loader_settings.items():
            if split not in _SPLITS:
                hint = did_you_mean(split, _SPLITS)
                raise ConfigError(
                    f"Unknown dataloader split '{split}'.{hint} Valid splits: {', '.join(_SPLITS)}.", "data.dataloaders"
                )
            unknown = set(settings) - set(_LOADER_KEYS)
            if unknown:
                keys = ", ".join(sorted(unknown))
                hint = "".join(did_you_mean(k, _LOADER_KEYS) for k in sorted(unknown))
                raise ConfigError(
                    f"Unknown dataloader key(s) {keys} for '{split}'.{hint} Valid keys: {', '.join(_LOADER_KEYS)}.",
                    f"data.dataloaders.{split}",
                )
        self.seed = seed
        self.folds: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.fitted: list[list[Any]] = []

    @staticmethod
    def _make_splitter(splitter: Any, kwargs: dict[str, Any], seed: int) -> Any:
        if not isinstance(splitter, str) and not inspect.isclass(splitter) and hasattr(splitter, "split"):
            return splitter  # an instance, used as given
        cls = resolve("splitter", splitter, "data.splitter.name")
        params = inspect.signature(cls).parameters
        seeded = kwargs.get("shuffle") or "shuffle" not in params  # sklearn rejects random_state without shuffle
        if "random_state" in params and "random_state" not in kwargs and seeded:
            kwargs["random_state"] = seed  # frozen folds: the same split on every call and every trial
        return build("splitter", {"name": cls, "cfg": kwargs}, "data.splitter")

    @classmethod
    def from_config(cls, config: DataConfig, seed: int = 0) -> CrossValDataModule:
        """Build the datamodule a config's ``data`` section describes."""
        if config.dataset is None:
            raise ConfigError("The data section needs a dataset (e.g. 'digits').", "data.dataset")
        dataset = build("dataset", config.dataset, "data.dataset")
        fitted = [build("transform", t, f"data.fitted_transforms[{i}]") for i, t in enumerate(config.fitted_transforms)]
        return cls(
            dataset,
            splitter=config.splitter.name,
            splitter_kwargs=config.splitter.cfg,
            fitted_transforms=fitted,
            dataloaders=config.dataloaders,
            seed=seed,
        )

    @property
    def labels(self) -> np.ndarray | None:
        """The targets used for stratification, if the dataset has them."""
        return self.dataset.tensors[1].numpy() if len(self.dataset.tensors) > 1 else None

    def setup(self, stage: str | None = None) -> None:
        """Compute the folds once (later calls keep them) and fit each fold's transforms on its training inputs.

        Raises:
            LcvError: The splitter cannot split this dataset; the message names the cause and the fix.
        """
        if self.folds is None:
            self.folds = self._split()
        if len(self.fitted) != len(self.folds):
            self._fit_transforms()

    def _split(self) -> list[tuple[np.ndarray, np.ndarray]]:
        n = len(self.dataset)
        labels = self.labels
        check_before_split(self.splitter, n, labels, self.groups)
        try:
            extra = {} if self.groups is None else {"groups": self.groups}
            splits = list(self.splitter.split(np.zeros(n), labels, **extra))
        except (ValueError, TypeError) as exc:
            raise LcvError(f"{type(self.splitter).__name__} cannot split this dataset: {exc}") from exc
        return [(np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64)) for tr, va in splits]

    def _fit_transforms(self) -> None:
        assert self.folds is not None
        X = self.dataset.tensors[0]
        self.fitted = []
        for train_idx, _ in self.folds:
            inputs = X[torch.as_tensor(train_idx)]
            fold_transforms = []
            for t in self.fitted_transforms:
                fitted = copy.deepcopy(t).fit(inputs)
                inputs = fitted.transform(inputs)
                fold_transforms.append(fitted)
            self.fitted.append(fold_transforms)

    def _settings(self, split: str) -> dict[str, Any]:
        merged: dict[str, Any] = {"batch_size": 32, "shuffle": split == "train", "drop_last": False}
        merged.update(self.loader_settings.get("default", {}))
        merged.update(self.loader_settings.get(split, {}))
        if split != "train":
            merged["drop_last"] = False  # never drop validation samples
        return merged

    def _loader(self, fold: int, split: str, indices: np.ndarray) -> TensorBatchLoader:
        transforms = self.fitted[fold]

        def apply(x: torch.Tensor) -> torch.Tensor:
            for t in transforms:
                x = t.transform(x)
            return x

        s = self._settings(split)
        return TensorBatchLoader(
            self.dataset.tensors,
            torch.as_tensor(indices),
            batch_size=s["batch_size"],
            shuffle=s["shuffle"],
            drop_last=s["drop_last"],
            seed=self.seed * 1000 + fold,
            transform=apply if transforms else None,
        )

    def train_val_dataloaders(self) -> list[tuple[TensorBatchLoader, TensorBatchLoader]]:
        """Return ``(train_loader, val_loader)`` per fold; the same folds on every call."""
        self.setup("fit")
        assert self.folds is not None
        return [(self._loader(i, "train", tr), self._loader(i, "val", va)) for i, (tr, va) in enumerate(self.folds)]

    def save_folds(self, path: str | Path) -> None:
        """Write the folds as JSON: the splitter and every fold's train and validation indices."""
        self.setup("fit")
        assert self.folds is not None
        data = {
            "splitter": repr(self.splitter),
            "n_samples": len(self.dataset),
            "folds": [{"train": tr.tolist(), "val": va.tolist()} for tr, va in self.folds],
        }
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    def load_folds(self, path: str | Path) -> None:
        """Restore folds written by :meth:`save_folds` (a resumed run serves the very same folds).

        Raises:
            LcvError: The file was written for a dataset of another size, or an index is out of range.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        n = len(self.dataset)
        if data.get("n_samples") != n:
            raise LcvError(f"{path} holds folds of {data.get('n_samples')} samples; this dataset has {n}.")
        folds = [(np.asarray(f["train"], dtype=np.int64), np.asarray(f["val"], dtype=np.int64)) for f in data["folds"]]
        for i, (tr, va) in enumerate(folds):
            if any(len(part) and (part.min() < 0 or part.max() >= n) for part in (tr, va)):
                raise LcvError(f"{path}: fold {i} has an index outside 0..{n - 1}.")
        self.folds = folds
        self.fitted = []
