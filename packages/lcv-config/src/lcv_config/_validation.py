"""Turn pydantic's validation errors into lcv's errors: the config path, what was expected, the closest keys.

The same message comes from a config file (``load_config``) and from Python (``TrainerConfig(max_epoch=5)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from lcv_config.errors import ConfigError, did_you_mean
from lcv_config.renamed import RENAMED_OPTIONS
from lcv_config.schema import Component, ExperimentConfig, FieldError, TrainerConfig


class ConfigValidationError(ConfigError, ValidationError):
    """A pydantic model of lcv_config refused its input: a `ConfigError` that is also pydantic's error.

    ``str()`` is lcv's message (path, fix, closest names); ``errors()`` is pydantic's list, so code written against
    pydantic's ``ValidationError`` keeps working.
    """

    def __init__(self, *args: Any) -> None:  # pydantic's from_exception_data calls cls(title, errors, ...)
        ConfigError.__init__(self, "invalid config")

    def __str__(self) -> str:
        return str(self.args[0])


def schema_keys(model: type[BaseModel] | None, data: Any) -> list[str]:
    """Return the keys valid at a config node: those present plus the model's fields."""
    keys = list(data) if isinstance(data, Mapping) else []
    if model is not None:
        keys += [k for k in model.model_fields if k not in keys]
    return keys


def model_in(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model inside an annotation (``Optional[X]``, ``X | list[X]``, ``dict[str, list[X]]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def field_model(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    """Return the model of field ``key`` of ``model`` (``None`` for a plain value or an unknown key)."""
    if model is None or key not in model.model_fields:
        return None
    return model_in(model.model_fields[key].annotation)


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


def _model_at(loc: Sequence[str | int], root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, str) and part in model.model_fields:
            model = field_model(model, part)
        # else: a list index or a mapping key inside a container of ``model`` items; the item model stays
    return model


def _unknown_key(key: str, path: str, parent: type[BaseModel] | None, root: type[BaseModel]) -> str:
    valid = list(parent.model_fields) if parent else []
    where = f"at {path}" if root is ExperimentConfig or "." in path else f"for {root.__name__}"
    if parent is TrainerConfig and key in RENAMED_OPTIONS:
        message = f"Unknown key '{key}' {where}.{RENAMED_OPTIONS[key].hint(key)}"
    else:
        message = f"Unknown key '{key}' {where}.{did_you_mean(key, valid)}"
    if parent is not None:  # a key of a section written one level too high: max_epochs at the top level
        for name in parent.model_fields:
            section = field_model(parent, name)
            if section is not None and section is not Component and key in section.model_fields:
                message += f" '{key}' belongs in the '{name}' section: {name}: {{{key}: ...}}."
                break
    if valid:
        message += f" Valid keys: {', '.join(valid)}."
    if parent is Component:
        message += " Arguments of a component go under 'cfg': {name: ..., cfg: {" + key + ": ...}}."
    return message


def validation_error(exc: ValidationError, data: Any = None, root: type[BaseModel] = ExperimentConfig) -> ConfigError:
    """Turn pydantic's errors into one `ConfigError` naming the path, what was expected and the closest keys.

    Args:
        exc: The validation error.
        data: The validated input; with it, the members of a union pydantic tried are removed from the path
            and the error of the member that matches the input's shape is reported.
        root: The model that was validated (paths are relative to it).
    """
    return ConfigError(*_describe(exc, data, root))


def _describe(exc: ValidationError, data: Any, root: type[BaseModel]) -> tuple[str, str]:
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
        if not cause.subpath:
            return cause.message, path
        return cause.message, cause.subpath if path == "<root>" else f"{path}.{cause.subpath}"
    if isinstance(cause, ConfigError):
        return cause.message, cause.path or path
    if err["type"] == "extra_forbidden":
        return _unknown_key(str(loc[-1]), path, _model_at(loc[:-1], root), root), path
    if err["type"] == "missing":
        return f"Missing required key '{loc[-1]}' at {path}.", path
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else f"a {type(got).__name__}"
    reasons = list(dict.fromkeys(e["msg"] for (l2, _), e in chosen if l2 == loc)) if tagged else [err["msg"]]
    reasons = [r.removeprefix("Value error, ") for r in reasons]
    if isinstance(got, Mapping) and err["type"] == "value_error":  # a whole section refused by a model validator
        where = root.__name__ if path == "<root>" else path
        return f"Invalid {where}: {'; or '.join(reasons)}.", path
    return f"Invalid value {shown} at {path}: {'; or '.join(reasons)}.", path


def config_validation_error(exc: ValidationError, data: Any, root: type[BaseModel]) -> ConfigError:
    """Return lcv's error for a refused model: a `ConfigValidationError` keeping pydantic's ``errors()``."""
    message, path = _describe(exc, data, root)
    try:
        error: ConfigError = ConfigValidationError.from_exception_data(
            exc.title,
            exc.errors(),  # type: ignore[arg-type]  # ErrorDetails carry everything InitErrorDetails needs
        )
    except Exception:  # noqa: BLE001  # an error type pydantic cannot rebuild: lcv's error alone still says it all
        return ConfigError(message, path)
    ConfigError.__init__(error, message, path)
    return error


__all__ = [
    "ConfigValidationError",
    "config_validation_error",
    "field_model",
    "format_path",
    "model_in",
    "schema_keys",
    "validation_error",
]
