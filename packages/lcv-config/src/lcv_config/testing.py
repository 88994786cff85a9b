"""Conformance suites that every plugin, ours or a third party's, runs in its own tests.

One suite per plugin kind: [`SplitterContract`][lcv_config.testing.SplitterContract],
[`FoldDataSourceContract`][lcv_config.testing.FoldDataSourceContract] and
[`DataModuleContract`][lcv_config.testing.DataModuleContract], [`DatasetContract`][lcv_config.testing.DatasetContract],
[`TransformContract`][lcv_config.testing.TransformContract],
[`FittedTransformContract`][lcv_config.testing.FittedTransformContract],
[`ModelContract`][lcv_config.testing.ModelContract], [`LearnerContract`][lcv_config.testing.LearnerContract],
[`CallbackContract`][lcv_config.testing.CallbackContract], [`LoggerContract`][lcv_config.testing.LoggerContract],
[`TunerContract`][lcv_config.testing.TunerContract] and [`CommandContract`][lcv_config.testing.CommandContract].
They import no torch themselves: tensors are handled through their methods.

Subclass a contract in a pytest test module and implement its ``make_*`` method; pytest collects
the inherited ``test_*`` methods (name the subclass ``Test...``)::

    from lcv_config.testing import SplitterContract

    class TestMySplitter(SplitterContract):
        def make_splitter(self):
            return MySplitter(n_splits=4)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lcv_config.errors import did_you_mean
from lcv_config.protocols import (
    Command,
    FittedTransform,
    FoldDataSource,
    Logger,
    Splitter,
    Transform,
    Trial,
    TrialPruned,
    Tuner,
)


class SplitterContract:
    """What every splitter plugin must do: disjoint train/validation indices within range."""

    n_samples: int = 60
    partitions: bool = True
    """Whether the validation folds together cover every sample exactly once (k-fold-like splitters)."""

    def make_splitter(self) -> Any:
        """Return the splitter under test."""
        raise NotImplementedError

    def make_data(self) -> tuple[Any, Any, Any]:
        """Return ``(X, y, groups)`` to split: balanced labels and 6 groups by default."""
        n = self.n_samples
        X = [[float(i)] for i in range(n)]
        y = [i % 3 for i in range(n)]
        groups = [i % 6 for i in range(n)]
        return X, y, groups

    def _folds(self) -> list[tuple[list[int], list[int]]]:
        X, y, groups = self.make_data()
        return [(list(map(int, tr)), list(map(int, va))) for tr, va in self.make_splitter().split(X, y, groups)]

    def test_is_a_splitter(self) -> None:
        """The object satisfies the [`Splitter`][lcv_config.Splitter] protocol."""
        splitter = self.make_splitter()
        assert isinstance(splitter, Splitter), f"{type(splitter).__name__} lacks {_missing(splitter, Splitter)}"

    def test_no_index_in_train_and_validation(self) -> None:
        """No sample is in both the training and the validation part of a fold."""
        for i, (train, val) in enumerate(self._folds()):
            both = set(train) & set(val)
            assert not both, f"fold {i}: indices {sorted(both)[:10]} are in train and validation"
            assert val, f"fold {i} has an empty validation part"

    def test_indices_in_range(self) -> None:
        """Every index refers to a sample."""
        n = len(self.make_data()[0])
        for k, (train, val) in enumerate(self._folds()):
            outside = sorted(i for i in (*train, *val) if not 0 <= i < n)
            assert not outside, f"fold {k}: indices {outside[:10]} are outside 0..{n - 1}"

    def test_get_n_splits_matches_split(self) -> None:
        """``get_n_splits`` announces as many folds as ``split`` yields."""
        X, y, groups = self.make_data()
        announced, yielded = self.make_splitter().get_n_splits(X, y, groups), len(self._folds())
        assert announced == yielded, f"get_n_splits says {announced}, split yields {yielded} folds"

    def test_validation_folds_cover_every_sample_once(self) -> None:
        """For partitioning splitters, the validation parts cover every sample exactly once."""
        if not self.partitions:
            return
        seen: list[int] = [i for _, val in self._folds() for i in val]
        n = len(self.make_data()[0])
        twice = sorted({i for i in seen if seen.count(i) > 1})
        never = sorted(set(range(n)) - set(seen))
        assert not twice and not never, f"validated twice: {twice[:10]}, never validated: {never[:10]}"

    def test_same_folds_twice(self) -> None:
        """Splitting the same data twice gives the same folds (seeded splitters are frozen)."""
        assert self._folds() == self._folds(), "two calls of split gave different folds"


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
        assert isinstance(source, FoldDataSource), f"{type(source).__name__} lacks {_missing(source, FoldDataSource)}"

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


class TunerContract:
    """What every tuner backend must do, checked on a cheap quadratic objective.

    The objective minimises ``(x - 2)^2`` over ``x`` in ``[-5, 5]`` with a categorical ``c``.
    """

    space: dict[str, Any] = {
        "x": {"type": "float", "low": -5.0, "high": 5.0},
        "c": {"type": "categorical", "choices": ["a", "b"]},
    }
    tuner_class: Any = None
    """The backend class as registered in ``lcv.tuners``; set it, or override `make_tuner()`."""

    @staticmethod
    def lcv_arguments(space: dict[str, Any], direction: str, workdir: Path) -> dict[str, Any]:
        """Return the keyword arguments ``lcv tune`` constructs a backend with (no study, storage, sampler, pruner)."""
        return {
            "space": space,
            "direction": direction,
            "study": None,
            "storage": None,
            "workdir": workdir,
            "sampler": None,
            "pruner": None,
            "seed": 0,
        }

    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Tuner:
        """Return a tuner over ``space`` with a fresh study in ``workdir``: ``tuner_class(**lcv_arguments(...))``."""
        if self.tuner_class is None:
            raise NotImplementedError("set tuner_class to the backend class, or override make_tuner")
        tuner: Tuner = self.tuner_class(**self.lcv_arguments(space, direction, workdir))
        return tuner

    def test_accepts_the_arguments_lcv_constructs_it_with(self, tmp_path: Path) -> None:
        """The backend's class takes the keywords ``lcv tune`` passes (see [`Tuner`][lcv_config.Tuner])."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        arguments = self.lcv_arguments(self.space, "minimize", tmp_path)
        try:
            inspect.signature(type(tuner)).bind(**arguments)
        except TypeError as exc:
            raise AssertionError(
                f"lcv constructs a tuner as {type(tuner).__name__}({', '.join(f'{k}=...' for k in arguments)}); "
                f"its signature refuses that: {exc}"
            ) from None

    @staticmethod
    def _objective(seen: list[Trial], finished: list[float] | None = None, prune_first: bool = False) -> Any:
        def objective(trial: Trial) -> float:
            seen.append(trial)
            x = float(trial.params["x"])
            assert trial.params["c"] in ("a", "b")
            if prune_first and len(seen) == 1:
                raise TrialPruned()
            for step in range(3):
                trial.report((x - 2.0) ** 2 + 1.0 / (step + 1), step)
                if trial.should_prune():
                    raise TrialPruned()
            trial.set_user_attr("fold_scores", [(x - 2.0) ** 2] * 2)
            if finished is not None:
                finished.append((x - 2.0) ** 2)
            return (x - 2.0) ** 2

        return objective

    def test_runs_the_requested_trials_with_parameters_in_bounds(self, tmp_path: Path) -> None:
        """``optimize`` runs ``n_trials`` trials; each trial's parameters lie in the space."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        tuner.optimize(self._objective(seen), n_trials=6)
        assert len(seen) == 6, f"asked for 6 trials, the objective ran {len(seen)} times"
        assert all(-5.0 <= float(t.params["x"]) <= 5.0 for t in seen), [t.params["x"] for t in seen]
        assert len({t.number for t in seen}) == 6, "trial numbers must be unique"

    def test_best_is_the_best_finished_trial(self, tmp_path: Path) -> None:
        """``best_value`` is the lowest value returned (minimize) and ``best_params`` produced it."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished), n_trials=5)
        best_x = float(tuner.best_params["x"])
        assert abs(tuner.best_value - (best_x - 2.0) ** 2) < 1e-9, "best_params did not produce best_value"
        assert finished, "no trial finished"
        assert abs(tuner.best_value - min(finished)) < 1e-9, f"best_value {tuner.best_value}, values {finished}"

    def test_maximize(self, tmp_path: Path) -> None:
        """With ``direction='maximize'`` the best trial has the highest value."""
        tuner = self.make_tuner(self.space, "maximize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished), n_trials=5)
        assert finished, "no trial finished"
        assert abs(tuner.best_value - max(finished)) < 1e-9, f"best_value {tuner.best_value}, values {finished}"

    def test_a_pruned_trial_does_not_stop_the_study(self, tmp_path: Path) -> None:
        """A [`TrialPruned`][lcv_config.TrialPruned] raised by the objective ends that trial only."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        finished: list[float] = []
        tuner.optimize(self._objective(seen, finished, prune_first=True), n_trials=4)
        assert len(seen) == 4, f"the study stopped after the pruned trial: {len(seen)} of 4 trials ran"
        if finished:  # the backend's own pruner may have stopped the others too
            best = tuner.best_value
            assert abs(best - min(finished)) < 1e-9, f"best_value {best}, finished values {finished}"

    def test_trial_is_a_trial(self, tmp_path: Path) -> None:
        """The object given to the objective satisfies the [`Trial`][lcv_config.Trial] protocol."""
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        seen: list[Trial] = []
        tuner.optimize(self._objective(seen), n_trials=1)
        assert isinstance(seen[0], Trial)

    def test_is_a_tuner(self, tmp_path: Path) -> None:
        """The backend has every member of the [`Tuner`][lcv_config.Tuner] protocol.

        Checked statically: ``best_value`` may rightly raise before any trial finished.
        """
        tuner = self.make_tuner(self.space, "minimize", tmp_path)
        missing = _missing(tuner, Tuner)
        assert not missing, f"{type(tuner).__name__} lacks {missing}"


# --- helpers for values of any array library -------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Return ``value`` as nested lists and Python scalars (tensors and arrays through ``tolist()``)."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def assert_close(actual: Any, expected: Any, what: str, rel: float = 1e-5, abs_: float = 1e-6) -> None:
    """Assert two values (tensors, arrays, nested lists, scalars) are equal up to a float tolerance."""
    a, e = plain(actual), plain(expected)

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, list) and isinstance(y, list):
            assert len(x) == len(y), f"{what}: length {len(x)} != {len(y)}{where}"
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                walk(xi, yi, f"{where}[{i}]")
        elif isinstance(x, dict) and isinstance(y, dict):
            assert x.keys() == y.keys(), f"{what}: keys {sorted(x)} != {sorted(y)}{where}"
            for k in x:
                walk(x[k], y[k], f"{where}[{k!r}]")
        elif (
            isinstance(x, int | float) and isinstance(y, int | float) and (isinstance(x, float) or isinstance(y, float))
        ):
            assert math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_) or (
                math.isnan(float(x)) and math.isnan(float(y))
            ), f"{what}: {x} != {y}{' at ' + where if where else ''}"
        else:
            assert x == y, f"{what}: {x!r} != {y!r}{' at ' + where if where else ''}"

    walk(a, e, "")


def _plain_data(value: Any, where: str = "state") -> list[str]:
    """Return where ``value`` holds something ``torch.load(weights_only=True)`` refuses (tensors are fine)."""
    if value is None or isinstance(value, bool | int | float | str):
        return []
    if type(value).__module__.split(".")[0] == "torch":
        return []
    if isinstance(value, dict):
        bad = [f"{where}: key {k!r}" for k in value if not isinstance(k, str | int)]
        return bad + [b for k, v in value.items() for b in _plain_data(v, f"{where}[{k!r}]")]
    if isinstance(value, list | tuple):
        return [b for i, v in enumerate(value) for b in _plain_data(v, f"{where}[{i}]")]
    return [f"{where}: {type(value).__module__}.{type(value).__qualname__}"]


def _first(batch: Any, n: int = 1) -> Any:
    return batch[:n]


# --- transforms ------------------------------------------------------------------------------------------------


class TransformContract:
    """What every plain (per-sample) transform must do: deterministic, input left untouched, picklable.

    Implement `make_transform()` and `make_input()` (one sample, as the transform receives it).
    """

    def make_transform(self) -> Any:
        """Return the transform under test."""
        raise NotImplementedError

    def make_input(self) -> Any:
        """Return one sample to transform (a tensor, an array, an image...)."""
        raise NotImplementedError

    def test_is_a_transform(self) -> None:
        """The object is callable ([`Transform`][lcv_config.Transform])."""
        transform = self.make_transform()
        assert isinstance(transform, Transform), f"{type(transform).__name__} is not callable"

    def test_same_input_same_output(self) -> None:
        """Two calls on the same sample give the same result (random augmentations: set ``deterministic = False``)."""
        if not getattr(self, "deterministic", True):
            return
        transform, x = self.make_transform(), self.make_input()
        assert_close(transform(x), transform(x), "two calls on the same sample")

    def test_leaves_its_input_unchanged(self) -> None:
        """The transform returns a new value; the sample it was given (the dataset's) is not modified in place."""
        transform, x = self.make_transform(), self.make_input()
        before = plain(x)
        transform(x)
        assert_close(x, before, "the input after the call (modified in place)")

    def test_can_be_pickled(self) -> None:
        """DataLoader worker processes receive the transform pickled."""
        transform = self.make_transform()
        try:
            clone = pickle.loads(pickle.dumps(transform))
        except Exception as exc:  # noqa: BLE001  # any pickling failure is the finding
            raise AssertionError(f"{type(transform).__name__} cannot be pickled: {type(exc).__name__}: {exc}") from exc
        if getattr(self, "deterministic", True):
            x = self.make_input()
            assert_close(clone(x), transform(x), "the unpickled transform's output")


class FittedTransformContract:
    """What every fitted transform must do, as lcv calls it (see [`FittedTransform`][lcv_config.FittedTransform]).

    Implement `make_transform()` and `make_data()` (training data: samples along dimension 0, as a tensor or
    array). `make_other_data()` defaults to ``data * 3 + 1``; override it when that does not apply.
    """

    def make_transform(self) -> Any:
        """Return an unfitted transform."""
        raise NotImplementedError

    def make_data(self) -> Any:
        """Return training data: samples along dimension 0 (at least 4 samples)."""
        raise NotImplementedError

    def make_other_data(self) -> Any:
        """Return another fold's training data: it must fit a different state, which can transform ``make_data()``."""
        return self.make_data() * 3 + 1

    def _fitted(self, data: Any = None) -> Any:
        transform = copy.deepcopy(self.make_transform())
        transform.fit(self.make_data() if data is None else data)
        return transform

    def test_is_a_fitted_transform(self) -> None:
        """The object has ``fit``, ``transform``, ``state_dict`` and ``load_state_dict``."""
        transform = self.make_transform()
        missing = _missing(transform, FittedTransform)
        assert not missing, f"{type(transform).__name__} lacks {missing}: lcv calls them (see FittedTransform)"
        on = getattr(transform, "on", "input")
        assert on in ("input", "target"), f"'on' is {on!r}; lcv accepts 'input' or 'target'"

    def test_keeps_the_batch_dimension(self) -> None:
        """``transform`` of a batch of n samples returns n samples."""
        data = self.make_data()
        out = self._fitted().transform(data)
        assert len(out) == len(data), f"a batch of {len(data)} samples became {len(out)}"

    def test_a_sample_does_not_depend_on_its_batch(self) -> None:
        """A sample transformed alone (a batch of one, as lcv does per sample) equals it transformed in a batch."""
        data, transform = self.make_data(), self._fitted()
        whole = plain(transform.transform(data))
        for i in (0, len(data) - 1):
            alone = plain(transform.transform(data[i : i + 1]))[0]
            assert_close(alone, whole[i], f"sample {i} alone vs in its batch (batch statistics at transform time?)")

    def test_transform_does_not_refit(self) -> None:
        """Transforming another batch (half of the training data, as a validation batch) leaves the state as it was."""
        transform = self._fitted()
        before = json.loads(json.dumps(transform.state_dict()))
        data = self.make_data()
        transform.transform(data[: len(data) // 2])
        assert_close(transform.state_dict(), before, "the state after transforming validation data")

    def test_each_copy_fits_its_own_state(self) -> None:
        """Fitting one deep copy (lcv copies the transform per fold) leaves another unchanged: no shared state."""
        original = self.make_transform()
        fold_0, fold_1 = copy.deepcopy(original), copy.deepcopy(original)
        fold_0.fit(self.make_data())
        x = self.make_data()
        expected = plain(fold_0.transform(x))
        fold_1.fit(self.make_other_data())
        assert_close(fold_0.transform(x), expected, "fold 0's output after fold 1 was fitted")
        assert plain(fold_1.transform(x)) != expected, "fitting on other data gave the same state: is it fitted?"

    def test_state_survives_json_and_a_fresh_copy(self) -> None:
        """``state_dict()`` is JSON-serialisable; a fresh copy loaded with it transforms exactly as the fitted one."""
        transform = self._fitted()
        state = transform.state_dict()
        try:
            text = json.dumps(state)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"state_dict() is not JSON-serialisable ({exc}); lcv writes it to JSON") from None
        fresh = copy.deepcopy(self.make_transform())
        fresh.load_state_dict(json.loads(text))
        x = self.make_data()
        assert_close(fresh.transform(x), transform.transform(x), "output after load_state_dict")


# --- datamodules and datasets ----------------------------------------------------------------------------------


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


# --- networks and learners (torch objects, checked without importing torch) ------------------------------------


def _parameters(module: Any) -> list[Any]:
    return list(module.parameters())


def _eval(module: Any) -> Any:
    if callable(getattr(module, "eval", None)):
        module.eval()
    return module


class ModelContract:
    """What a network (``lcv.models``, a config's ``model``) must do: a ``torch.nn.Module`` built per fold.

    lcv builds one per fold as ``Model(**cfg)`` and hands it to the learner. Implement `make_model()` and
    `make_input()` (a batch the network takes, samples along dimension 0).
    """

    def make_model(self) -> Any:
        """Return a new network."""
        raise NotImplementedError

    def make_input(self) -> Any:
        """Return a batch of inputs (samples along dimension 0)."""
        raise NotImplementedError

    def test_has_trainable_parameters(self) -> None:
        """The network has parameters the optimizer can train."""
        params = _parameters(self.make_model())
        assert params, "the network has no parameters"
        assert any(p.requires_grad for p in params), "no parameter requires grad"

    def test_output_keeps_the_batch_and_carries_gradients(self) -> None:
        """The output has one row per input sample, and a loss on it reaches the parameters."""
        model, x = self.make_model(), self.make_input()
        out = model(x)
        assert len(out) == len(x), f"a batch of {len(x)} gave {len(out)} outputs"
        out.float().sum().backward()
        assert any(p.grad is not None for p in _parameters(model)), "no parameter got a gradient"

    def test_each_fold_gets_its_own_parameters(self) -> None:
        """Two networks built from the same arguments share no parameter (each fold trains its own)."""
        a, b = self.make_model(), self.make_model()
        shared = {id(p) for p in _parameters(a)} & {id(p) for p in _parameters(b)}
        assert not shared, f"{len(shared)} parameter(s) are shared between two instances (a module-level layer?)"

    def test_state_dict_round_trip(self) -> None:
        """A network loaded with another's ``state_dict`` computes the same outputs (checkpoints, ensembles)."""
        a, b = _eval(self.make_model()), _eval(self.make_model())
        b.load_state_dict(a.state_dict())
        x = self.make_input()
        assert_close(b(x), a(x), "output after load_state_dict")


class LearnerContract:
    """What a learner (``lcv.learners``, a config's ``learner``) must do: a LightningModule, one per fold.

    lcv builds it per fold as ``Learner(**cfg, model=..., criterion=..., optimizer=..., lr_scheduler=...,
    metrics=...)``, passing each of those config sections only when the constructor names it (or takes
    ``**kwargs``), and calls Lightning's hooks on it: ``configure_optimizers()``, ``training_step(batch, i)``,
    ``validation_step(batch, i)`` (``self.log`` works as in Lightning). Implement `make_learner()` and
    `make_batch()` (a batch as the datamodule serves it).
    """

    def make_learner(self) -> Any:
        """Return a new learner."""
        raise NotImplementedError

    def make_batch(self) -> Any:
        """Return one training batch."""
        raise NotImplementedError

    @staticmethod
    def _loss(output: Any) -> Any:
        return output["loss"] if isinstance(output, Mapping) else output

    def test_training_step_returns_a_loss_that_trains(self) -> None:
        """``training_step`` returns a scalar loss (or ``{"loss": ...}``) whose backward reaches the parameters."""
        learner = self.make_learner()
        learner.train()
        loss = self._loss(learner.training_step(self.make_batch(), 0))
        assert loss is not None, "training_step returned None: lcv would skip every batch"
        assert getattr(loss, "ndim", None) == 0, f"the loss has shape {getattr(loss, 'shape', '?')}, not a scalar"
        loss.backward()
        assert any(p.grad is not None for p in _parameters(learner)), "no parameter got a gradient"

    def test_validation_step_runs(self) -> None:
        """``validation_step`` runs on a batch (lcv validates every fold every epoch)."""
        learner = _eval(self.make_learner())
        learner.validation_step(self.make_batch(), 0)

    def test_configure_optimizers_returns_an_optimizer(self) -> None:
        """``configure_optimizers`` returns an optimizer (or Lightning's list/dict forms) over its parameters."""
        optimizers = self.make_learner().configure_optimizers()
        assert optimizers is not None, "configure_optimizers returned None"

    def test_each_fold_gets_its_own_parameters(self) -> None:
        """Two learners share no parameter (each fold trains its own model)."""
        a, b = self.make_learner(), self.make_learner()
        shared = {id(p) for p in _parameters(a)} & {id(p) for p in _parameters(b)}
        assert not shared, f"{len(shared)} parameter(s) are shared between two learners (a module built once?)"


# --- callbacks and loggers -------------------------------------------------------------------------------------


class CallbackContract:
    """What a callback (``lcv.callbacks``) must do: hooks lcv knows, keyword payloads, a checkpoint-safe state.

    lcv builds it as ``Callback(**cfg)`` and calls each hook through ``Fabric.call`` with keyword arguments
    only, passing a method just the payload names its signature lists. Implement `make_callback()` and set
    ``hooks_from = lcv_core.Callback`` (the hook names and payloads are read from it).
    """

    hooks_from: Any = None
    """The class whose ``on_*`` methods are the hooks (``lcv_core.Callback``); without it, signatures only."""

    def make_callback(self) -> Any:
        """Return the callback under test."""
        raise NotImplementedError

    def _hooks(self, callback: Any) -> dict[str, Any]:
        return {
            n: getattr(callback, n) for n in dir(callback) if n.startswith("on_") and callable(getattr(callback, n))
        }

    def test_every_hook_is_one_lcv_calls(self) -> None:
        """Each ``on_*`` method is a hook of ``hooks_from`` (a misspelt hook is never called)."""
        if self.hooks_from is None:
            return
        known = [n for n in dir(self.hooks_from) if n.startswith("on_")]
        unknown = [n for n in self._hooks(self.make_callback()) if n not in known]
        hints = "".join(f" '{n}':{did_you_mean(n, known) or ' no close hook.'}" for n in unknown)
        assert not unknown, f"lcv never calls {unknown}.{hints}"

    def test_hooks_take_keyword_payloads(self) -> None:
        """Each hook takes keyword arguments and requires none that lcv does not pass."""
        problems = []
        for name, method in self._hooks(self.make_callback()).items():
            params = list(inspect.signature(method).parameters.values())
            payload = set()
            base = getattr(self.hooks_from, name, None) if self.hooks_from is not None else None
            if base is not None:
                payload = {p.name for p in inspect.signature(base).parameters.values() if p.name != "self"}
            for p in params:
                if p.kind is p.POSITIONAL_ONLY:
                    problems.append(f"{name}: '{p.name}' is positional-only; lcv passes keywords")
                elif p.kind is p.VAR_POSITIONAL:
                    continue
                elif (
                    p.default is p.empty and p.kind is not p.VAR_KEYWORD and base is not None and p.name not in payload
                ):
                    problems.append(
                        f"{name}: requires '{p.name}', which lcv does not pass (it passes {sorted(payload)})"
                    )
        assert not problems, "; ".join(problems)

    def test_state_round_trip(self) -> None:
        """A ``state_dict()``, when present, is plain data and loads into a fresh callback.

        Checkpoints are read with ``torch.load(weights_only=True)``, which refuses other objects.
        """
        callback = self.make_callback()
        saves = callable(getattr(callback, "state_dict", None)) and callable(getattr(callback, "load_state_dict", None))
        if not saves:
            return
        state = callback.state_dict()
        bad = _plain_data(state)
        assert not bad, f"state_dict() holds values a weights-only checkpoint refuses: {bad[:5]}"
        fresh = self.make_callback()
        fresh.load_state_dict(copy.deepcopy(state))
        assert_close(fresh.state_dict(), state, "state after load_state_dict")


class LoggerContract:
    """What a logger (``lcv.loggers``) must take: lcv's calls, with its metric names, writing under its folder.

    Implement `make_logger(root_dir)`, building the logger as lcv does (``Logger(root_dir=root_dir)`` or
    ``save_dir=``); see [`Logger`][lcv_config.Logger] for the calls.
    """

    config: dict[str, Any] = {
        "seed": 0,
        "model": {"name": "mlp", "cfg": {"hidden": [16, 16], "dropout": None}},
        "trainer": {"max_epochs": 2, "monitor": "val_loss"},
        "callbacks": [],
    }
    """The resolved config given to ``log_hyperparams`` (nested, with lists and ``None``)."""

    def make_logger(self, root_dir: Path) -> Any:
        """Return a logger that writes under ``root_dir``."""
        raise NotImplementedError

    @staticmethod
    def epoch_metrics(epoch: int) -> dict[str, float]:
        """Return one epoch's metrics as lcv logs them: per fold and the fold mean and std."""
        folds = {f"fold_{i}/val_loss": 1.0 / (epoch + 1) + 0.1 * i for i in range(3)}
        return {**folds, "cv/val_loss_mean": 1.0 / (epoch + 1) + 0.1, "cv/val_loss_std": 0.0816}

    def _run(self, root_dir: Path) -> Any:
        logger = self.make_logger(root_dir)
        with contextlib.suppress(NotImplementedError):  # lcv tolerates it (Fabric's CSVLogger raises it)
            logger.log_hyperparams(copy.deepcopy(self.config))
        for epoch in range(3):
            logger.log_metrics(self.epoch_metrics(epoch), step=epoch)
        logger.finalize("success")
        return logger

    def test_is_a_logger(self, tmp_path: Path) -> None:
        """The object has ``log_metrics``, ``log_hyperparams`` and ``finalize``."""
        logger = self.make_logger(tmp_path)
        missing = _missing(logger, Logger)
        assert not missing, f"{type(logger).__name__} lacks {missing}"

    def test_takes_a_whole_run_and_writes_only_under_its_folder(self, tmp_path: Path) -> None:
        """A run's calls succeed, and every file written lies under ``root_dir`` (none in the working directory)."""
        root, cwd = tmp_path / "run", tmp_path / "cwd"
        root.mkdir()
        cwd.mkdir()
        previous = Path.cwd()
        os.chdir(cwd)
        try:
            self._run(root)
        finally:
            os.chdir(previous)
        stray = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
        assert not stray, f"the logger wrote outside its root_dir, into the working directory: {stray[:5]}"


# --- commands --------------------------------------------------------------------------------------------------


class CommandContract:
    """What an ``lcv`` subcommand (``lcv.commands``) must do: a one-line help, options that fit lcv's parser.

    lcv builds ``Command()`` without arguments, adds ``--verbose/-v`` to the command's parser, then calls
    ``configure(parser)``, parses the rest of the command line and calls ``run(args)``, exiting with its return
    value. Implement `make_command()`; set ``argv`` to run it once (``expected_exit``, default 0), and ``target``
    (``"package.module:Class"``) to check that importing it stays light (no torch: ``lcv --help`` imports it).
    """

    argv: list[str] | None = None
    """A command line to run the command with (after ``lcv NAME``); ``None`` skips running it."""
    expected_exit: int = 0
    """The exit code ``argv`` must give."""
    target: str | None = None
    """The entry point's target, checked to import without torch or Lightning."""

    def make_command(self) -> Any:
        """Return the command under test."""
        raise NotImplementedError

    def _parser(self, command: Any) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="lcv test-command", description=command.help, exit_on_error=False)
        parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks of errors")
        command.configure(parser)
        return parser

    def test_is_a_command_with_a_one_line_help(self) -> None:
        """The object satisfies [`Command`][lcv_config.Command]; ``help`` is one non-empty line."""
        command = self.make_command()
        missing = _missing(command, Command)
        assert not missing, f"{type(command).__name__} lacks {missing}"
        assert isinstance(command.help, str) and command.help.strip(), "help is empty"
        assert "\n" not in command.help.strip(), "help must be one line (lcv --help lists its first sentence)"

    def test_its_options_fit_lcvs_parser(self) -> None:
        """``configure`` adds options beside lcv's ``--verbose/-v`` without a conflict, and ``--help`` renders."""
        command = self.make_command()
        try:
            parser = self._parser(command)
        except argparse.ArgumentError as exc:
            raise AssertionError(f"configure() clashes with lcv's own options: {exc}") from None
        assert parser.format_help()

    def test_runs_and_returns_an_exit_code(self) -> None:
        """With ``argv`` set, ``run`` returns ``expected_exit`` as an int."""
        if self.argv is None:
            return
        command = self.make_command()
        args = self._parser(command).parse_args(self.argv)
        code = command.run(args)
        assert isinstance(code, int) and not isinstance(code, bool), f"run returned {code!r}, not an int exit code"
        assert code == self.expected_exit, f"exit code {code}, expected {self.expected_exit}"

    def test_importing_it_imports_no_torch(self) -> None:
        """Importing the command's module (``lcv --help`` does) imports neither torch nor Lightning."""
        if self.target is None:
            return
        module, _, attr = self.target.partition(":")
        probe = (
            "import importlib, sys\n"
            f"getattr(importlib.import_module({module!r}), {attr!r})\n"
            "print(','.join(m for m in ('torch', 'lightning') if m in sys.modules))\n"
        )
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not result.stdout.strip(), f"importing {module} imports {result.stdout.strip()}: import it in run()"


def _missing(obj: Any, protocol: type) -> list[str]:
    members = [n for n in vars(protocol) if not n.startswith("_") and n not in _PROTOCOL_INTERNALS]
    members += list(getattr(protocol, "__annotations__", {}))
    missing = []
    for name in dict.fromkeys(members):
        try:
            inspect.getattr_static(obj, name)
        except AttributeError:
            missing.append(name)
    return missing


_PROTOCOL_INTERNALS = {"_is_protocol", "_is_runtime_protocol"}


def assert_no_overlap(folds: Sequence[tuple[Sequence[int], Sequence[int]]]) -> None:
    """Assert that no fold has an index in both its training and validation part."""
    for i, (train, val) in enumerate(folds):
        both = set(map(int, train)) & set(map(int, val))
        assert not both, f"fold {i}: indices {sorted(both)[:10]} are in train and validation"
