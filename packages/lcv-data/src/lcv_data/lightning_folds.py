"""Cross-validation folds of any ``LightningDataModule``, with its own dataloader settings, unchanged."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
)

from lcv_config import ConfigError, DataConfig, LcvError, build
from lcv_data._checks import unseen_classes_message
from lcv_data._fold_files import read_folds, write_folds
from lcv_data._splitting import make_splitter, split_pool
from lcv_data.loaders import ResumableDataLoader, SplitLoader
from lcv_data.loaders._fold_access import FoldAccess
from lcv_data.sources import Source, column

_REBUILT = ("dataset", "shuffle", "sampler", "batch_sampler", "generator")
"""``DataLoader`` arguments lcv sets itself for each fold; every other one is copied from the datamodule's loader."""
_LABEL_OPTIONS = (
    "give labels='<attribute of the dataset>' (e.g. 'targets'; looked up through Subset and ConcatDataset), "
    "labels=<a function of one sample returning its label>, or labels=<an array of one label per sample>"
)


def _overrides(datamodule: Any, hook: str) -> bool:
    """Whether ``datamodule`` has its own ``hook``, not ``LightningDataModule``'s default."""
    own = getattr(type(datamodule), hook, None)
    return callable(own) and own is not getattr(LightningDataModule, hook, None)


def loader_settings(loader: Any, what: str) -> dict[str, Any]:
    """Return the ``DataLoader`` arguments of ``loader`` that a loader over one fold keeps, plus ``shuffle``.

    Args:
        loader: What the datamodule's ``*_dataloader()`` returned.
        what: The method that returned it, for messages.

    Raises:
        LcvError: ``loader`` is not one ``DataLoader`` over a map-style dataset, or its sampler cannot be
            applied to a fold (a custom ``sampler`` or ``batch_sampler`` is built for the whole dataset).
    """
    if not isinstance(loader, DataLoader):
        raise LcvError(
            f"{what} returned a {type(loader).__name__}; lcv splits the dataset of one torch DataLoader into folds. "
            "Return a DataLoader there (several loaders, dicts and CombinedLoaders cannot be split)."
        )
    if isinstance(loader.dataset, IterableDataset):
        raise LcvError(
            f"{what} serves an IterableDataset ({type(loader.dataset).__name__}); folds need a map-style dataset "
            "(with __len__ and __getitem__) whose samples can be picked by index."
        )
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        raise LcvError(
            f"{what} uses a custom batch_sampler ({type(batch_sampler).__name__}), built for the whole dataset; lcv "
            "cannot apply it to a fold's samples. Give the DataLoader batch_size= (and shuffle=) instead."
        )
    sampler = loader.sampler
    if type(sampler) not in (RandomSampler, SequentialSampler):
        raise LcvError(
            f"{what} uses a custom sampler ({type(sampler).__name__}), built for the whole dataset; lcv cannot apply "
            "it to a fold's samples. Give the DataLoader shuffle=True or shuffle=False instead."
        )
    n = len(loader.dataset)  # type: ignore[arg-type]  # map-style: not an IterableDataset (checked above)
    if isinstance(sampler, RandomSampler) and (sampler.replacement or sampler.num_samples != n):
        raise LcvError(
            f"{what} samples with replacement or a fixed num_samples (RandomSampler); a fold cannot keep that. Give "
            "the DataLoader shuffle=True instead."
        )
    params = inspect.signature(DataLoader.__init__).parameters
    settings = {name: getattr(loader, name) for name in params if name not in {"self", *_REBUILT}}
    settings["shuffle"] = isinstance(sampler, RandomSampler)
    return settings


def _attribute_column(dataset: Any, name: str) -> np.ndarray | None:
    """Return ``dataset.<name>`` per sample, looking through ``Subset`` and ``ConcatDataset``; ``None`` if absent."""
    values = getattr(dataset, name, None)
    if values is not None and not callable(values):
        array = values.numpy() if hasattr(values, "numpy") else np.asarray(values)
        if array.ndim >= 1 and len(array) == len(dataset):
            return array
    if isinstance(dataset, Subset):
        inner = _attribute_column(dataset.dataset, name)
        return None if inner is None else inner[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        parts = [_attribute_column(d, name) for d in dataset.datasets]
        return None if any(p is None for p in parts) else np.concatenate(parts)  # type: ignore[arg-type]  # no None left
    return None


def _second_element(sample: Any) -> Any:
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return sample[1]
    raise LcvError(f"the sample is a {type(sample).__name__}, not an (input, label, ...) tuple")


def dataset_column(spec: Any, dataset: Any, what: str) -> np.ndarray | None:
    """Return one value per sample of ``dataset`` (labels or groups) from ``spec``.

    ``spec`` may be an attribute name of the dataset (found through ``Subset`` and ``ConcatDataset``, as a
    ``random_split`` of a dataset with ``targets`` has them), a callable applied to every sample, or an array.

    Raises:
        LcvError: ``spec`` names no attribute, or gives a number of values other than the samples'.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        values = _attribute_column(dataset, spec)
        if values is None:
            raise LcvError(
                f"{what}='{spec}' names no attribute of {type(dataset).__name__} (nor of the datasets it wraps) with "
                f"one value per sample. To read {what}, {_LABEL_OPTIONS}."
            )
        return values
    return column(spec, Source(dataset, None), what)


def default_labels(dataset: Any, required: str | None) -> np.ndarray | None:
    """Return the dataset's labels when none were given: its ``targets``, else the second element of each sample.

    Samples are read only when ``required`` names the splitter that needs labels (reading every sample may load
    every image).

    Raises:
        LcvError: ``required`` and the samples have no second element (the message names the options).
    """
    targets = _attribute_column(dataset, "targets")  # torchvision's convention
    if targets is not None and targets.ndim == 1:
        return targets
    if required is None:
        return None
    try:
        return column(_second_element, Source(dataset, None), "labels")
    except (LcvError, IndexError, KeyError, TypeError) as exc:
        raise LcvError(
            f"{required} needs one label per sample, and lcv could not read it from the samples of "
            f"{type(dataset).__name__} ({exc}). To give them, {_LABEL_OPTIONS}."
        ) from exc


class LightningFolds(FoldAccess, LightningDataModule):
    """Cross-validation folds of any ``LightningDataModule``: its data, its loader settings, a splitter's folds.

    lcv calls the datamodule's ``prepare_data()`` and ``setup("fit")`` once, splits its training dataset
    (``train_dataloader().dataset``; with ``pool_validation=True`` its training and validation datasets
    together) with the splitter, and serves each fold through a loader with the settings of the datamodule's own
    loaders: batch size, ``collate_fn``, workers, ``pin_memory``, ``drop_last`` and ``shuffle`` of
    ``train_dataloader()`` for the training part; those of ``val_dataloader()`` (or the training ones, unshuffled)
    for the validation part. ``test_dataloader()`` and ``predict_dataloader()`` are the datamodule's.

    Fold loaders are [`ResumableDataLoader`][lcv_data.ResumableDataLoader]s: a resumed run serves the very batches
    the uninterrupted one would have. The datamodule's ``on_before_batch_transfer`` runs in the loaders, its
    ``on_after_batch_transfer`` on the device, as under ``lightning.Trainer``.

    Args:
        datamodule: Any ``LightningDataModule`` (or object with ``train_dataloader()``), unchanged.
        splitter: A splitter object or class, a name in ``lcv.splitters`` (``stratified_kfold``), or a dotted path.
        splitter_kwargs: Arguments for a splitter given by name or class.
        labels: Labels for stratified splitters: an attribute of the dataset (``"targets"``), a function of one
            sample, or an array (default: the dataset's ``targets``, else each sample's second element).
        groups: Group labels for group splitters, given like ``labels`` (no default).
        train_dataset: The datamodule's attribute holding the training dataset (default:
            ``train_dataloader().dataset``).
        val_dataset: The datamodule's attribute holding the validation dataset (default: ``val_dataloader().dataset``).
        pool_validation: Cross-validate over the training and validation datasets together.
        fold: The fold served by ``train_dataloader()``/``val_dataloader()`` (for a plain ``lightning.Trainer``).
        seed: Seed of the splitter (when it shuffles) and of each fold's shuffling.
        strict: Make a class found in a fold's validation part but not in its training part an error, not a warning.

    Raises:
        LcvError: Bad input, reported at ``setup()``: loaders that cannot be split, labels that cannot be read,
            a splitter that cannot split the data.

    Example:
        ```python
        folds = LightningFolds(MNISTDataModule(), "stratified_kfold", splitter_kwargs={"n_splits": 5}, labels="targets")
        result = CrossValidationTrainer(max_epochs=3).fit(LitClassifier, folds)
        ```
    """

    def __init__(
        self,
        datamodule: Any,
        splitter: Any = "stratified_kfold",
        *,
        splitter_kwargs: Mapping[str, Any] | None = None,
        labels: str | Callable[[Any], Any] | Any = None,
        groups: str | Callable[[Any], Any] | Any = None,
        train_dataset: str | None = None,
        val_dataset: str | None = None,
        pool_validation: bool = False,
        fold: int = 0,
        seed: int = 0,
        strict: bool = False,
    ) -> None:
        if not callable(getattr(datamodule, "train_dataloader", None)):
            raise LcvError(
                f"LightningFolds needs a LightningDataModule with train_dataloader(); got {type(datamodule).__name__}."
            )
        self.datamodule = datamodule
        super().__init__()
        self.splitter = make_splitter(splitter, dict(splitter_kwargs or {}), seed)
        self.label_spec = labels
        self.group_spec = groups
        self.train_dataset_attr = train_dataset
        self.val_dataset_attr = val_dataset
        self.pool_validation = pool_validation
        self.fold = fold
        self.seed = seed
        self.strict = strict
        self.folds: list[tuple[np.ndarray, np.ndarray]] | None = None
        """Each fold's ``(train indices, validation indices)`` into `dataset`, after ``setup()``."""
        self.dataset: Any = None
        """The dataset split into folds (the training dataset, or training + validation pooled), after ``setup()``."""
        self.n_train: int = 0
        """How many of `dataset`'s samples come from the training dataset (the rest: validation, pooled)."""
        self.labels: np.ndarray | None = None
        """The labels the splitter saw, if any."""
        self.groups: np.ndarray | None = None
        """The groups the splitter saw, if any."""
        self.train_settings: dict[str, Any] = {}
        """The ``DataLoader`` arguments of the datamodule's ``train_dataloader()``, kept for every fold."""
        self.val_settings: dict[str, Any] = {}
        """The ``DataLoader`` arguments for validation parts (``val_dataloader()``'s, or the training ones)."""
        self._prepared = False
        self._stages: set[str] = set()

    @classmethod
    def from_config(cls, config: DataConfig, seed: int = 0) -> LightningFolds:
        """Build the folds a config's ``data`` section describes: ``dataset`` names the LightningDataModule class.

        ```yaml
        data:
          datamodule: lightning
          dataset: {name: my_package.MNISTDataModule, cfg: {batch_size: 64}}
          splitter: {name: stratified_kfold, cfg: {n_splits: 5}}
          labels: targets
        ```

        Raises:
            ConfigError: No ``dataset``, a key this datamodule does not use, or a class that is no datamodule.
        """
        if config.dataset is None:
            raise ConfigError(
                "datamodule: lightning needs dataset: {name: <your LightningDataModule class, as a dotted path>, "
                "cfg: {<its __init__ arguments>}}.",
                "data.dataset",
            )
        if getattr(config, "outer", None) is not None:
            raise ConfigError(
                "data.outer (nested cross-validation, lcv tune --nested) needs datamodule: cross_val, which splits "
                "the outer folds itself; datamodule: lightning cannot keep an outer fold's test rows out yet.",
                "data.outer",
            )
        defaults = type(config)()
        given = {key for key in type(config).model_fields if getattr(config, key) != getattr(defaults, key)}
        unused = sorted(
            given
            & {
                "holdout",
                "test_dataset",
                "transforms",
                "target_transforms",
                "fitted_transforms",
                "batch_transforms",
                "dataloaders",
                "features",
                "target",
            }
        )
        if unused:
            raise ConfigError(
                f"data.{unused[0]} is not used with datamodule: lightning: your LightningDataModule's own loaders, "
                "transforms and test data are used as they are; set them in its __init__ arguments (data.dataset.cfg) "
                "and remove this key.",
                f"data.{unused[0]}",
            )
        datamodule = build("datamodule", config.dataset, "data.dataset")
        if not callable(getattr(datamodule, "train_dataloader", None)):
            raise ConfigError(
                f"data.dataset built a {type(datamodule).__name__}, which has no train_dataloader(); with datamodule: "
                "lightning, data.dataset names a LightningDataModule class.",
                "data.dataset.name",
            )
        return cls(
            datamodule,
            config.splitter.name,
            splitter_kwargs=config.splitter.cfg,
            labels=config.labels,
            groups=config.groups,
            pool_validation=config.pool_validation,
            fold=config.fold,
            seed=seed,
        )

    # ------------------------------------------------------------------------------------- the datamodule
    @property
    def trainer(self) -> Any:
        """The trainer serving batches; set on the wrapped datamodule too, whose hooks may read its flags."""
        return getattr(self.datamodule, "trainer", None)

    @trainer.setter
    def trainer(self, value: Any) -> None:
        if hasattr(self.datamodule, "trainer") or value is not None:
            self.datamodule.trainer = value

    def prepare_data(self) -> None:
        """Call the datamodule's ``prepare_data()`` (once)."""
        if not self._prepared and callable(getattr(self.datamodule, "prepare_data", None)):
            self.datamodule.prepare_data()
        self._prepared = True

    def _setup_stage(self, stage: str) -> None:
        if stage not in self._stages and callable(getattr(self.datamodule, "setup", None)):
            self.datamodule.setup(stage)
        self._stages.add(stage)

    def setup(self, stage: str | None = None) -> None:
        """Prepare and set up the datamodule for ``fit`` (once), read its datasets and loader settings, split.

        Later calls keep the folds.

        Raises:
            LcvError: A loader that cannot be split, labels that cannot be read, or data the splitter cannot split.
        """
        if self.folds is not None:
            return
        self.prepare_data()
        self._setup_stage("fit")
        dm = self.datamodule
        train_loader, val_loader = self._read_loaders()
        train = self._dataset("train", train_loader)
        if self.pool_validation:
            if val_loader is None and self.val_dataset_attr is None:
                raise LcvError(
                    f"pool_validation=True needs the validation data, but {type(dm).__name__} has no "
                    "val_dataloader(); give val_dataset='<attribute of the datamodule>' or leave pool_validation off."
                )
            self.dataset = ConcatDataset([train, self._dataset("val", val_loader)])
        else:
            self.dataset = train
        self.n_train = len(train)
        n = len(self.dataset)
        if n == 0:
            raise LcvError(f"{type(dm).__name__}'s training dataset is empty: cross-validation needs samples to split.")
        name = type(self.splitter).__name__
        self.labels = dataset_column(self.label_spec, self.dataset, "labels")
        if self.labels is None:
            self.labels = default_labels(self.dataset, name if "Stratified" in name else None)
        self.groups = dataset_column(self.group_spec, self.dataset, "groups")
        folds = split_pool(self.splitter, np.arange(n, dtype=np.int64), self.labels, self.groups)
        message = None if self.labels is None else unseen_classes_message(self.labels, folds)
        if message is not None and self.strict:
            raise LcvError(message)
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=2)
        self.folds = folds

    def _read_loaders(self) -> tuple[Any, Any]:
        """Ask the datamodule for its loaders; keep their settings; return them (the validation one may be ``None``)."""
        dm = self.datamodule
        train_loader = dm.train_dataloader()
        self.train_settings = loader_settings(train_loader, f"{type(dm).__name__}.train_dataloader()")
        val_loader = dm.val_dataloader() if _overrides(dm, "val_dataloader") else None
        if isinstance(val_loader, (list, tuple)) and not val_loader:
            val_loader = None  # Lightning's way of saying "no validation data"
        if val_loader is not None:
            self.val_settings = loader_settings(val_loader, f"{type(dm).__name__}.val_dataloader()")
        else:
            self.val_settings = dict(self.train_settings)
        # Every validation sample, in index order: out-of-fold predictions rely on it.
        self.val_settings.update(shuffle=False, drop_last=False)
        return train_loader, val_loader

    def _dataset(self, split: str, loader: Any) -> Any:
        attr = self.train_dataset_attr if split == "train" else self.val_dataset_attr
        if attr is None:
            return loader.dataset
        dataset = getattr(self.datamodule, attr, None)
        if dataset is None:
            raise LcvError(
                f"{split}_dataset='{attr}' names no attribute of {type(self.datamodule).__name__} after its "
                "setup('fit'); name the attribute its setup() assigns the dataset to (e.g. 'mnist_train')."
            )
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise LcvError(
                f"{type(self.datamodule).__name__}.{attr} is a {type(dataset).__name__}, not a map-style dataset; "
                "folds need __len__ and __getitem__."
            )
        return dataset

    @property
    def n_samples(self) -> int | None:
        """The number of samples split into folds (``None`` before ``setup()``)."""
        return None if self.dataset is None else len(self.dataset)

    # ------------------------------------------------------------------------------------- loaders
    def _loader(self, fold: int, split: str, indices: np.ndarray) -> SplitLoader:
        settings = dict(self.train_settings if split == "train" else self.val_settings)
        if settings["shuffle"]:
            settings["generator"] = torch.Generator().manual_seed(self.seed * 1000 + fold)
        loader = ResumableDataLoader(Subset(self.dataset, indices.tolist()), **settings)
        before = [self._before_transfer] if _overrides(self.datamodule, "on_before_batch_transfer") else []
        return SplitLoader(loader, split, fold, before)

    def _before_transfer(self, batch: Any) -> Any:
        return self.datamodule.on_before_batch_transfer(batch, 0)

    @property
    def batch_size(self) -> Any:
        """The datamodule's ``batch_size`` attribute, when it has one (``AttributeError`` otherwise).

        Setting it sets the datamodule's: the next loaders ask its ``train_dataloader()`` for their settings again,
        so lcv-core's ``scale_batch_size`` (which sets ``datamodule.batch_size``, as Lightning's does) works.
        """
        return self.datamodule.batch_size

    @batch_size.setter
    def batch_size(self, value: Any) -> None:
        self.datamodule.batch_size = value

    def train_val_dataloaders(self) -> list[tuple[SplitLoader, SplitLoader]]:
        """Return ``(train_loader, val_loader)`` per fold; the same folds on every call.

        The datamodule's loaders are asked for their settings again on every call (a changed ``batch_size`` counts).
        """
        if self.folds is not None:
            self._read_loaders()
        self.setup("fit")
        assert self.folds is not None
        return [(self._loader(i, "train", tr), self._loader(i, "val", va)) for i, (tr, va) in enumerate(self.folds)]

    def test_dataloader(self, fold: int | None = None) -> Any:
        """Return the datamodule's ``test_dataloader()`` (after its ``setup("test")``), the same for every fold.

        Raises:
            LcvError: The datamodule has no ``test_dataloader()``.
        """
        return self._held_out("test")

    def predict_dataloader(self, fold: int | None = None) -> Any:
        """Return the datamodule's ``predict_dataloader()`` (after ``setup("predict")``), else its test loader.

        Raises:
            LcvError: The datamodule has neither.
        """
        if _overrides(self.datamodule, "predict_dataloader"):
            self.prepare_data()
            self._setup_stage("predict")
            return self.datamodule.predict_dataloader()
        return self._held_out("predict")

    def _held_out(self, what: str) -> Any:
        if not _overrides(self.datamodule, "test_dataloader"):
            raise LcvError(
                f"No {what} data: {type(self.datamodule).__name__} has no test_dataloader()"
                f"{' or predict_dataloader()' if what == 'predict' else ''}; define it in the datamodule."
            )
        self.prepare_data()
        self._setup_stage("test")
        return self.datamodule.test_dataloader()

    # ------------------------------------------------------------------------------------- device hooks
    @property
    def has_device_transforms(self) -> bool:
        """Whether the datamodule transforms batches on the device (its own ``on_after_batch_transfer``)."""
        return _overrides(self.datamodule, "on_after_batch_transfer")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Call the datamodule's ``on_after_batch_transfer`` (Lightning's hook, on the device)."""
        return self.datamodule.on_after_batch_transfer(batch, dataloader_idx)

    # ------------------------------------------------------------------------------------- saving
    def save_folds(self, path: str | Path) -> None:
        """Write the folds as JSON (splitter, every fold's train/validation indices into `dataset`)."""
        self.setup("fit")
        assert self.folds is not None
        write_folds(path, self.splitter, len(self.dataset), self.folds, None)

    def load_folds(self, path: str | Path) -> None:
        """Restore folds written by `save_folds()` (a resumed run serves the very same folds).

        Raises:
            LcvError: The file was written for a dataset of another size, or an index is out of range.
        """
        saved = self.folds
        self.folds = None
        try:
            self.setup("fit")  # reads the datasets and loader settings (the split itself is replaced below)
        except LcvError:
            self.folds = saved
            raise
        folds, _ = read_folds(path, len(self.dataset))
        self.folds = folds
