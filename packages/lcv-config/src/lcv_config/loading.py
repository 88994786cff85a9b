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
from lcv_config.schema import Component, ExperimentConfig, FieldError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]  # only on 3.10

_REF = re.compile(r"\$\{([^}]+)\}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats (``3e-4`` is a number, not a string) and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects), reading ``1e-3`` as a float as YAML 1.2 does."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


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
            data = parse_yaml(text)
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
    except yaml.YAMLError as exc:  # reader errors (bad bytes) carry no line mark
        raise ConfigError(f"YAML error in {p}: {exc}", str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error in {p}: {exc}", str(p)) from None
    except json.JSONDecodeError as exc:
        where = f"{p}:{exc.lineno}:{exc.colno}"
        raise ConfigError(f"JSON syntax error in {where}: {exc.msg}", where) from None
    if data is None:
        raise ConfigError(
            f"Config file '{p}' is empty; it must hold a mapping of sections (data, trainer, ...).", str(p)
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file '{p}' holds a {type(data).__name__}; it must hold a mapping of sections.", str(p)
        )
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


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):  # Optional[X], X | list[X], dict[str, list[X]]
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _field_model(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    if model is None or key not in model.model_fields:
        return None
    return _model_in(model.model_fields[key].annotation)


def split_arguments(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split command-line arguments into config files and ``key=value`` overrides, keeping their order."""
    return [i for i in items if "=" not in i], [i for i in items if "=" in i]


def apply_override(data: dict[str, Any], override: str, schema: type[BaseModel] | None = ExperimentConfig) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML (``5``, ``3e-4``, ``[1, 2]``).

    Keys below a schema section are checked against the schema (and the keys already in the config);
    keys inside free-form mappings such as a component's ``cfg`` are not. A number indexes a list
    (``callbacks.0.cfg.patience=3``).

    Raises:
        ConfigError: Not of the form ``key=value``, or a key that is neither in the config nor in the schema.
    """
    if "=" not in override:
        raise ConfigError(f"Override '{override}' is not of the form key=value (e.g. trainer.max_epochs=5).", override)
    dotted, _, raw = override.partition("=")
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"Override '{override}' has an empty key; write it as a.b.c=value.", dotted)
    value = parse_yaml(raw) if raw.strip() else ""
    node: Any = data
    model: type[BaseModel] | None = schema
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"Override '{dotted}': '{'.'.join(parts[:depth])}' is a list of {len(node)} item(s); "
                    f"'{part}' is not an index in it (use 0 to {len(node) - 1}).",
                    here,
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
            continue
        typed = model is not None or depth == 0  # below an untyped mapping (a component's cfg) any key is fine
        known = _schema_keys(model, node)
        if typed and part not in known:
            listing = f" Valid keys here: {', '.join(known)}." if known else ""
            raise ConfigError(f"Override of unknown key '{here}'.{did_you_mean(part, known)}{listing}", here)
        if last:
            node[part] = value
            return
        if node.get(part) is None:
            node[part] = {}
        if isinstance(node[part], str) and _field_model(model, part) is Component:
            node[part] = {"name": node[part]}  # a bare component name gains a cfg: optimizer.cfg.lr=0.1
        if not isinstance(node[part], (dict, list)):
            raise ConfigError(
                f"Cannot set '{dotted}': '{here}' is a {type(node[part]).__name__} ({node[part]!r}), not a section.",
                here,
            )
        model = _field_model(model, part)
        node = node[part]


def _lookup(data: Mapping[str, Any], dotted: str, origin: str) -> Any:
    """Return the value ``dotted`` points to; a schema field the config leaves out gives its default."""
    node: Any = data
    model: type[BaseModel] | None = ExperimentConfig
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part not in node and model is not None and part in model.model_fields:
            default = model.model_fields[part].get_default(call_default_factory=True)
            node = {**node, part: default.model_dump() if isinstance(default, BaseModel) else default}
        if not isinstance(node, Mapping) or part not in node:
            keys = _schema_keys(model, node) if isinstance(node, Mapping) else []
            raise ConfigError(f"Reference '${{{dotted}}}' points nowhere.{did_you_mean(part, keys)}", origin)
        model = _field_model(model, part)
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
        return _REF.sub(
            lambda m: str(resolve_value(_lookup(data, m.group(1), origin), m.group(1), (*stack, origin))), value
        )

    return resolve_value(data, "", ())  # type: ignore[no-any-return]  # a dict in, a dict out


def _strip_union_tags(loc: Sequence[Any], data: Any, missing: bool) -> tuple[list[str | int], bool]:
    # pydantic puts the tried member of a union into the location ("optimizer.Component.lr"); keep only the
    # segments that exist in the input, plus a final key reported as missing. Also say whether tags were removed.
    if data is None:
        return [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))], False
    kept: list[str | int] = []
    node = data
    tagged = False
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            kept.append(part)
            node = node[part]
        elif last and missing and isinstance(node, Mapping):
            kept.append(part)
        elif isinstance(part, str) and part.startswith("function-"):
            continue
        else:
            tagged = True
    return kept, tagged


def format_path(loc: Sequence[str | int]) -> str:
    """Write a location as a config path: ``data.transforms.train[0].name``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ExperimentConfig
    for part in loc:
        if model is None:
            return None
        if isinstance(part, str) and part in model.model_fields:
            model = _field_model(model, part)
        # else: a list index or a mapping key inside a container of ``model`` items; the item model stays
    return model


def validation_error(exc: ValidationError, data: Any = None) -> ConfigError:
    """Turn pydantic's errors into one :class:`ConfigError` naming the path, what was expected and the closest keys.

    Args:
        exc: The validation error.
        data: The validated input; with it, the members of a union pydantic tried are removed from the path
            and the error of the member that matches the input's shape is reported.
    """
    errors = exc.errors()
    stripped = [(_strip_union_tags(e["loc"], data, e["type"] == "missing"), e) for e in errors]
    first_top = stripped[0][0][0][:1]
    same_field = [s for s in stripped if s[0][0][:1] == first_top]
    depth = max(len(loc) for (loc, _), _ in same_field)
    chosen = [s for s in same_field if len(s[0][0]) == depth]
    (loc, tagged), err = chosen[0]
    path = format_path(loc)
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        full = f"{path}.{cause.subpath}" if cause.subpath else path
        return ConfigError(cause.message, full)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = _model_at(loc[:-1])
        valid = list(parent.model_fields) if parent else []
        msg = f"Unknown key '{key}' at {path}.{did_you_mean(key, valid)}"
        if valid:
            msg += f" Valid keys: {', '.join(valid)}."
        if parent is Component:
            msg += " Arguments of a component go under 'cfg': {name: ..., cfg: {" + key + ": ...}}."
        return ConfigError(msg, path)
    if err["type"] == "missing":
        return ConfigError(f"Missing required key '{loc[-1]}' at {path}.", path)
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else f"a {type(got).__name__}"
    reasons = list(dict.fromkeys(e["msg"] for (l2, _), e in chosen if l2 == loc)) if tagged else [err["msg"]]
    reasons = [r.removeprefix("Value error, ") for r in reasons]
    return ConfigError(f"Invalid value {shown} at {path}: {'; or '.join(reasons)}.", path)


def load_dict(
    paths: Sequence[str | Path] = (), overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read, merge and override config files into one plain dict with references resolved."""
    data: dict[str, Any] = dict(base or {})
    for p in paths:
        data = merge(data, read_file(p))
    for o in overrides:
        apply_override(data, o)
    return resolve_references(data)


def load_config(
    paths: Sequence[str | Path] | str | Path = (), overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> ExperimentConfig:
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
        raise validation_error(exc, data) from None


def dump_config(config: ExperimentConfig) -> str:
    """Return the config as YAML, with every default written out (the resolved config of a run).

    A class or function given as an object (``Component(name=MLP)`` from Python) is written as its dotted import
    path (``lcv_core.models.MLP``), which loads back to the same object; any other object is written as its
    ``repr`` in a string.
    """
    data = config.model_dump(mode="python", exclude={"trainer": {"loggers", "callbacks", "plugins"}})
    return yaml.safe_dump(_plain_data(data), sort_keys=False)


def _plain_data(value: Any) -> Any:
    """Turn a model_dump into YAML-safe data: objects with an import path become that path."""
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    if isinstance(value, Path):
        return str(value)
    return repr(value)
