"""Check a component's config arguments against its target's signature, and find the arguments that are data."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from lcv_config.errors import ConfigError, did_you_mean

_SIMPLE_TYPES: dict[Any, type] = {t: t for t in (int, float, str, bool)} | {
    t.__name__: t for t in (int, float, str, bool)
}


@functools.lru_cache(maxsize=1024)
def _remembered_signature(target: Any, eval_str: bool) -> inspect.Signature:
    return inspect.signature(target, eval_str=eval_str)


def signature(target: Any, *, eval_str: bool = False) -> inspect.Signature:
    """Return ``inspect.signature(target)``, remembered per target.

    The registry asks for the same classes' signatures for every fold and every trial, and ``inspect.signature`` of a
    class costs ~0.1 ms. An unhashable callable is inspected anew each time.

    Raises:
        TypeError: ``target`` is not callable or has no signature (as ``inspect.signature``).
        ValueError: No signature can be provided (as ``inspect.signature``).
    """
    try:
        hash(target)
    except TypeError:
        return inspect.signature(target, eval_str=eval_str)
    return _remembered_signature(target, eval_str)


def _is_instance(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def check_arguments(
    target: Any, kwargs: Mapping[str, Any], kind: str, path: str, provided: tuple[str, ...] = ()
) -> None:
    """Check ``kwargs`` against ``target``'s signature before anything is built.

    Args:
        target: The class or function to call.
        kwargs: The arguments from the config.
        kind: The component kind, for messages.
        path: The config path of the component, for messages.
        provided: Argument names the caller fills in itself (``params`` of an optimizer).

    Raises:
        ConfigError: An argument is not in the signature (naming the valid ones), a required one is missing,
            or a value does not match a plain ``int``/``float``/``str``/``bool`` annotation.
    """
    try:
        sig = signature(target)
    except (TypeError, ValueError):
        return  # builtins without a signature: let the call itself complain
    params = sig.parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"]
    name = getattr(target, "__qualname__", repr(target))
    if not accepts_any:
        for key in kwargs:
            if key not in valid:
                hint = did_you_mean(key, valid)
                raise ConfigError(
                    f"Unknown argument '{key}' for {kind} {name}.{hint} Valid arguments: {', '.join(valid)}.",
                    f"{path}.cfg.{key}",
                )
    for key, value in kwargs.items():
        expected = _SIMPLE_TYPES.get(params[key].annotation) if key in params else None
        if expected is not None and value is not None and not _is_instance(value, expected):
            raise ConfigError(
                f"Wrong type for argument '{key}' of {kind} {name}: expected {expected.__name__}, "
                f"got {type(value).__name__} {value!r}.",
                f"{path}.cfg.{key}",
            )
    for n, p in params.items():
        required = p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if required and n not in kwargs and n not in provided and n != "self":
            raise ConfigError(f"Missing required argument '{n}' for {kind} {name}.", f"{path}.cfg")


def data_arguments(target: Any) -> set[str]:
    """Arguments the target annotates as a dict or mapping: their values are data, never built."""
    try:
        hints = signature(target, eval_str=True).parameters
    except Exception:  # noqa: BLE001  # unresolvable string annotations: treat no argument as data
        try:
            hints = signature(target).parameters
        except (TypeError, ValueError):
            return set()
    data = set()
    for name, param in hints.items():
        annotation = param.annotation
        if isinstance(annotation, str):
            if annotation.startswith(("dict", "Mapping", "typing.Mapping", "collections.abc.Mapping")):
                data.add(name)
            continue
        options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
        if any((typing.get_origin(o) or o) in (dict, Mapping) for o in options):
            data.add(name)
    return data


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def positional_params(target: Any) -> list[tuple[str, inspect.Parameter]]:
    """Return the target's positional parameters, ``self`` left out (none when it has no signature)."""
    try:
        params = signature(target).parameters
    except (TypeError, ValueError):
        return []
    return [(n, p) for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]
