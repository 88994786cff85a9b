"""Adapters: a NeuroMANCER-style ``data_setup_function`` becomes a cross-validation datamodule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from lcv_config import ConfigError, DataConfig, LcvError, resolve
from lcv_config.registry import split_component
from lcv_data.datamodule import CrossValDataModule
from lcv_data.sources import DictTensorDataset


def _pool(train: Any, dev: Any) -> tuple[Any, int, int]:
    """Return one dataset holding ``train`` then ``dev``, and their sizes."""
    if isinstance(train, Mapping) and isinstance(dev, Mapping):
        if set(train) != set(dev):
            raise LcvError(f"train and dev datasets have different keys: {sorted(train)} vs {sorted(dev)}.")
        pooled = {k: torch.cat([torch.as_tensor(train[k]), torch.as_tensor(dev[k])]) for k in train}
        n_train = len(torch.as_tensor(next(iter(train.values()))))
        return DictTensorDataset(pooled), n_train, len(pooled[next(iter(pooled))]) - n_train
    datasets = [DictTensorDataset(d) if isinstance(d, Mapping) else d for d in (train, dev)]
    return ConcatDataset(datasets), len(datasets[0]), len(datasets[1])


def from_setup_function(
    fn: Callable[..., Any], splitter: Any = None, *, splitter_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
) -> CrossValDataModule:
    """Build a datamodule from a function returning ``(train, dev, test, batch_size)``.

    ``train``, ``dev`` and ``test`` may be dicts of tensors (``{"X": ..., "Y": ...}``) or torch datasets
    of dict samples. Without a splitter, ``dev`` is the one validation fold: train it with
    ``CrossValidationTrainer.fit_holdout(model, datamodule)`` (``fit`` cross-validates and needs at least two
    folds) or a plain ``lightning.Trainer``. With a splitter, ``train`` and ``dev`` are pooled and split into folds.
    ``test`` (may be ``None``) becomes the test data.

    Args:
        fn: The setup function.
        splitter: A splitter (name, class or object) to cross-validate over train + dev, or ``None``.
        splitter_kwargs: The splitter's arguments.
        **kwargs: Passed to ``fn``, except those ``CrossValDataModule`` takes (``fitted_transforms``, ``seed``...).

    Raises:
        LcvError: ``fn`` does not return four values, or train and dev differ in shape.
    """
    module_keys = set(CrossValDataModule.__init__.__code__.co_varnames) - {"self", "dataset", "splitter"}
    dm_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in module_keys}
    result = fn(**kwargs)
    if not (isinstance(result, (tuple, list)) and len(result) == 4):
        raise LcvError(
            f"{getattr(fn, '__name__', fn)} must return (train, dev, test, batch_size); "
            f"got {type(result).__name__} of {len(result) if hasattr(result, '__len__') else 'no'} items."
        )
    train, dev, test, batch_size = result
    dataset, n_train, n_dev = _pool(train, dev)
    # The function's batch size is the default; dataloader settings given here override it per split.
    given = dict(dm_kwargs.pop("dataloaders", None) or {})
    loaders = {**given, "default": {"batch_size": int(batch_size), **dict(given.get("default") or {})}}
    if splitter is None:
        from sklearn.model_selection import PredefinedSplit

        test_fold = np.concatenate([np.full(n_train, -1), np.zeros(n_dev, dtype=np.int64)])
        splitter, splitter_kwargs = PredefinedSplit(test_fold), None
    return CrossValDataModule(
        dataset,
        splitter=splitter,
        splitter_kwargs=splitter_kwargs,
        test_dataset=test,
        dataloaders=loaders,
        **dm_kwargs,
    )


class SetupFunctionDataModule(CrossValDataModule):
    """The ``setup_function`` datamodule plugin: ``data.dataset`` names the setup function, its ``cfg`` the kwargs.

    With ``data.datamodule: setup_function``, ``data.splitter`` splits train + dev pooled.
    """

    @classmethod
    def from_config(cls, config: DataConfig, seed: int = 0) -> CrossValDataModule:
        """Call the setup function that ``config.dataset`` names and build its datamodule."""
        if config.dataset is None:
            raise ConfigError("The data section needs dataset: {name: <setup function>, cfg: {...}}.", "data.dataset")
        if getattr(config, "outer", None) is not None:
            raise ConfigError(
                "data.outer (nested cross-validation, lcv tune --nested) needs datamodule: cross_val; with "
                "datamodule: setup_function, return the whole dataset from a dataset function and use cross_val.",
                "data.outer",
            )
        name, cfg = split_component(config.dataset, "data.dataset")
        fn = resolve("dataset", name, "data.dataset.name")
        # What differs from the schema's defaults counts as given (a tuning trial's config has every key written).
        defaults = type(config)()
        given = {key for key in type(config).model_fields if getattr(config, key) != getattr(defaults, key)}
        unused = sorted(given & {"test_dataset", "labels", "groups", "features", "target", "pool_validation"})
        if unused:
            raise ConfigError(
                f"data.{unused[0]} is not used with datamodule: setup_function: the setup function returns the "
                "datasets (train, dev, test) and the batch size; remove it.",
                f"data.{unused[0]}",
            )
        passed = {key: getattr(config, key) for key in ("dataloaders", "batch_transforms", "holdout") if key in given}
        return from_setup_function(
            fn,
            config.splitter.name,
            splitter_kwargs=config.splitter.cfg,
            transforms=config.transforms,
            target_transforms=config.target_transforms,
            fitted_transforms=config.fitted_transforms,
            seed=seed,
            **passed,
            **cfg,
        )
