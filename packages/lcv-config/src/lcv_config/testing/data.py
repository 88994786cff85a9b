"""The conformance suites of fold data sources, datamodules (``lcv.datamodules``) and datasets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcv_config.protocols import FoldDataSource
from lcv_config.testing._helpers import missing_members
from lcv_config.testing.assertions import assert_close, assert_no_overlap, plain


class FoldDataSourceContract:
    """What every fold data source (datamodule) must do: the same non-empty folds on every call."""

    def make_source(self) -> Any:
        """Return the data source under test."""
        raise NotImplementedError

    @staticmethod
    def _sizes(loader: Any) -> int:
        return sum(1 for _ in loader)

    def test_is_a_fold_data_source(self) -> None:
        """The object satisfies the [`FoldDataSource`][lcv_config.FoldDataSource] protocol."""
        source = self.make_source()
        assert isinstance(source, FoldDataSource), (
            f"{type(source).__name__} lacks {missing_members(source, FoldDataSource)}"
        )

    def test_at_least_two_non_empty_folds(self) -> None:
        """Cross-validation needs two folds or more, each with training and validation batches."""
        folds = list(self.make_source().train_val_dataloaders())
        assert len(folds) >= 2, f"got {len(folds)} fold(s)"
        for i, (train, val) in enumerate(folds):
            assert self._sizes(train) > 0, f"fold {i} has no training batches"
            assert self._sizes(val) > 0, f"fold {i} has no validation batches"

    def test_same_folds_on_every_call(self) -> None:
        """A second call serves the same number of folds and batches (folds are computed once)."""
        source = self.make_source()
        first = [(self._sizes(t), self._sizes(v)) for t, v in source.train_val_dataloaders()]
        second = [(self._sizes(t), self._sizes(v)) for t, v in source.train_val_dataloaders()]
        assert first == second, f"(train, val) batches per fold: first call {first}, second call {second}"

    def test_loaders_can_be_iterated_every_epoch(self) -> None:
        """Each loader serves the same number of batches on every pass (one pass per epoch)."""
        for i, (train, val) in enumerate(self.make_source().train_val_dataloaders()):
            for name, loader in (("training", train), ("validation", val)):
                passes = [self._sizes(loader), self._sizes(loader)]
                assert passes[0] == passes[1], (
                    f"fold {i}: the {name} loader served {passes[0]} then {passes[1]} batches"
                )


class DataModuleContract(FoldDataSourceContract):
    """What a datamodule plugin (``lcv.datamodules``, ``data.datamodule``) must do, beyond a fold data source.

    lcv builds it as ``Plugin.from_config(config.data, seed=config.seed)``, then calls ``setup("fit")`` if present,
    ``train_val_dataloaders()`` and, when present, ``folds`` (each fold's ``(train_indices, val_indices)``),
    ``save_folds(path)`` and ``load_folds(path)``. Implement `make_source()`; implement `make_config()` (a
    [`DataConfig`][lcv_config.DataConfig] or a mapping of one) and set ``datamodule_class`` to check
    ``from_config`` too.
    """

    datamodule_class: Any = None
    """The class registered in ``lcv.datamodules``; with `make_config()` checks ``from_config``."""

    def make_config(self) -> Any:
        """Return a ``data`` section this datamodule builds from; ``None`` skips the ``from_config`` check."""
        return None

    def _ready(self) -> Any:
        source = self.make_source()
        if callable(getattr(source, "setup", None)):
            source.setup("fit")
        return source

    def test_from_config_builds_a_fold_data_source(self) -> None:
        """``from_config(data_config, seed=0)`` returns a fold data source with two folds or more."""
        config = self.make_config()
        if config is None or self.datamodule_class is None:
            return
        from lcv_config.schema import DataConfig

        if not isinstance(config, DataConfig):
            config = DataConfig.model_validate(config)
        built = self.datamodule_class.from_config(config, seed=0)
        assert isinstance(built, FoldDataSource), f"from_config returned {type(built).__name__}, not a data source"
        assert len(list(built.train_val_dataloaders())) >= 2

    def test_folds_match_the_loaders(self) -> None:
        """``folds``, when present, has one disjoint (train, validation) pair per loader pair."""
        source = self._ready()
        folds = getattr(source, "folds", None)
        if folds is None or callable(folds):
            return
        loaders = list(source.train_val_dataloaders())
        assert len(folds) == len(loaders), f"{len(folds)} folds but {len(loaders)} loader pairs"
        assert_no_overlap(folds)

    def test_setup_twice_keeps_the_folds(self) -> None:
        """A second ``setup("fit")`` (Lightning calls it per stage) serves the same folds."""
        source = self._ready()
        folds = getattr(source, "folds", None)
        if folds is None or callable(folds) or not callable(getattr(source, "setup", None)):
            return
        before = plain(folds)
        source.setup("fit")
        assert_close(source.folds, before, "folds after a second setup")

    def test_saved_folds_load_into_a_fresh_datamodule(self, tmp_path: Path) -> None:
        """``save_folds``/``load_folds``, when present, give a fresh datamodule the very same folds (resume, tune)."""
        source = self._ready()
        if not (callable(getattr(source, "save_folds", None)) and callable(getattr(source, "load_folds", None))):
            return
        path = tmp_path / "folds.json"
        source.save_folds(path)
        fresh = self.make_source()
        fresh.load_folds(path)
        assert_close(fresh.folds, source.folds, "folds loaded from save_folds")


class DatasetContract:
    """What a dataset source (``lcv.datamodules``, used as ``data.dataset``) must return: a map-style dataset.

    lcv builds it as ``source(**cfg)`` and indexes it: ``len(dataset)`` and ``dataset[i]`` for ``0 <= i < len``,
    each sample an ``(input, target)`` tuple or a dict. Implement `make_dataset()`.
    """

    def make_dataset(self) -> Any:
        """Return the dataset the source builds."""
        raise NotImplementedError

    def test_has_samples(self) -> None:
        """The dataset has a length of two samples or more."""
        dataset = self.make_dataset()
        assert hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"), "not a map-style dataset"
        assert len(dataset) >= 2, f"{len(dataset)} sample(s)"

    def test_every_index_reads_the_same_twice(self) -> None:
        """The first and last samples can be read, twice with the same result, and all have one shape."""
        dataset = self.make_dataset()
        first, last = dataset[0], dataset[len(dataset) - 1]
        assert_close(dataset[0], first, "sample 0 read twice")
        assert isinstance(first, tuple | list | Mapping), f"a sample is a {type(first).__name__}: use a tuple or dict"
        keys = list(first) if isinstance(first, Mapping) else len(first)
        assert keys == (list(last) if isinstance(last, Mapping) else len(last)), "samples differ in structure"
