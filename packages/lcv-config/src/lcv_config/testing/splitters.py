"""The conformance suite of splitters (``lcv.splitters``)."""

from __future__ import annotations

from typing import Any

from lcv_config.protocols import Splitter
from lcv_config.testing._helpers import missing_members


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
        assert isinstance(splitter, Splitter), f"{type(splitter).__name__} lacks {missing_members(splitter, Splitter)}"

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
