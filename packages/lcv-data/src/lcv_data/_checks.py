"""Checks of the data before a splitter sees it and of the folds it makes: one message that names the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lcv_config import LcvError


def splitter_n_splits(splitter: Any) -> int | None:
    """Return the number of folds per repetition a k-fold-like splitter makes, or ``None``."""
    n = getattr(splitter, "n_splits", None)
    if n is None:
        n = getattr(splitter, "cvargs", {}).get("n_splits")  # Repeated(Stratified)KFold keep it here
    return n if isinstance(n, int) else None


def is_classes(labels: np.ndarray) -> bool:
    """Return whether ``labels`` look like one class per sample (integers, or few distinct values)."""
    return labels.ndim == 1 and (labels.dtype.kind in "iub" or len(np.unique(labels)) <= max(2, len(labels) // 2))


def _is_kfold_like(splitter: Any) -> bool:
    # Shuffle splitters also take n_splits, but as a count of random draws, not a partition of the data.
    return "ShuffleSplit" not in type(splitter).__name__ and splitter_n_splits(splitter) is not None


def check_before_split(splitter: Any, n_samples: int, labels: np.ndarray | None, groups: np.ndarray | None) -> None:
    """Raise an [`LcvError`][lcv_config.LcvError] naming the fix if ``splitter`` cannot split this data well.

    Checks: a group splitter without groups, a stratified splitter without labels, ``n_splits`` larger
    than the number of samples or groups, and a class with fewer samples than ``n_splits``.
    """
    name = type(splitter).__name__
    if "Group" in name and groups is None:
        raise LcvError(
            f"{name} is a group splitter but no groups were given: pass groups=<one label per sample> "
            "to the datamodule, or use a splitter without groups (e.g. 'kfold' or 'stratified_kfold')."
        )
    if "Stratified" in name and labels is None:
        raise LcvError(f"{name} stratifies by label but the dataset has no targets: give y, or use 'kfold' instead.")
    n_splits = splitter_n_splits(splitter)
    if n_splits is None or not _is_kfold_like(splitter):
        return
    if n_splits > n_samples:
        raise LcvError(
            f"n_splits={n_splits} is larger than the number of samples ({n_samples}); use n_splits <= {n_samples}."
        )
    if "Group" in name and groups is not None:
        n_groups = len(np.unique(groups))
        if n_splits > n_groups:
            raise LcvError(
                f"n_splits={n_splits} is larger than the number of groups ({n_groups}); use n_splits <= {n_groups}."
            )
    if "Stratified" in name and labels is not None and labels.ndim == 1:
        classes, counts = np.unique(labels, return_counts=True)
        rare = [(c, int(k)) for c, k in zip(classes.tolist(), counts.tolist(), strict=True) if k < n_splits]
        if rare:
            listed = "; ".join(f"class {c} has {k} sample{'s' if k != 1 else ''}" for c, k in rare[:5])
            if len(rare) > 5:
                listed += f"; and {len(rare) - 5} more classes"
            hint = ""
            if np.issubdtype(labels.dtype, np.floating) and len(classes) > n_samples // 2:
                hint = f" The labels look continuous ({len(classes)} distinct values): a regression target?"
            raise LcvError(
                f"{name} cannot put every class in every fold: {listed}, fewer than n_splits={n_splits}.{hint} "
                "Use fewer splits, merge or drop rare classes, or a non-stratified splitter such as 'kfold'."
            )


def unseen_classes_message(labels: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> str | None:
    """Return a message naming each fold whose validation part holds a class its training part lacks, or ``None``.

    Such a fold's model never sees the class in training and scores every sample of it as wrong; stratifying
    by it is impossible. Labels that do not look like classes (a continuous target) are not checked.
    """
    if labels.ndim != 1 or not is_classes(labels):
        return None
    classes, codes = np.unique(labels, return_inverse=True)
    found = []
    for fold, (train, val) in enumerate(folds):
        seen = np.bincount(codes[train], minlength=len(classes)) > 0
        unseen = np.flatnonzero((np.bincount(codes[val], minlength=len(classes)) > 0) & ~seen)
        if len(unseen):
            names = ", ".join(str(c) for c in classes[unseen[:10]].tolist()) + (", ..." if len(unseen) > 10 else "")
            found.append(f"fold {fold}: class{'es' if len(unseen) > 1 else ''} {names}")
    if not found:
        return None
    listed = "; ".join(found[:5]) + (f"; and {len(found) - 5} more folds" if len(found) > 5 else "")
    return (
        f"A class is in a fold's validation part but not in its training part ({listed}): that fold's model never "
        "learns it and scores all its samples as wrong. Use a stratified splitter ('stratified_kfold'), fewer "
        "splits, or merge or drop rare classes; strict=True makes this an error."
    )
