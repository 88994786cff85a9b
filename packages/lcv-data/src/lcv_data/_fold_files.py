"""Folds and fitted transform state as JSON files (no pickle), written and read back with checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcv_config import LcvError


def write_folds(
    path: str | Path, splitter: Any, n_samples: int, folds: Sequence[tuple[np.ndarray, np.ndarray]], test: Any
) -> None:
    """Write the splitter's repr, every fold's train/validation indices and the holdout's indices as JSON."""
    data = {
        "splitter": repr(splitter),
        "n_samples": n_samples,
        "folds": [{"train": tr.tolist(), "val": va.tolist()} for tr, va in folds],
        "test": None if test is None else test.tolist(),
    }
    Path(path).write_text(json.dumps(data), encoding="utf-8")


def read_folds(path: str | Path, n: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
    """Read folds written by `write_folds()` for a dataset of ``n`` samples, and the holdout's indices.

    Raises:
        LcvError: The file was written for a dataset of another size, or an index is out of range.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("n_samples") != n:
        raise LcvError(f"{path} holds folds of {data.get('n_samples')} samples; this dataset has {n}.")
    folds = [(np.asarray(f["train"], dtype=np.int64), np.asarray(f["val"], dtype=np.int64)) for f in data["folds"]]
    test = None if data.get("test") is None else np.asarray(data["test"], dtype=np.int64)
    for i, (tr, va) in enumerate(folds):
        if any(len(part) and (part.min() < 0 or part.max() >= n) for part in (tr, va)):
            raise LcvError(f"{path}: fold {i} has an index outside 0..{n - 1}.")
    return folds, test


def write_transforms(path: str | Path, fitted: Sequence[Sequence[Any]]) -> None:
    """Write every fold's fitted transform state as JSON: class and ``state_dict()`` per transform."""
    data = {
        "folds": [
            [{"class": f"{type(t).__module__}:{type(t).__qualname__}", "state": t.state_dict()} for t in fold]
            for fold in fitted
        ]
    }
    Path(path).write_text(json.dumps(data), encoding="utf-8")


def restore_transforms(path: str | Path, data: Any, transforms: Sequence[Any], n_folds: int) -> list[list[Any]]:
    """Return copies of ``transforms`` per fold, loaded with the state `write_transforms()` wrote to ``path``.

    Args:
        path: The file ``data`` was read from (named in errors).
        data: The file's parsed JSON.
        transforms: The datamodule's unfitted transforms.
        n_folds: The datamodule's number of folds.

    Raises:
        LcvError: The file's transforms or fold count differ from ``transforms`` and ``n_folds``.
    """
    if len(data["folds"]) != n_folds:
        raise LcvError(f"{path} holds transforms of {len(data['folds'])} folds; this datamodule has {n_folds}.")
    fitted = []
    for i, saved in enumerate(data["folds"]):
        names = [type(t).__qualname__ for t in transforms]
        if [s["class"].rpartition(":")[2] for s in saved] != names:
            raise LcvError(f"{path}: fold {i} holds {[s['class'] for s in saved]}; this datamodule fits {names}.")
        fold = []
        for t, s in zip(transforms, saved, strict=True):
            clone = copy.deepcopy(t)
            clone.load_state_dict(s["state"])
            fold.append(clone)
        fitted.append(fold)
    return fitted
