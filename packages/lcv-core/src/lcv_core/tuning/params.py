"""Apply a trial's parameters to a copy of the experiment config by config path, and check a search space against it."""

from __future__ import annotations

import ast
import contextlib
import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lcv_config import ConfigError, ExperimentConfig
from lcv_config.errors import did_you_mean
from lcv_config.loading import validation_error
from lcv_config.space import CategoricalParam, FloatParam, IntParam, active, ordered, parse_space


def _config_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, Mapping):
        out = []
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.append(key)
            out.extend(_config_paths(v, key))
        return out
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in [f"{prefix}.{i}", *_config_paths(v, f"{prefix}.{i}")]]
    return []


def _set_path(data: dict[str, Any], path: str, value: Any, *, create_leaf: bool) -> None:
    """Set ``path`` (dotted; list items by index) in ``data``; raise ``KeyError(path_prefix)`` where it breaks."""
    parts = path.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(where)
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (last and create_leaf):
                raise KeyError(where)
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            raise KeyError(where)


def _data_of(config: ExperimentConfig) -> dict[str, Any]:
    return copy.deepcopy(config.model_dump())


def check_space_paths(config: ExperimentConfig, space: Mapping[str, Any]) -> None:
    """Check that every key of the search space is a path in the config.

    A conditional parameter (``when``) may add a new keyword to a ``cfg`` mapping (``optimizer.cfg.momentum`` only when
    ``optimizer.name`` is ``SGD``); every other key must already be in the config.

    Raises:
        ConfigError: A key is not in the config; the message suggests the closest paths.
    """
    parsed = parse_space(space)
    data = _data_of(config)
    for key, param in parsed.items():
        new_kwarg = param.when is not None and key.rsplit(".", 2)[-2:-1] == ["cfg"]
        try:
            _set_path(copy.deepcopy(data), key, None, create_leaf=new_kwarg)
        except KeyError as exc:
            valid = _config_paths(data)
            raise ConfigError(
                f"Search-space key '{key}' is not a path in the config ('{exc.args[0]}' does not exist)."
                f"{did_you_mean(key, valid)} Keys are config paths such as 'optimizer.cfg.lr' or 'model.cfg.hidden'; "
                "give the parameter a value in the config first.",
                f"tune.space.{key}",
            ) from None


def _labels(choice: Any) -> set[str]:
    """Return the strings a backend may have stored for a non-primitive choice (JSON, Python's repr)."""
    labels = {str(choice), repr(choice)}
    with contextlib.suppress(TypeError):  # not JSON-serialisable: only its repr can have been stored
        labels |= {json.dumps(choice), json.dumps(choice, sort_keys=True)}
    return labels


def _same(value: Any, choice: Any) -> bool:
    return type(value) is type(choice) and bool(value == choice)


def _read(label: str) -> list[Any]:
    """Return what ``label`` reads as in JSON and as a Python literal (never code: `ast.literal_eval`)."""
    out = []
    for read in (json.loads, ast.literal_eval):
        try:
            out.append(read(label))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return out


def decode_choices(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``params`` with each categorical value a backend stored as a label (`'[128, 128]'`) as its choice.

    Backends whose storage keeps only primitive values (Optuna keeps `None`, `bool`, `int`, `float` and `str`) may
    hand back a list or mapping choice as its string; the config needs the list. A value that is one of the choices
    is kept as it is, so a string choice that looks like a list stays a string. A label is matched by the strings a
    backend writes (JSON, `str`) and by what it reads as (JSON or a Python literal, so key order does not matter).

    Args:
        space: The search space (a config's raw `tune.space` or parsed parameters).
        params: Parameters keyed by config path, as a backend returns them.
    """
    is_parsed = all(isinstance(p, CategoricalParam | FloatParam | IntParam) for p in space.values())
    parsed = space if is_parsed else parse_space(space)
    out = dict(params)
    for key, value in params.items():
        param = parsed.get(key)
        if not isinstance(param, CategoricalParam) or not isinstance(value, str):
            continue
        if any(_same(value, c) for c in param.choices):
            continue
        read = _read(value)
        matches = [
            c
            for c in param.choices
            if not isinstance(c, str) and (value in _labels(c) or any(_same(r, c) for r in read))
        ]
        if matches:
            out[key] = copy.deepcopy(matches[0])
    return out


def apply_params(config: ExperimentConfig, params: Mapping[str, Any]) -> ExperimentConfig:
    """Return a validated copy of ``config`` with each ``params`` value set at its config path.

    A list or mapping choice that the backend returned as its string label is set as the list or mapping
    ([`decode_choices`][lcv_core.tuning.params.decode_choices]).

    Raises:
        ConfigError: A path is not in the config, or the result is not a valid config (message names the path).
    """
    if config.tune is not None and config.tune.space:
        params = decode_choices(config.tune.space, params)
    data = _data_of(config)
    for key, value in params.items():
        try:
            _set_path(data, key, value, create_leaf=key.rsplit(".", 2)[-2:-1] == ["cfg"])
        except KeyError as exc:
            raise ConfigError(
                f"Cannot apply parameter '{key}': '{exc.args[0]}' is not in the config.", f"tune.space.{key}"
            ) from None
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = validation_error(exc, data)
        raise ConfigError(f"{err.message} (with the trial parameters {dict(params)!r})", err.path) from None


def _probe(space: Mapping[str, FloatParam | IntParam | CategoricalParam]) -> list[dict[str, Any]]:
    """Return parameter sets at the edges of the space (low ends, then high ends), to validate before any trial."""
    probes = []
    for end in (0, -1):
        chosen: dict[str, Any] = {}
        for key in ordered(space):
            p = space[key]
            if active(p, chosen):
                chosen[key] = p.choices[end] if isinstance(p, CategoricalParam) else (p.low, p.high)[end]
        probes.append(chosen)
    return probes


def check_space(config: ExperimentConfig) -> dict[str, FloatParam | IntParam | CategoricalParam]:
    """Return the config's parsed search space, checked: its keys are config paths and its edges give valid configs."""
    if config.tune is None or not config.tune.space:
        raise ConfigError(
            "Nothing to tune: the config has no 'tune.space'. Add e.g.\n"
            "tune:\n  space:\n    optimizer.cfg.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}",
            "tune.space",
        )
    space = parse_space(config.tune.space)
    check_space_paths(config, config.tune.space)
    for probe in _probe(space):
        apply_params(config, probe)
    return space
