"""Turn whatever the user has (a Dataset, arrays, a DataFrame, dict samples, a name) into one indexable source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from lcv_config import LcvError, build
from lcv_data.table import TableDataset

INPUT_KEYS = ("x", "X", "input", "inputs", "features")
"""Keys of a dict-shaped sample taken as its input, in this order, when ``input_key`` is not given."""
TARGET_KEYS = ("y", "Y", "target", "targets", "label", "labels")
"""Keys of a dict-shaped sample taken as its target, in this order, when ``target_key`` is not given."""


class DictTensorDataset(Dataset[dict[str, torch.Tensor]]):
    """Dict-shaped samples from a dict of tensors (NeuroMANCER style: ``{"X": tensor, "Y": tensor}``).

    Args:
        tensors: Tensors (or arrays) with the same first dimension, one per key.

    Raises:
        LcvError: No tensors, or tensors whose first dimensions differ.
    """

    def __init__(self, tensors: Mapping[str, Any]) -> None:
        if not tensors:
            raise LcvError("DictTensorDataset needs at least one tensor, e.g. {'X': ..., 'Y': ...}.")
        self.tensors = {
            k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v) for k, v in tensors.items()
        }
        sizes = {k: len(v) for k, v in self.tensors.items()}
        if len(set(sizes.values())) > 1:
            raise LcvError(f"All tensors of a dict dataset need the same number of samples; got {sizes}.")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}


@dataclass
class Source:
    """One dataset, with what the datamodule needs to know about it."""

    dataset: Dataset[Any]
    """The map-style dataset every split indexes into."""
    tensors: tuple[torch.Tensor, ...] | dict[str, torch.Tensor] | None
    """The whole data as in-memory tensors when it has that shape (enables the fast loader)."""
    feature_names: list[str] | None = None
    """Names of the input columns (DataFrame columns), for messages."""
    input_key: str | int = 0
    """Where a sample keeps its input: a position in a tuple sample or a key of a dict sample."""
    target_key: str | int | None = 1
    """Where a sample keeps its target, or ``None`` when samples have none."""
    frame: Any = None
    """The DataFrame the source came from, if any (labels and groups may name its columns)."""
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-sample ``labels``/``groups`` the source brings itself (a table's columns), used when none are given."""


def _is_dataframe(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "columns") and hasattr(value, "iloc")


def _tensor(values: Any, what: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind in "USO":
        raise LcvError(f"{what} must be numeric; got values of dtype {array.dtype}. Encode them as numbers first.")
    return torch.as_tensor(array)


def _target_tensor(values: Any) -> torch.Tensor:
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind in "USb":
        _, codes = np.unique(array.astype(str), return_inverse=True)  # class names become 0..n-1, sorted
        return torch.as_tensor(codes.astype(np.int64))
    return torch.as_tensor(np.array(array))  # a writable copy: a DataFrame's arrays may be read-only


def _from_frame(frame: Any, features: Sequence[str] | None, target: str | None) -> Source:
    columns = [str(c) for c in frame.columns]
    wanted = list(features) if features is not None else [c for c in columns if c != target]
    for name in [*wanted, *([target] if target is not None else [])]:
        if name not in columns:
            from lcv_config.errors import did_you_mean

            raise LcvError(
                f"The DataFrame has no column '{name}'.{did_you_mean(name, columns)} Columns: {', '.join(columns)}."
            )
    X = _tensor(np.array(frame[wanted].to_numpy(dtype=np.float32)), "The feature columns")  # own, writable copy
    tensors: tuple[torch.Tensor, ...] = (X,) if target is None else (X, _target_tensor(frame[target].to_numpy()))
    return Source(TensorDataset(*tensors), tensors, feature_names=wanted, target_key=1 if target else None, frame=frame)


def _dict_keys(sample: Mapping[str, Any], input_key: str | None, target_key: str | None) -> tuple[str, str | None]:
    keys = list(sample)
    x = input_key or next((k for k in INPUT_KEYS if k in sample), None)
    if x is None or x not in sample:
        raise LcvError(
            f"Cannot tell the input of a dict sample with keys {keys}: pass input_key=<one of {keys}> "
            f"(looked for {', '.join(INPUT_KEYS)})."
        )
    y = target_key or next((k for k in TARGET_KEYS if k in sample), None)
    if y is not None and y not in sample:
        raise LcvError(f"target_key='{y}' is not a key of the samples; keys: {', '.join(map(str, keys))}.")
    return x, y


def make_source(
    dataset: Any = None,
    *,
    X: Any = None,
    y: Any = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
    input_key: str | None = None,
    target_key: str | None = None,
) -> Source:
    """Return the `Source` of any supported input.

    Accepted: a bundled dataset's name (``digits``) or any ``lcv.datamodules`` dataset, a ``TensorDataset``,
    any map-style torch ``Dataset`` (tuple or dict samples), a dict of tensors, a pandas DataFrame with
    ``features``/``target`` columns, or arrays ``X``/``y`` (numpy or torch).

    Raises:
        LcvError: No data, an empty dataset, mismatched lengths, or a dataset that cannot be indexed.
    """
    if isinstance(dataset, str):
        dataset = build("dataset", dataset, "data.dataset")
    if dataset is None:
        if X is None:
            raise LcvError("CrossValDataModule needs a dataset or arrays X (and y).")
        if _is_dataframe(X):
            return _from_frame(X, features, target)
        tensors = [_tensor(X, "X")]
        if y is not None:
            y_t = _target_tensor(y) if not isinstance(y, torch.Tensor) else y
            if len(y_t) != len(tensors[0]):
                raise LcvError(f"X has {len(tensors[0])} samples but y has {len(y_t)}; give one target per sample.")
            tensors.append(y_t)
        return Source(TensorDataset(*tensors), tuple(tensors), target_key=1 if y is not None else None)
    if _is_dataframe(dataset):
        return _from_frame(dataset, features, target)
    if isinstance(dataset, Mapping):
        dataset = DictTensorDataset(dataset)
    if isinstance(dataset, TableDataset):
        own = {"labels": dataset.labels, "groups": dataset.groups}
        return Source(
            dataset,
            tuple(dataset.tensors),
            feature_names=dataset.feature_names,
            target_key=1 if dataset.target is not None else None,
            frame=dataset.frame,
            columns={k: v for k, v in own.items() if v is not None},
        )
    if isinstance(dataset, TensorDataset):
        tensors_t = tuple(dataset.tensors)
        return Source(dataset, tensors_t, target_key=1 if len(tensors_t) > 1 else None)
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise LcvError(
            f"{type(dataset).__name__} is not a map-style dataset (it needs __len__ and __getitem__); "
            "iterable datasets cannot be split into folds."
        )
    if len(dataset) == 0:
        return Source(dataset, None)
    sample = dataset[0]
    if isinstance(sample, Mapping):
        x_key, y_key = _dict_keys(sample, input_key, target_key)
        tensors_d = dataset.tensors if isinstance(dataset, DictTensorDataset) else None
        return Source(dataset, tensors_d, input_key=x_key, target_key=y_key)
    if isinstance(sample, (tuple, list)):
        return Source(dataset, None, target_key=1 if len(sample) > 1 else None)
    return Source(dataset, None, target_key=None)


def column(spec: Any, source: Source, what: str) -> np.ndarray | None:
    """Return one value per sample (labels or groups) from ``spec``.

    ``spec`` may be an array, an attribute name of the dataset, a DataFrame column, a key of dict samples,
    or a callable applied to every sample; ``None`` gives the source's own column for ``what`` (a table's
    ``labels``/``groups``), if it has one.

    Raises:
        LcvError: ``spec`` names nothing the dataset has, or gives a number of values other than the samples'.
    """
    if spec is None:
        return source.columns.get(what)
    n = len(source.dataset)  # type: ignore[arg-type]  # map-style datasets have __len__ (checked in make_source)
    values: Any
    if isinstance(spec, str):
        if source.frame is not None and spec in source.frame.columns:
            values = source.frame[spec].to_numpy()
        elif isinstance(source.tensors, dict) and spec in source.tensors:
            values = source.tensors[spec].numpy()
        elif hasattr(source.dataset, spec):
            values = getattr(source.dataset, spec)
        elif n and isinstance(source.dataset[0], Mapping) and spec in source.dataset[0]:
            values = [_scalar(source.dataset[i][spec]) for i in range(n)]
        else:
            raise LcvError(
                f"{what}='{spec}' names no attribute of {type(source.dataset).__name__}, no DataFrame column and "
                "no key of its samples; give an attribute name, a column, an array or a callable over samples."
            )
    elif callable(spec):
        values = [_scalar(spec(source.dataset[i])) for i in range(n)]
    else:
        values = spec
    array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if len(array) != n:
        raise LcvError(
            f"{what} has {len(array)} entries but the dataset has {n} samples; give one {what[:-1]} label per sample."
        )
    return array


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else tuple(value.flatten().tolist())
    return value


def default_labels(source: Source) -> np.ndarray | None:
    """Return the targets used for stratification when no ``labels`` were given, if the dataset has them."""
    if isinstance(source.tensors, tuple):
        return source.tensors[1].numpy() if len(source.tensors) > 1 and source.tensors[1].ndim == 1 else None
    if isinstance(source.tensors, dict) and isinstance(source.target_key, str):
        y = source.tensors[source.target_key]
        y = y.squeeze(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        return y.numpy() if y.ndim == 1 else None
    targets = getattr(source.dataset, "targets", None)  # torchvision's convention
    if targets is not None and len(targets) == len(source.dataset):  # type: ignore[arg-type]
        return np.asarray(targets)
    return None
