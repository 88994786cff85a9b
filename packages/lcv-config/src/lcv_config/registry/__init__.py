"""The component registry: turn a reference in a config into a class or function, then build it.

A reference resolves in this order: a name registered with [`register()`][lcv_config.register] → an entry point of
the kind's group (``stratified_kfold``, or ``distribution:name`` to pick one of several) → a dotted import path → a
class or function given directly → the kind's default modules (``torch.optim`` for optimizers, ...). A bare name
found in two default modules is an error, never a silent first match. A dotted path imports its module, as in Hydra
and LightningCLI: only use configs you trust.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lcv_config.errors import ConfigError, DuplicatePluginError, LcvError, closest, did_you_mean
from lcv_config.groups import (
    CALLBACKS,
    DATAMODULES,
    KNOWN_PROVIDERS,
    LEARNERS,
    LOGGERS,
    MODELS,
    SPLITTERS,
    TRANSFORMS,
    TUNERS,
)
from lcv_config.plugins import list_plugins, match_qualified, select_plugin
from lcv_config.registry.arguments import check_arguments, data_arguments, positional_params
from lcv_config.registry.components import is_component, split_component

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """A component kind: where its names come from."""

    name: str
    """The kind's name, as used in error messages (``optimizer``)."""
    group: str | None = None
    """Its entry-point group, if plugins provide it."""
    default_modules: tuple[str, ...] = ()
    """Modules searched for a bare name last, in order (``torch.optim``)."""


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("model", MODELS),
        Kind("learner", LEARNERS),
        Kind("criterion", None, ("torch.nn",)),
        Kind("optimizer", None, ("torch.optim",)),
        Kind("lr_scheduler", None, ("torch.optim.lr_scheduler",)),
        Kind("metric", None, ("torchmetrics",)),
        Kind("datamodule", DATAMODULES),
        Kind("dataset", DATAMODULES),
        Kind("splitter", SPLITTERS),
        Kind("transform", TRANSFORMS, ("torchvision.transforms.v2",)),
        Kind("callback", CALLBACKS),
        Kind("logger", LOGGERS, ("lightning.pytorch.loggers",)),
        Kind("tuner", TUNERS),
    )
}
"""Every component kind lcv knows."""

_REGISTERED: dict[str, dict[str, Any]] = {k: {} for k in KINDS}

SPEC_ARGUMENTS = "lcv_spec_arguments"
"""A target's attribute naming arguments it builds itself from ``{name, cfg}``: `build()` passes them as written."""


def _kind(kind: str) -> Kind:
    try:
        k = KINDS[kind]
    except KeyError:
        raise LcvError(
            f"Unknown component kind '{kind}'.{did_you_mean(kind, KINDS)} Kinds: {', '.join(KINDS)}"
        ) from None
    _REGISTERED.setdefault(k.name, {})
    return k


def unregister(kind: str, name: str) -> None:
    """Remove a name registered with [`register()`][lcv_config.register] (tests and notebooks re-registering a class).

    Raises:
        LcvError: Nothing of that name is registered for ``kind``.
    """
    _kind(kind)
    if name not in _REGISTERED[kind]:
        known = sorted(_REGISTERED[kind])
        raise LcvError(
            f"No {kind} '{name}' is registered.{did_you_mean(name, known)} Registered: {', '.join(known) or 'none'}."
        )
    del _REGISTERED[kind][name]


def register(kind: str, name: str | None = None) -> Callable[[T], T]:
    """Register a class or function under ``name`` (default: its ``__name__``) for ``kind``.

    Example:
        >>> @register("model")
        ... class TinyNet: ...
    """
    _kind(kind)

    def decorator(obj: T) -> T:
        key = name or getattr(obj, "__name__", None)
        if not key:
            raise LcvError(f"Cannot register {obj!r} as a {kind} without a name.")
        existing = _REGISTERED[kind].get(key)
        if existing is not None and existing is not obj:
            raise LcvError(f"The {kind} name '{key}' is already registered to {existing!r}; choose another name.")
        _REGISTERED[kind][key] = obj
        return obj

    return decorator


def registered_names(kind: str, pattern: str = "*") -> list[str]:
    """List registered and entry-point names of ``kind`` matching a glob ``pattern``, importing nothing."""
    k = _kind(kind)
    names = set(_REGISTERED[k.name])
    if k.group:
        names.update(p.name for p in list_plugins(k.group))
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def _import_dotted(ref: str, kind: str, path: str | None) -> Any:
    module_name, _, attr = ref.rpartition(":") if ":" in ref else ref.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001  # any error while importing the user's module is bad input, shown as is
        raise ConfigError(
            f"Cannot import module '{module_name}' for {kind} '{ref}': {type(exc).__name__}: {exc}", path
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        public = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"Module '{module_name}' has no attribute '{attr}' for {kind} '{ref}'.{did_you_mean(attr, public)}", path
        ) from None


def resolve(kind: str, ref: Any, path: str | None = None) -> Any:
    """Return the class or function that ``ref`` names for component ``kind``.

    Raises:
        ConfigError: Unknown name (with suggestions and installed names), ambiguous bare name, or a
            dotted path whose module does not import (with that module's error).
    """
    k = _kind(kind)
    path = path or kind
    if not isinstance(ref, str):
        if callable(ref):
            return ref
        raise ConfigError(f"Expected a {kind} name, dotted path or class, got {type(ref).__name__} {ref!r}.", path)
    if ref in _REGISTERED[k.name]:
        return _REGISTERED[k.name][ref]
    if k.group:
        plugins = list_plugins(k.group)
        if any(p.name == ref for p in plugins) or match_qualified(ref, plugins) is not None:
            try:
                return select_plugin(k.group, ref, plugins).load()
            except DuplicatePluginError as exc:
                raise ConfigError(str(exc), path) from exc
    if "." in ref or ":" in ref:
        return _import_dotted(ref, kind, path)
    hits: list[tuple[str, Any]] = []
    candidates = set(_REGISTERED[k.name])
    if k.group:
        candidates.update(p.name for p in list_plugins(k.group))
    for module_name in k.default_modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        public = [n for n in dir(module) if not n.startswith("_")]
        candidates.update(public)
        if ref in public:
            hits.append((module_name, getattr(module, ref)))
    if len(hits) > 1:
        where = ", ".join(f"{m}.{ref}" for m, _ in hits)
        raise ConfigError(f"Ambiguous {kind} '{ref}': found {where}. Write the full dotted path.", path)
    if hits:
        return hits[0][1]
    installed = sorted(n for n in candidates if n[:1].isupper() or n in _REGISTERED[k.name] or k.group)
    hint = did_you_mean(ref, installed)
    listing = ", ".join(installed[:25]) + (", ..." if len(installed) > 25 else "")
    message = f"Unknown {kind} '{ref}' at {path}.{hint} Installed: {listing or 'none'}."
    if k.group:
        provider = KNOWN_PROVIDERS.get(k.group, {}).get(ref)
        if provider and not any(p.distribution == provider for p in list_plugins(k.group)):
            message += f" '{ref}' is provided by {provider}: pip install {provider}."
        message += f" Plugins come from the '{k.group}' entry-point group."
    missing = [m for m in k.default_modules if m.split(".")[0] not in _importable_roots(k.default_modules)]
    if missing:
        message += f" Not installed, so not searched: {', '.join(missing)}."
    raise ConfigError(message + " A dotted path (package.module.Class) or @register also work.", path)


def _importable_roots(modules: tuple[str, ...]) -> set[str]:
    return {m.split(".")[0] for m in modules if importlib.util.find_spec(m.split(".")[0]) is not None}


def build(kind: str, component: Any, path: str | None = None, *args: Any, **extra: Any) -> Any:
    """Resolve and instantiate a component written ``{name: ..., cfg: {...}}`` or as a bare name.

    Nested components are built first, depth first: a mapping anywhere inside ``cfg`` (also inside
    lists) whose keys are exactly ``name`` and ``cfg`` is a component, unless the target annotates
    that argument as a ``dict``/``Mapping`` (then it is data) or lists it in its ``lcv_spec_arguments``
    attribute (then the target builds it itself, e.g. an optimizer that needs the parameters). Its
    kind is the argument's name when that names a kind (``model``, ``criterion``; plurals such as
    ``metrics`` too); otherwise its ``name`` must be a dotted path or a name registered (or an entry
    point) in exactly one kind. A mapping with other keys, or with ``name`` but no ``cfg``, is data
    and passed on unchanged.

    Args:
        kind: The component kind.
        component: A bare name, a ``{name, cfg}`` mapping, a pydantic ``Component`` or a class.
        path: The config path, for messages.
        *args: Positional arguments the caller provides (``params`` for an optimizer).
        **extra: Keyword arguments the caller provides in addition to ``cfg``.
    """
    path = path or kind
    name, cfg = split_component(component, path)
    target = resolve(
        kind, name, f"{path}.name" if isinstance(component, Mapping) or hasattr(component, "cfg") else path
    )
    merged = {**cfg, **extra}
    if inspect.isclass(target) or inspect.isfunction(target):
        positional = tuple(n for n, _ in positional_params(target)[: len(args)])
        check_arguments(target, merged, kind, path, provided=positional)
    data_args = data_arguments(target) | set(getattr(target, SPEC_ARGUMENTS, ()))
    for key, value in cfg.items():
        if key not in data_args:
            merged[key] = _build_nested(value, _kind_of_argument(key), f"{path}.cfg.{key}")
    try:
        return target(*args, **merged)
    except LcvError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Cannot build {kind} '{name}': {type(exc).__name__}: {exc}", path) from exc


def _build_nested(value: Any, kind: str | None, path: str) -> Any:
    if is_component(value):
        if kind is None:
            kind, target = resolve_any(value["name"], f"{path}.name")
        else:
            target = resolve(kind, value["name"], f"{path}.name")
        return build(kind, {"name": target, "cfg": value["cfg"] or {}}, path)
    if isinstance(value, list | tuple):
        return type(value)(_build_nested(v, kind, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Mapping):
        return {k: _build_nested(v, kind, f"{path}.{k}") for k, v in value.items()}
    return value


def _kind_of_argument(key: str) -> str | None:
    for candidate in (key, key.removesuffix("s"), key.removesuffix("es")):
        if candidate in KINDS:
            return candidate
    return {"loss": "criterion", "scheduler": "lr_scheduler", "net": "model", "network": "model"}.get(key)


def resolve_any(ref: Any, path: str) -> tuple[str, Any]:
    """Return ``(kind, target)`` of a nested component's name whose kind is unknown.

    The name is a dotted path (kind ``model``, the generic one) or a name in exactly one kind.

    Raises:
        ConfigError: The name is in no kind's registry or entry points, or in several.
    """
    if not isinstance(ref, str) or "." in ref or ":" in ref:
        return "model", resolve("model", ref, path)
    hits = [k.name for k in KINDS.values() if ref in _REGISTERED[k.name]]
    hits += [k.name for k in KINDS.values() if k.group and k.name not in hits and ref in registered_names(k.name)]
    groups = {KINDS[h].group for h in hits}
    if len(hits) > 1 and not (len(groups) == 1 and None not in groups):
        raise ConfigError(f"Ambiguous component '{ref}': it is a {', a '.join(hits)}. Write its dotted path.", path)
    if not hits:
        known = sorted({n for k in KINDS for n in _REGISTERED[k]})
        raise ConfigError(
            f"Unknown component '{ref}'.{did_you_mean(ref, known)} A nested component under an argument that "
            "names no component kind needs a dotted path (package.module.Class) or a registered name.",
            path,
        )
    return hits[0], resolve(hits[0], ref, path)


__all__ = [
    "KINDS",
    "SPEC_ARGUMENTS",
    "Kind",
    "build",
    "check_arguments",
    "closest",
    "is_component",
    "register",
    "registered_names",
    "resolve",
    "resolve_any",
    "split_component",
    "unregister",
]
