"""Carve a test split off before the folds: stratified when labels exist, grouped when groups exist."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

from lcv_config import LcvError
from lcv_data._checks import is_classes


def carve_holdout(
    holdout: float | int, n: int, labels: np.ndarray | None, groups: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(pool, test)`` indices: ``holdout`` (a fraction in (0, 1) or a count) of the samples go to test.

    With groups the split keeps each group whole (``holdout`` is then a fraction or count of groups); else
    with class labels it keeps the class proportions.

    Raises:
        LcvError: ``holdout`` is out of range, or the data cannot be split that way (the message says why).
    """
    is_fraction = isinstance(holdout, float)
    if isinstance(holdout, bool) or (is_fraction and not 0 < holdout < 1) or (not is_fraction and not 0 < holdout < n):
        raise LcvError(
            f"holdout={holdout!r} is out of range: give a fraction in (0, 1) such as 0.2, or a count in 1..{n - 1}."
        )
    kwargs = {"n_splits": 1, "test_size": holdout, "random_state": seed}
    zeros = np.zeros(n)
    try:
        if groups is not None:
            train, test = next(GroupShuffleSplit(**kwargs).split(zeros, None, groups))
        elif labels is not None and is_classes(labels):
            train, test = next(StratifiedShuffleSplit(**kwargs).split(zeros, labels))
        else:
            train, test = next(ShuffleSplit(**kwargs).split(zeros))
    except ValueError as exc:
        raise LcvError(f"Cannot carve holdout={holdout!r} off {n} samples: {exc}") from exc
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))
