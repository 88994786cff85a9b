"""Conformance suites that every plugin, ours or a third party's, runs in its own tests.

Subclass a contract in a pytest test module and implement its ``make_*`` method; pytest collects
the inherited ``test_*`` methods (name the subclass ``Test...``)::

    from lcv_config.testing import SplitterContract

    class TestMySplitter(SplitterContract):
        def make_splitter(self):
            return MySplitter(n_splits=4)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcv_config.protocols import FoldDataSource, Splitter, Trial, TrialPruned, Tuner


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

    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Tuner:
        """Return a tuner over ``space`` with a fresh study in ``workdir``."""
        raise NotImplementedError

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
