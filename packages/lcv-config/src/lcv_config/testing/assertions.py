"""Assertions on values of any array library (tensors, arrays, nested lists) and on folds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def plain(value: Any) -> Any:
    """Return ``value`` as nested lists and Python scalars (tensors and arrays through ``tolist()``)."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def assert_close(actual: Any, expected: Any, what: str, rel: float = 1e-5, abs_: float = 1e-6) -> None:
    """Assert two values (tensors, arrays, nested lists, scalars) are equal up to a float tolerance."""
    a, e = plain(actual), plain(expected)

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, list) and isinstance(y, list):
            assert len(x) == len(y), f"{what}: length {len(x)} != {len(y)}{where}"
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                walk(xi, yi, f"{where}[{i}]")
        elif isinstance(x, dict) and isinstance(y, dict):
            assert x.keys() == y.keys(), f"{what}: keys {sorted(x)} != {sorted(y)}{where}"
            for k in x:
                walk(x[k], y[k], f"{where}[{k!r}]")
        elif (
            isinstance(x, int | float) and isinstance(y, int | float) and (isinstance(x, float) or isinstance(y, float))
        ):
            assert math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_) or (
                math.isnan(float(x)) and math.isnan(float(y))
            ), f"{what}: {x} != {y}{' at ' + where if where else ''}"
        else:
            assert x == y, f"{what}: {x!r} != {y!r}{' at ' + where if where else ''}"

    walk(a, e, "")


def assert_no_overlap(folds: Sequence[tuple[Sequence[int], Sequence[int]]]) -> None:
    """Assert that no fold has an index in both its training and validation part."""
    for i, (train, val) in enumerate(folds):
        both = set(map(int, train)) & set(map(int, val))
        assert not both, f"fold {i}: indices {sorted(both)[:10]} are in train and validation"
