"""Read config files (YAML, TOML, JSON), merge them, apply dotted overrides, validate."""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lcv_config.errors import ConfigError, did_you_mean
from lcv_config.schema import ExperimentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_REF = re.compile(r"\$\{([^}]+)\}")


def read_file(path: str | Path) -> dict[str, Any]:
    """Read one config file into a dict; the format follows the suffix (``.yaml``, ``.toml``, ``.json``).

    Raises:
        ConfigError: Missing file, syntax error (with line and column), or a top level that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file '{p}' does not exist.", str(p))
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"Unknown config format '{p.suffix}' of '{p}'; use .yaml, .yml, .toml or .json.", str(p))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise ConfigError(f"YAML syntax error in {where}: {exc.problem or exc}", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error in {p}: {exc}", str(p)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"JSON syntax error in {p}:{exc.lineno}:{exc.colno}: {exc.msg}", str(p)) from None
    if data is None:
        raise ConfigError(f"Config file '{p}' is empty; it must hold a mapping of sections (data, trainer, ...).", str(p))
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{p}' holds a {type(data).__name__}; it must hold a mapping of sections.", str(p))
    return data


def merge(base: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``other`` into a copy of ``base``: mappings merge, everything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _schema_keys(model: type[BaseModel] | None, data: Any) -> list[str]:
    keys = list(data) if isinstance(data, Mapping) else []
    if model is not None:
        keys += [k for k in model.model_fields if k not in keys]
    return keys


def _field_model(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    if model is None or key not in model.model_fields:
        return None
    annotation = model.model_fields[key].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def apply_override(data: dict[str, Any], override: str, schema: type[BaseModel] | None = ExperimentConfig) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML (``5``, ``3e-4``, ``[1, 2]``).

    Raises:
        ConfigError: Not of the form ``key=value``, or a key that is neither in the config nor in the schema.
    """
    if "=" not in override:
        raise ConfigError(f"Override '{override}' is not of the form key=value (e.g. trainer.max_epochs=5).", override)
    dotted, _, raw = override.partition("=")
    parts = dotted.strip().split(".")
    node: Any = data
    model: type[BaseModel] | None = schema
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        free = model is None and depth > 0 and parts[depth - 1] in ("cfg", "space", "options", "dataloaders")
        known = _schema_keys(model, node)
        if part not in known and not free and not (isinstance(node, Mapping) and part in node):
            raise ConfigError(
                f"Override of unknown key '{here}'.{did_you_mean(part, known)} Valid keys here: {', '.join(known)}.",
                here,
            )
        if last:
            node[part] = yaml.safe_load(raw) if raw.strip() else ""
            return
        if not isinstance(node.get(part), dict):
            node[part] = {} if node.get(part) is None else node[part]
            if not isinstance(node[part], dict):
                raise ConfigError(f"Cannot set '{dotted}': '{here}' is a {type(node[part]).__name__}, not a section.", here)
        model = _field_model(model, part)
        node = node[part]


def _lookup(data: Mapping[str, Any], dotted: str, origin: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            keys = list(node) if isinstance(node, Mapping) else []
            raise ConfigError(f"Reference '${{{dotted}}}' points nowhere.{did_you_mean(part, keys)}", origin)
        node = node[part]
    return node


def resolve_references(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``${a.b}`` references by the values they point to; a cycle is an error naming it."""

    def resolve_value(value: Any, origin: str, stack: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve_value(v, f"{origin}.{k}" if origin else k, stack) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve_value(v, f"{origin}[{i}]", stack) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        full = _REF.fullmatch(value)
        refs = _REF.findall(value)
        for ref in refs:
            if ref in stack or ref == origin:
                cycle = " -> ".join((*stack, origin, ref)) if origin not in stack else " -> ".join((*stack, ref))
                raise ConfigError(f"Circular reference: {cycle}.", origin)
        if full:
            return resolve_value(_lookup(data, refs[0], origin), refs[0], (*stack, origin))
        return _REF.sub(lambda m: str(resolve_value(_lookup(data, m.group(1), origin), m.group(1), (*stack, origin))), value)

    return resolve_value(data, "", ())  # type: ignore[no-any-return]  # a dict in, a dict out


def validation_error(exc: ValidationError) -> ConfigError:
    """Turn pydantic's first error into one :class:`ConfigError` naming the path, with a suggestion."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    path = ".".join(loc) or "<root>"
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        parent = _field_path_model(loc[:-1])
        valid = list(parent.model_fields) if parent else []
        msg = f"Unknown key '{key}' at {path}.{did_you_mean(key, valid)}"
        if valid:
            msg += f" Valid keys: {', '.join(valid)}."
        return ConfigError(msg, path)
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict) else "a mapping"
    return ConfigError(f"Invalid value {shown} at {path}: {err['msg']}.", path)


def _field_path_model(loc: Sequence[str]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ExperimentConfig
    for part in loc:
        model = _field_model(model, part)
    return model


def load_dict(paths: Sequence[str | Path] = (), overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read, merge and override config files into one plain dict with references resolved."""
    data: dict[str, Any] = dict(base or {})
    for p in paths:
        data = merge(data, read_file(p))
    for o in overrides:
        apply_override(data, o)
    return resolve_references(data)


def load_config(paths: Sequence[str | Path] | str | Path = (), overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Load an experiment: files merged in order, then overrides, then ``${...}`` references, then validation.

    Raises:
        ConfigError: With the path of the first problem and how to fix it.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    data = load_dict(paths, overrides, base)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def dump_config(config: ExperimentConfig) -> str:
    """Return the config as YAML, with every default written out (the resolved config of a run)."""
    data = config.model_dump(mode="json", exclude={"trainer": {"loggers", "callbacks", "plugins"}})
    return yaml.safe_dump(data, sort_keys=False)
