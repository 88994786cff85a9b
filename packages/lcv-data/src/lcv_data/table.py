"""The ``table`` dataset source: a CSV, TSV or Parquet file on disk, named in a config.

```yaml
data:
  dataset:
    name: table
    cfg: {path: data/patients.csv, target: outcome, groups: hospital}
```
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lcv_config import ConfigError, LcvError
from lcv_config.errors import closest

KEY = "data.dataset.cfg"
"""The config key of the source's arguments, named in every error."""
FORMATS = ("csv", "tsv", "parquet")
"""The file formats read; ``format`` is inferred from the file's suffix when not given."""
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")  # pandas infers these from the suffix (CSV and TSV only)
_SHOWN = 5  # rows or values quoted in a message


class TableDataset(TensorDataset):
    """The rows of a table file as ``(features, target)`` tensors: features ``float32``, a class target ``int64``.

    A regression target is ``float32``; without a target, samples are ``(features,)``. The columns used for
    grouping and stratification are kept as arrays beside the tensors: the datamodule uses them when the
    config's ``data.groups``/``data.labels`` are not given.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        path: Path,
        feature_names: list[str],
        target: str | None,
        classes: list[Any] | None,
        groups: np.ndarray | None,
        labels: np.ndarray | None,
        frame: Any,
    ) -> None:
        super().__init__(*tensors)
        self.path = path
        """The file read, as an absolute path."""
        self.feature_names = feature_names
        """The feature columns, in the order of the input tensor's columns."""
        self.target = target
        """The target column, or ``None``."""
        self.classes = classes
        """The class names of a label-encoded target, in code order (class ``i`` is ``classes[i]``), else ``None``."""
        self.groups = groups
        """The ``groups`` column's values, one per row, or ``None``."""
        self.labels = labels
        """The ``labels`` column's values (stratification), one per row, or ``None``."""
        self.frame = frame
        """The rows kept, as a pandas DataFrame (other columns can serve as ``data.groups``/``data.labels``)."""


def load_table(
    path: str | Path,
    features: list[str] | None = None,
    target: str | None = None,
    groups: str | None = None,
    labels: str | None = None,
    format: Literal["csv", "tsv", "parquet"] | None = None,
    task: Literal["auto", "classification", "regression"] = "auto",
    classes: list[Any] | None = None,
    drop_missing: bool = False,
    read_options: dict[str, Any] | None = None,
) -> TableDataset:
    """Read a CSV, TSV or Parquet file into a dataset of ``(features, target)`` rows.

    Needs pandas (`pip install 'lcv-data[pandas]'`), and pyarrow for Parquet (`pip install 'lcv-data[parquet]'`).

    Args:
        path: The file. A relative path is relative to the working directory (where `lcv` runs), not to the
            config file.
        features: The input columns, in order (default: every column but `target`, `groups` and `labels`).
        target: The target column; without one, samples have no target.
        groups: A column of group labels for group splitters (`group_kfold`): rows of a group stay in one fold.
        labels: A column the stratified splitters balance the folds by, when it is not the target.
        format: `csv`, `tsv` or `parquet` (default: from the suffix: `.csv`, `.tsv`, `.parquet`, also
            compressed as `.csv.gz`, `.tsv.bz2`, ...).
        task: How the target is typed. `auto`: strings and integers are classes (`int64`), floats are values
            (`float32`); `classification`: always classes; `regression`: always `float32` values.
        classes: The class names in code order (class `i` is `classes[i]`). Give them when a second table (a
            test set) must be encoded like the first; default: the sorted distinct values of the target.
        drop_missing: Leave out rows with a missing or infinite value in a column used (with a warning giving
            their count) instead of refusing the file.
        read_options: Keyword arguments for the pandas reader (`sep`, `decimal`, `na_values`, `columns`...).

    Raises:
        ConfigError: The file is missing or unreadable, a column does not exist (the closest names are given),
            a feature is not numeric, rows have missing values, or a target value is not one of `classes`.
    """
    file = Path(path).expanduser()
    kind = _format(file, format)
    frame = _read(file, kind, dict(read_options or {}))
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    roles = {"target": target, "groups": groups, "labels": labels}
    for key, name in roles.items():
        if name is not None:
            _check_columns(file, key, [name], columns)
    if features is None:
        used = {name for name in roles.values() if name is not None}
        features = [c for c in columns if c not in used]
    else:
        features = [str(f) for f in features]
        _check_features(file, features, columns, target)
    if not features:
        raise ConfigError(
            f"{file.name} has no column left to use as a feature (columns: {_listed(columns)}); list the inputs "
            "in features.",
            f"{KEY}.features",
        )
    _check_numeric(file, frame, features)
    frame = _without_missing(file, frame, [*features, *(n for n in roles.values() if n is not None)], drop_missing)
    X = torch.as_tensor(np.array(frame[features].to_numpy(dtype=np.float32)))
    tensors = [X]
    encoded: list[Any] | None = None
    if target is not None:
        y, encoded = _target(file, frame[target].to_numpy(), target, task, classes)
        tensors.append(y)
    return TableDataset(
        tensors,
        path=file.resolve(),
        feature_names=features,
        target=target,
        classes=encoded,
        groups=None if groups is None else frame[groups].to_numpy(),
        labels=None if labels is None else frame[labels].to_numpy(),
        frame=frame,
    )


def _format(file: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise ConfigError(f"Unknown table format '{given}'. Formats: {', '.join(FORMATS)}.", f"{KEY}.format")
        return given
    suffixes = [s.lower() for s in file.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSION and _SUFFIXES.get(suffixes[-2]) in ("csv", "tsv"):
        return _SUFFIXES[suffixes[-2]]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise ConfigError(
        f"Cannot tell the format of '{file.name}' from its suffix (known: .csv, .tsv, .parquet, and .csv.gz-style "
        f"compressed CSV/TSV); set format: to one of {', '.join(FORMATS)}.",
        f"{KEY}.format",
    )


def _read(file: Path, kind: str, options: dict[str, Any]) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        extra = "parquet" if kind == "parquet" else "pandas"
        raise LcvError(
            f"The table source reads files with pandas, which is not installed: pip install 'lcv-data[{extra}]'."
        ) from exc
    if not file.is_file():
        where = "" if file.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        raise ConfigError(
            f"No file '{file}'{where}. A relative path is taken from the directory lcv runs in, not from the "
            "config file's folder: give an absolute path or run lcv from the folder the path starts at.",
            f"{KEY}.path",
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(file, **options)
        return pd.read_csv(file, **({"sep": "\t"} if kind == "tsv" else {}), **options)
    except ImportError as exc:
        if kind == "parquet":
            raise LcvError(
                f"Reading Parquet ({file.name}) needs pyarrow, which is not installed: pip install 'lcv-data[parquet]'."
            ) from exc
        raise LcvError(f"Reading {file.name} needs a package that is not installed: {exc}") from exc
    except TypeError as exc:  # an unknown reader option
        raise ConfigError(f"Cannot read {file.name}: {exc}.", f"{KEY}.read_options") from exc
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise ConfigError(
            f"Cannot read {file.name} as {kind}: {type(exc).__name__}: {exc}. Check the file, or set format: "
            "(and read_options: such as sep) to match it.",
            f"{KEY}.path",
        ) from exc


def _listed(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:30])
    return shown + (f", ... ({len(columns)} columns)" if len(columns) > 30 else "")


def _check_columns(file: Path, key: str, names: Sequence[str], columns: Sequence[str]) -> None:
    missing = [name for name in names if name not in columns]
    if not missing:
        return
    parts = []
    for name in missing:
        hits = closest(name, columns, n=3)
        parts.append(f"'{name}'" + (f" (did you mean {' or '.join(repr(h) for h in hits)}?)" if hits else ""))
    word = "column" if len(missing) == 1 else "columns"
    raise ConfigError(f"{file.name} has no {word} {', '.join(parts)}. Columns: {_listed(columns)}.", f"{KEY}.{key}")


def _check_features(file: Path, features: list[str], columns: Sequence[str], target: str | None) -> None:
    _check_columns(file, "features", features, columns)
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ConfigError(f"features lists {', '.join(repeated)} more than once; list each once.", f"{KEY}.features")
    if target is not None and target in features:
        raise ConfigError(
            f"The target '{target}' is also listed in features: the model would be given the answer. Remove it.",
            f"{KEY}.features",
        )


def _check_numeric(file: Path, frame: Any, features: Sequence[str]) -> None:
    bad = [name for name in features if frame[name].dtype.kind not in "biuf"]
    if not bad:
        return
    described = "; ".join(_describe(name, frame[name]) for name in bad[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    raise ConfigError(
        f"Features must be numbers; in {file.name} {'these columns are' if len(bad) > 1 else 'this column is'} not: "
        f"{described}{more}. Encode them as numbers in the file (one-hot or codes), or leave them out of features.",
        f"{KEY}.features",
    )


def _describe(name: str, series: Any) -> str:
    """Describe a text column: its first value that is not a number, and the fix when the rest are numbers."""
    values = series.dropna().iloc[:10_000]
    words = []
    for value in values:
        try:
            float(value)
        except (TypeError, ValueError):
            words.append(value)
    if not words:
        return f"'{name}' ({series.dtype})"
    if len(words) < len(values):  # mostly numbers: a placeholder such as '?' or 'n/a' made it text
        return (
            f"'{name}' holds {len(words)} values that are not numbers, e.g. {words[0]!r} (if that marks a missing "
            f"value, declare it: read_options: {{na_values: [{words[0]!r}]}})"
        )
    return f"'{name}' ({series.dtype}, e.g. {words[0]!r})"


def _without_missing(file: Path, frame: Any, used: Sequence[str], drop: bool) -> Any:
    used = list(dict.fromkeys(used))
    cells = frame[used].isna().to_numpy()
    for j, name in enumerate(used):
        if frame[name].dtype.kind == "f":
            cells[:, j] |= np.isinf(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))
    rows = cells.any(axis=1)
    count = int(rows.sum())
    if count == 0:
        return frame
    per_column = ", ".join(f"{c}: {int(n)}" for c, n in zip(used, cells.sum(axis=0), strict=True) if n)
    positions = np.flatnonzero(rows)
    first = ", ".join(str(int(i)) for i in positions[:_SHOWN]) + (", ..." if count > _SHOWN else "")
    what = (
        f"{count} of {len(frame)} rows of {file.name} have a missing or infinite value in a column used "
        f"({per_column}; rows {first}, counted from 0 after the header)"
    )
    if not drop:
        raise ConfigError(f"{what}. Fill them in the file, or set drop_missing: true to leave them out.", KEY)
    if count == len(frame):
        raise ConfigError(f"{what}: no row is left. Fill the missing values in the file.", KEY)
    warnings.warn(f"{what}: left out (drop_missing: true).", UserWarning, stacklevel=3)
    return frame.loc[~rows].reset_index(drop=True)


def _target(
    file: Path, values: np.ndarray, name: str, task: str, classes: Sequence[Any] | None
) -> tuple[torch.Tensor, list[Any] | None]:
    if task not in ("auto", "classification", "regression"):
        raise ConfigError(f"task must be auto, classification or regression; got {task!r}.", f"{KEY}.task")
    kind = values.dtype.kind
    if task == "regression":
        if kind not in "biuf":
            raise ConfigError(
                f"task: regression needs a numeric target, but '{name}' in {file.name} holds {values.dtype} values "
                f"(e.g. {_plain(values[0])!r}); use task: classification, or encode the target as numbers.",
                f"{KEY}.task",
            )
        return torch.as_tensor(values.astype(np.float32)), None
    if classes is None and kind in "biu":
        return torch.as_tensor(values.astype(np.int64)), None
    if classes is None and kind == "f" and task == "auto":
        return torch.as_tensor(values.astype(np.float32)), None
    if classes is None:
        if kind == "f" and not np.all(values == np.round(values)):
            raise ConfigError(
                f"task: classification needs class labels, but '{name}' in {file.name} holds fractional numbers "
                f"(e.g. {_plain(values[values != np.round(values)][0])!r}); use task: regression.",
                f"{KEY}.task",
            )
        if kind == "f":
            return torch.as_tensor(values.astype(np.int64)), None
        found, codes = np.unique(values.astype(str), return_inverse=True)  # class names become 0..n-1, sorted
        return torch.as_tensor(codes.astype(np.int64)), found.tolist()
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ConfigError(f"classes lists a class more than once: {names}.", f"{KEY}.classes")
    index = {c: i for i, c in enumerate(names)}
    as_text = values.astype(str) if kind not in "f" else np.array([f"{v:g}" for v in values])
    unknown = sorted(set(as_text.tolist()) - set(index))
    if unknown:
        raise ConfigError(
            f"The target '{name}' in {file.name} has values that are not in classes: {', '.join(unknown[:_SHOWN])}"
            f"{', ...' if len(unknown) > _SHOWN else ''}. classes: {', '.join(names)}.",
            f"{KEY}.classes",
        )
    codes = np.array([index[v] for v in as_text.tolist()], dtype=np.int64)
    return torch.as_tensor(codes), list(classes)


def _plain(value: Any) -> Any:
    """Return a numpy scalar as the Python value it holds, for messages (``0.5``, not ``np.float64(0.5)``)."""
    return value.item() if isinstance(value, np.generic) else value
