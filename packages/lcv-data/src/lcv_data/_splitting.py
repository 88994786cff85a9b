"""Build a splitter from what the user gave, and split sample indices into folds with it."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from lcv_config import LcvError, build, resolve
from lcv_data._checks import check_before_split


def make_splitter(splitter: Any, kwargs: dict[str, Any], seed: int) -> Any:
    """Return a splitter object: an instance as given, else a name, class or dotted path built with ``kwargs``.

    A splitter that takes ``random_state`` gets ``seed`` unless ``kwargs`` set it (and, for those with a
    ``shuffle`` argument, only when shuffling): the same folds on every call and every trial.
    """
    if not isinstance(splitter, str) and not inspect.isclass(splitter) and hasattr(splitter, "split"):
        return splitter  # an instance, used as given
    cls = resolve("splitter", splitter, "data.splitter.name")
    params = inspect.signature(cls).parameters
    seeded = kwargs.get("shuffle") or "shuffle" not in params  # sklearn rejects random_state without shuffle
    if "random_state" in params and "random_state" not in kwargs and seeded:
        kwargs["random_state"] = seed  # frozen folds: the same split on every call and every trial
    return build("splitter", {"name": cls, "cfg": kwargs}, "data.splitter")


def split_pool(
    splitter: Any, pool: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the sample indices ``pool`` into ``(train, val)`` index arrays, after `check_before_split`.

    ``labels`` and ``groups`` hold one value per sample of the whole dataset (indexed by ``pool``), or ``None``.

    Raises:
        LcvError: The splitter cannot split these samples; the message names the cause.
    """
    sub_labels = None if labels is None else labels[pool]
    sub_groups = None if groups is None else groups[pool]
    check_before_split(splitter, len(pool), sub_labels, sub_groups)
    try:
        extra = {} if sub_groups is None else {"groups": sub_groups}
        splits = list(splitter.split(np.zeros(len(pool)), sub_labels, **extra))
    except (ValueError, TypeError) as exc:
        raise LcvError(f"{type(splitter).__name__} cannot split this dataset: {exc}") from exc
    return [(pool[np.asarray(tr, dtype=np.int64)], pool[np.asarray(va, dtype=np.int64)]) for tr, va in splits]
