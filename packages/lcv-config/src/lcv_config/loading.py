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
from pydantic import BaseModel

from lcv_config._validation import field_model, format_path, schema_keys
from lcv_config._validation import validation_error as validation_error  # re-exported: lcv-core imports it here
from lcv_config.errors import ConfigError, did_you_mean
from lcv_config.schema import Component, ExperimentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]  # only on 3.10

_REF = re.compile(r"\$\{([^}]+)\}")


MAX_DEPTH = 100
"""How deeply a config may nest mappings and lists; deeper input is refused (no real config comes close)."""
MAX_NODES = 200_000
"""How many values a config may hold once YAML aliases are expanded; bounds alias bombs ("billion laughs")."""


class _TooDeepError(yaml.MarkedYAMLError):
    """YAML nested deeper than `MAX_DEPTH`, found while composing (before Python's recursion limit)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader: YAML 1.2 floats (``3e-4`` is a number), no duplicate keys, bounded nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
                raise _TooDeepError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

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
    """Parse YAML safely (no arbitrary objects), reading ``1e-3`` as a float as YAML 1.2 does.

    Raises:
        ConfigError: Nesting deeper than `MAX_DEPTH` or more than `MAX_NODES` values once aliases
            are expanded.
        yaml.YAMLError: A syntax error.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except _TooDeepError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}" if mark else "the YAML"
        raise ConfigError(
            f"The YAML is nested deeper than {MAX_DEPTH} levels (at {where}); a config needs far fewer. "
            "Flatten it, or move large data into a data file the dataset reads.",
            where,
        ) from None
    check_shape(data)
    return data


def check_shape(data: Any, source: str = "The config") -> None:
    """Refuse data nested deeper than `MAX_DEPTH` or holding more than `MAX_NODES` values.

    The walk stops at the first limit, so an alias bomb (a few lines that expand to billions of values) is refused
    in microseconds, and a self-referencing alias (``&a [*a]``) counts as too deep.

    Raises:
        ConfigError: Naming the limit and the path where it was passed.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    count = 0
    while stack:
        node, loc = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(
                f"{source} holds more than {MAX_NODES:,} values once YAML aliases (*name) are expanded, at "
                f"{format_path(loc)}; a config needs far fewer. Remove the repeated aliases, or move large data "
                "into a data file the dataset reads.",
                format_path(loc),
            )
        if len(loc) > MAX_DEPTH:
            raise ConfigError(
                f"{source} is nested deeper than {MAX_DEPTH} levels (or an alias refers to itself) at "
                f"{format_path(loc[:8])}...; a config needs far fewer. Flatten it.",
                format_path(loc[:8]),
            )
        if isinstance(node, Mapping):
            stack.extend((v, (*loc, str(k))) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))


def read_file(path: str | Path) -> dict[str, Any]:
    """Read one config file into a dict; the format follows the suffix (``.yaml``, ``.toml``, ``.json``).

    Raises:
        ConfigError: Missing or unreadable file, not UTF-8 text (a binary file), a syntax error (with line and
            column), nesting or alias expansion past the limits, or a top level that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "does not exist"
        raise ConfigError(f"Config file '{p}' {what}.", str(p))
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file '{p}': {exc.strerror or exc}.", str(p)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file '{p}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "is it a binary file? Pass a YAML, TOML or JSON file saved as UTF-8.",
            str(p),
        ) from None
    try:
        if p.suffix in (".yaml", ".yml"):
            data = parse_yaml(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"Unknown config format '{p.suffix}' of '{p}'; use .yaml, .yml, .toml or .json.", str(p))
        check_shape(data, f"Config file '{p}'")
    except ConfigError as exc:
        if str(p) in exc.message:
            raise
        raise ConfigError(f"Config file '{p}': {exc.message}", str(p)) from None
    except RecursionError:  # json and tomllib recurse per nesting level
        raise ConfigError(
            f"Config file '{p}' is nested deeper than {MAX_DEPTH} levels; a config needs far fewer. Flatten it.",
            str(p),
        ) from None
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
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"Override '{override}': the value is not valid YAML ({problem}); quote it or fix the brackets.", dotted
        ) from None
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
        known = schema_keys(model, node)
        if typed and part not in known:
            listing = f" Valid keys here: {', '.join(known)}." if known else ""
            raise ConfigError(f"Override of unknown key '{here}'.{did_you_mean(part, known)}{listing}", here)
        if last:
            node[part] = value
            return
        if node.get(part) is None:
            node[part] = {}
        if isinstance(node[part], str) and field_model(model, part) is Component:
            node[part] = {"name": node[part]}  # a bare component name gains a cfg: optimizer.cfg.lr=0.1
        if not isinstance(node[part], (dict, list)):
            raise ConfigError(
                f"Cannot set '{dotted}': '{here}' is a {type(node[part]).__name__} ({node[part]!r}), not a section.",
                here,
            )
        model = field_model(model, part)
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
            keys = schema_keys(model, node) if isinstance(node, Mapping) else []
            raise ConfigError(f"Reference '${{{dotted}}}' points nowhere.{did_you_mean(part, keys)}", origin)
        model = field_model(model, part)
        node = node[part]
    return node


def resolve_references(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``${a.b}`` references by the values they point to; a cycle is an error naming it."""
    budget = [MAX_NODES]  # references that expand into references (a "billion laughs" of ${...}) stop here

    def resolve_value(value: Any, origin: str, stack: tuple[str, ...]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(
                f"The config's ${{...}} references expand to more than {MAX_NODES:,} values (at {origin}); "
                "refer to a section once instead of nesting references of references.",
                origin,
            )
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

    resolved = resolve_value(data, "", ())
    check_shape(resolved)
    return resolved  # type: ignore[no-any-return]  # a dict in, a dict out


def load_dict(
    paths: Sequence[str | Path] = (), overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read, merge and override config files into one plain dict with references resolved."""
    data: dict[str, Any] = dict(base or {})
    for p in paths:
        data = merge(data, read_file(p))
    for o in overrides:
        apply_override(data, o)
    check_shape(data)
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
    return ExperimentConfig.model_validate(data)  # raises lcv's ConfigError (also a pydantic ValidationError)


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
