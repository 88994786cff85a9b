"""The conformance suites pass correct toy plugins and catch broken ones."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from lcv_config import FoldDataSource, Splitter, Trial, TrialPruned, Tuner
from lcv_config.space import parse_space
from lcv_config.testing import FoldDataSourceContract, SplitterContract, TunerContract, assert_no_overlap


def contract_tests(contract: type) -> list[str]:
    return sorted(name for name in dir(contract) if name.startswith("test_"))


def run_all(instance: Any, tmp_path: Path) -> None:
    for name in contract_tests(type(instance)):
        method = getattr(instance, name)
        if "tmp_path" in method.__code__.co_varnames[: method.__code__.co_argcount]:
            folder = tmp_path / name
            folder.mkdir(parents=True)
            method(folder)
        else:
            method()


# --- splitters -------------------------------------------------------------------------------------------------


class KFold:
    """A correct k-fold splitter over plain lists: contiguous validation blocks."""

    def __init__(self, n_splits: int = 5) -> None:
        self.n_splits = n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        n = len(X)
        bounds = [n * k // self.n_splits for k in range(self.n_splits + 1)]
        for k in range(self.n_splits):
            val = list(range(bounds[k], bounds[k + 1]))
            yield [i for i in range(n) if i not in val], val

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits


class LeakyKFold(KFold):
    """Broken: the first validation index is also trained on."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        for train, val in super().split(X, y, groups):
            yield [*train, val[0]], val


class OverlappingKFold(KFold):
    """Broken: consecutive validation blocks overlap, so some samples are validated twice."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        for train, val in super().split(X, y, groups):
            extra = (val[-1] + 1) % len(X)
            yield [i for i in train if i != extra], [*val, extra]


class MiscountingKFold(KFold):
    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits + 1


class ShufflingKFold(KFold):
    """Broken: reshuffles on every call, so two calls give different folds."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        order = list(range(len(X)))
        random.shuffle(order)
        for train, val in super().split(X, y, groups):
            yield [order[i] for i in train], [order[i] for i in val]


class OutOfRangeKFold(KFold):
    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        for train, val in super().split(X, y, groups):
            yield [*train, len(X)], val


class TestToyKFold(SplitterContract):
    """A correct splitter passes the whole suite (pytest collects the inherited tests)."""

    def make_splitter(self) -> Any:
        return KFold(4)


def splitter_contract(splitter: Any) -> SplitterContract:
    class Contract(SplitterContract):
        def make_splitter(self) -> Any:
            return splitter

    return Contract()


@pytest.mark.parametrize(
    ("splitter", "failing_test", "message"),
    [
        (LeakyKFold(5), "test_no_index_in_train_and_validation", r"fold 0: indices \[0\] are in train and validation"),
        (OverlappingKFold(5), "test_validation_folds_cover_every_sample_once", r"validated twice: \[0, 12, 24"),
        (MiscountingKFold(5), "test_get_n_splits_matches_split", "get_n_splits says 6, split yields 5 folds"),
        (ShufflingKFold(5), "test_same_folds_twice", "two calls of split gave different folds"),
        (OutOfRangeKFold(5), "test_indices_in_range", r"fold 0: indices \[60\] are outside 0..59"),
    ],
    ids=["leaky", "overlapping", "miscounting", "reshuffling", "out-of-range"],
)
def test_splitter_contract_catches_a_broken_splitter(splitter: Any, failing_test: str, message: str) -> None:
    contract = splitter_contract(splitter)
    with pytest.raises(AssertionError, match=message):
        getattr(contract, failing_test)()


def test_splitter_contract_passes_a_correct_splitter(tmp_path: Path) -> None:
    run_all(splitter_contract(KFold(3)), tmp_path)
    assert isinstance(KFold(3), Splitter)


def test_an_object_without_split_is_not_a_splitter() -> None:
    with pytest.raises(AssertionError, match=r"object lacks \['split', 'get_n_splits'\]"):
        splitter_contract(object()).test_is_a_splitter()


def test_assert_no_overlap_names_the_fold() -> None:
    assert_no_overlap([([0, 1], [2]), ([1, 2], [0])])
    with pytest.raises(AssertionError, match=r"fold 1: indices \[2\] are in train and validation"):
        assert_no_overlap([([0, 1], [2]), ([1, 2], [0, 2])])


# --- fold data sources ---------------------------------------------------------------------------------------


class ListFolds:
    """A correct fold data source over plain lists: batches are slices of a list."""

    def __init__(self, samples: list[float], n_folds: int = 3, batch_size: int = 4) -> None:
        self.samples, self.n_folds, self.batch_size = samples, n_folds, batch_size
        self.folds = list(KFold(n_folds).split(samples))

    def _batches(self, indices: list[int]) -> list[list[float]]:
        values = [self.samples[i] for i in indices]
        return [values[i : i + self.batch_size] for i in range(0, len(values), self.batch_size)]

    def train_val_dataloaders(self) -> list[tuple[list[list[float]], list[list[float]]]]:
        return [(self._batches(train), self._batches(val)) for train, val in self.folds]


class OneFold(ListFolds):
    def train_val_dataloaders(self) -> list[tuple[list[list[float]], list[list[float]]]]:
        return super().train_val_dataloaders()[:1]


class EmptyValidation(ListFolds):
    def train_val_dataloaders(self) -> list[tuple[list[list[float]], list[list[float]]]]:
        return [(train, []) for train, _ in super().train_val_dataloaders()]


class Resplitting(ListFolds):
    """Broken: re-splits with a new fold count on every call."""

    calls = 0

    def train_val_dataloaders(self) -> list[tuple[list[list[float]], list[list[float]]]]:
        Resplitting.calls += 1
        self.folds = list(KFold(2 + Resplitting.calls).split(self.samples))
        return super().train_val_dataloaders()


class OneShot(ListFolds):
    """Broken: hands out generators that are exhausted after the first pass."""

    def train_val_dataloaders(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]  # deliberately wrong
        for train, val in super().train_val_dataloaders():
            yield iter(train), iter(val)


def source_contract(source: Any) -> FoldDataSourceContract:
    class Contract(FoldDataSourceContract):
        def make_source(self) -> Any:
            return source

    return Contract()


SAMPLES = [float(i) for i in range(30)]


class TestListFolds(FoldDataSourceContract):
    def make_source(self) -> Any:
        return ListFolds(SAMPLES)


def test_fold_source_contract_passes_a_correct_source(tmp_path: Path) -> None:
    run_all(source_contract(ListFolds(SAMPLES)), tmp_path)
    assert isinstance(ListFolds(SAMPLES), FoldDataSource)


@pytest.mark.parametrize(
    ("source", "failing_test", "message"),
    [
        (OneFold(SAMPLES), "test_at_least_two_non_empty_folds", "got 1 fold"),
        (EmptyValidation(SAMPLES), "test_at_least_two_non_empty_folds", "fold 0 has no validation batches"),
        (Resplitting(SAMPLES), "test_same_folds_on_every_call", "first call .* second call"),
        (object(), "test_is_a_fold_data_source", r"object lacks \['train_val_dataloaders'\]"),
    ],
    ids=["one-fold", "empty-validation", "resplitting", "not-a-source"],
)
def test_fold_source_contract_catches_a_broken_source(source: Any, failing_test: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        getattr(source_contract(source), failing_test)()


def test_fold_source_contract_catches_one_shot_loaders() -> None:
    contract = source_contract(OneShot(SAMPLES))
    contract.test_at_least_two_non_empty_folds()  # the first pass looks fine
    contract.test_same_folds_on_every_call()
    with pytest.raises(AssertionError, match="fold 0: the training loader served 5 then 0 batches"):
        contract.test_loaders_can_be_iterated_every_epoch()


# --- tuners --------------------------------------------------------------------------------------------------


class RandomTrial:
    def __init__(self, number: int, params: dict[str, Any], prune_above: float | None) -> None:
        self._number, self._params, self.prune_above = number, params, prune_above
        self.values: dict[int, float] = {}
        self.user_attrs: dict[str, Any] = {}

    @property
    def number(self) -> int:
        return self._number

    @property
    def params(self) -> Mapping[str, Any]:
        return self._params

    def report(self, value: float, step: int) -> None:
        self.values[step] = value

    def should_prune(self) -> bool:
        # a threshold pruner: stop a trial whose latest intermediate value is above the threshold
        return self.prune_above is not None and self.values[max(self.values)] > self.prune_above

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class RandomSearch:
    """A tiny random-search tuner over a parsed lcv search space."""

    def __init__(  # the keywords lcv tune constructs a backend with
        self,
        space: Mapping[str, Any],
        direction: str = "minimize",
        study: str | None = None,
        storage: str | None = None,
        workdir: str | Path = ".",
        sampler: Any = None,
        pruner: Any = None,
        seed: int | None = 0,
        prune_above: float | None = None,
    ) -> None:
        self.space = parse_space(space)
        self.direction = direction
        self.rng = random.Random(seed or 0)
        self.prune_above = prune_above
        self.results: list[tuple[float, dict[str, Any]]] = []
        self.count = 0

    def _sample(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, p in self.space.items():
            if p.type == "categorical":
                params[key] = self.rng.choice(p.choices)
            elif p.type == "int":
                params[key] = self.rng.randrange(p.low, p.high + 1, p.step)
            else:
                params[key] = self.rng.uniform(p.low, p.high)
        return params

    def optimize(
        self, objective: Callable[[Trial], float], n_trials: int | None = None, timeout: float | None = None
    ) -> None:
        for _ in range(n_trials or 10):
            trial = RandomTrial(self.count, self._sample(), self.prune_above)
            self.count += 1
            try:
                value = objective(trial)
            except TrialPruned:
                continue
            self.results.append((value, dict(trial.params)))

    def _best(self) -> tuple[float, dict[str, Any]]:
        pick = min if self.direction == "minimize" else max
        return pick(self.results, key=lambda r: r[0])

    @property
    def best_params(self) -> dict[str, Any]:
        return self._best()[1]

    @property
    def best_value(self) -> float:
        return self._best()[0]


class TestRandomSearch(TunerContract):
    def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Tuner:
        return RandomSearch(space, direction)


class AlwaysMinimizes(RandomSearch):
    """Broken: ignores the direction."""

    def _best(self) -> tuple[float, dict[str, Any]]:
        return min(self.results, key=lambda r: r[0])


class MedianIsBest(RandomSearch):
    """Broken: reports the median trial as the best."""

    def _best(self) -> tuple[float, dict[str, Any]]:
        return sorted(self.results, key=lambda r: r[0])[len(self.results) // 2]


class OutOfBounds(RandomSearch):
    """Broken: samples x from twice the range."""

    def _sample(self) -> dict[str, Any]:
        params = super()._sample()
        params["x"] = params["x"] * 2 + 5.5
        return params


class StopsAtPrune(RandomSearch):
    """Broken: stops the study at the first pruned trial."""

    def optimize(
        self, objective: Callable[[Trial], float], n_trials: int | None = None, timeout: float | None = None
    ) -> None:
        for _ in range(n_trials or 10):
            trial = RandomTrial(self.count, self._sample(), self.prune_above)
            self.count += 1
            try:
                value = objective(trial)
            except TrialPruned:
                return
            self.results.append((value, dict(trial.params)))


class NumbersAllZero(RandomSearch):
    def _sample(self) -> dict[str, Any]:
        self.count = 0
        return super()._sample()


def tuner_contract(make: Callable[[Mapping[str, Any], str], Any]) -> TunerContract:
    class Contract(TunerContract):
        def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Tuner:
            tuner: Tuner = make(space, direction)
            return tuner

    return Contract()


def test_tuner_contract_passes_a_correct_tuner(tmp_path: Path) -> None:
    run_all(tuner_contract(RandomSearch), tmp_path)
    run_all(tuner_contract(lambda s, d: RandomSearch(s, d, seed=7, prune_above=20.0)), tmp_path / "pruning")


@pytest.mark.parametrize(
    ("make", "failing_test", "message"),
    [
        (AlwaysMinimizes, "test_maximize", "best_value"),
        (MedianIsBest, "test_best_is_the_best_finished_trial", "best_value"),
        (OutOfBounds, "test_runs_the_requested_trials_with_parameters_in_bounds", r"\[\d"),
        (StopsAtPrune, "test_a_pruned_trial_does_not_stop_the_study", "the study stopped after the pruned trial"),
        (NumbersAllZero, "test_runs_the_requested_trials_with_parameters_in_bounds", "trial numbers must be unique"),
    ],
    ids=["ignores-direction", "median-is-best", "out-of-bounds", "stops-at-prune", "repeated-numbers"],
)
def test_tuner_contract_catches_a_broken_tuner(make: Any, failing_test: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=message):
        getattr(tuner_contract(make), failing_test)(tmp_path)


# --- tuners: the constructor lcv uses --------------------------------------------------------------------------


class PositionalOnlyTuner(RandomSearch):
    """Broken: the signature the old suite suggested, ``(space, direction, workdir)``, without lcv's keywords."""

    def __init__(self, space: Any, direction: str, workdir: Path) -> None:
        super().__init__(space, direction)


class KeywordTuner(RandomSearch):
    def __init__(self, space: Any, direction: str = "minimize", seed: int | None = None, **options: Any) -> None:
        super().__init__(space, direction, seed=seed or 0)


def test_tuner_contract_builds_the_backend_as_lcv_does(tmp_path: Path) -> None:
    class TestKeyword(TunerContract):
        tuner_class = KeywordTuner

    run_all(TestKeyword(), tmp_path / "good")

    class TestPositional(TunerContract):
        def make_tuner(self, space: dict[str, Any], direction: str, workdir: Path) -> Any:
            return PositionalOnlyTuner(space, direction, workdir)

    with pytest.raises(AssertionError, match="its signature refuses"):
        TestPositional().test_accepts_the_arguments_lcv_constructs_it_with(tmp_path)
    with pytest.raises(NotImplementedError, match="set tuner_class"):
        TunerContract().make_tuner({}, "minimize", tmp_path)
