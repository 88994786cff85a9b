"""A stratified k-fold registered under the name lcv-data uses too (``stratified_kfold``): the clash under test."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any


class RoundRobinStratifiedKFold:
    """Deal each class's samples to the folds in turn (shuffled within the class when ``shuffle``)."""

    def __init__(self, n_splits: int = 5, shuffle: bool = False, random_state: int | None = None) -> None:
        self.n_splits, self.shuffle, self.random_state = n_splits, shuffle, random_state

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[list[int], list[int]]]:
        labels = [0] * len(X) if y is None else [int(v) for v in y]
        by_class: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            by_class.setdefault(label, []).append(i)
        rng = random.Random(self.random_state)
        fold_of = [0] * len(labels)
        offset = 0
        for label in sorted(by_class):
            members = by_class[label]
            if self.shuffle:
                rng.shuffle(members)
            for k, i in enumerate(members):
                fold_of[i] = (k + offset) % self.n_splits
            offset += len(members)  # the next class starts where this one ended: fold sizes stay even
        for fold in range(self.n_splits):
            val = [i for i, f in enumerate(fold_of) if f == fold]
            yield [i for i, f in enumerate(fold_of) if f != fold], val
