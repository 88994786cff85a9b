"""Check every name a config holds before anything is built: plugins, torch classes, tuner backend, dotted paths.

[`check_names()`][lcv_config.check_names] returns every problem at once, each with its config path, the closest valid
names and what is installed. Registered names are checked against entry-point metadata only: no plugin is imported. Bare
torch
names (``optimizer.name: Adam``) are checked against lists kept in lcv_config, so no torch import is needed either.
Dotted paths are imported only with ``imports=True`` (``lcv config validate``); without it, only their top-level
package is looked up, which imports nothing.

``lcv cv`` and ``lcv tune`` call it with ``imports=False`` right after loading the config, before torch::

    problems = check_names(config)
    if problems:
        raise ConfigProblemsError(problems, "config.yaml")
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lcv_config._static_names import STATIC_NAMES
from lcv_config.errors import ConfigError, ConfigProblem, did_you_mean
from lcv_config.groups import KNOWN_PROVIDERS, MODELS, short_name
from lcv_config.plugins import PluginInfo, list_all_plugins, match_qualified, preferred, qualified_name
from lcv_config.registry import _REGISTERED, KINDS, _kind_of_argument, resolve
from lcv_config.registry.components import is_component
from lcv_config.schema import Component, ExperimentConfig

MODELS_GROUP = MODELS
"""Entry-point group of networks by name (``lcv.models``); bare model names are checked against it."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class _Reference:
    path: str
    """Config path of the name (``data.splitter.name``)."""
    kind: str | None
    """Component kind; ``None`` for a nested component whose argument names no kind (dotted paths only)."""
    name: str


def check_names(
    config: ExperimentConfig,
    *,
    imports: bool = False,
    plugins: Mapping[str, Sequence[PluginInfo]] | None = None,
) -> list[ConfigProblem]:
    """Return every name in ``config`` that does not resolve, each with its path, closest names and what is installed.

    Checked: ``model``, ``learner``, ``criterion``, ``optimizer``, ``lr_scheduler``, ``data.datamodule``,
    ``data.dataset``, ``data.test_dataset``, ``data.splitter``, every transform, ``callbacks``, ``loggers``,
    ``tune.backend``, and nested ``{name, cfg}`` components inside ``cfg`` whose argument names a kind or whose name
    is a dotted path. Names given as Python objects are not checked.

    Args:
        config: A validated experiment config.
        imports: Import the module of each dotted path and check the attribute exists (this imports torch only when
            that module does); also look a bare name up in torch itself when torch is newer than lcv_config's lists.
            Without it nothing is imported: a dotted path's top-level package must be installed, that is all.
        plugins: The installed plugins per entry-point group (default: read from metadata); tests pass a fake set.

    Returns:
        The problems in config order; empty when every name resolves.
    """
    groups = {g for g in (k.group for k in KINDS.values()) if g}
    listing = {g: list(v) for g, v in (plugins if plugins is not None else list_all_plugins(sorted(groups))).items()}
    problems = []
    for ref in _references(config):
        message = _check(ref, imports, listing)
        if message:
            problems.append(ConfigProblem(ref.path, message))
    return problems


def _references(config: ExperimentConfig) -> Iterator[_Reference]:
    def component(kind: str, value: Any, path: str) -> Iterator[_Reference]:
        if value is None:
            return
        if isinstance(value, Component):
            if isinstance(value.name, str):
                yield _Reference(f"{path}.name", kind, value.name)
            yield from nested(value.cfg, f"{path}.cfg")
        elif isinstance(value, str):
            yield _Reference(path, kind, value)

    def many(kind: str, values: Any, path: str) -> Iterator[_Reference]:
        if isinstance(values, list):
            for i, value in enumerate(values):
                yield from component(kind, value, f"{path}[{i}]")
        else:
            yield from component(kind, values, path)

    def nested(cfg: Any, path: str) -> Iterator[_Reference]:
        items = cfg.items() if isinstance(cfg, Mapping) else enumerate(cfg) if isinstance(cfg, list) else ()
        for key, value in items:
            here = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
            if is_component(value):
                kind = _kind_of_argument(key) if isinstance(key, str) else None
                yield _Reference(f"{here}.name", kind, str(value["name"]))
                yield from nested(value["cfg"] or {}, f"{here}.cfg")
            elif isinstance(value, (Mapping, list)):
                yield from nested(value, here)

    yield from component("model", config.model, "model")
    yield from component("learner", config.learner, "learner")
    yield from component("criterion", config.criterion, "criterion")
    yield from many("optimizer", config.optimizer, "optimizer")
    yield from many("lr_scheduler", config.lr_scheduler, "lr_scheduler")
    data = config.data
    if isinstance(data.datamodule, str):
        yield _Reference("data.datamodule", "datamodule", data.datamodule)
    yield from component("dataset", data.dataset, "data.dataset")
    yield from component("dataset", data.test_dataset, "data.test_dataset")
    yield from component("splitter", data.splitter, "data.splitter")
    for section in ("transforms", "target_transforms"):
        for stage, transforms in getattr(data, section).items():
            yield from many("transform", transforms, f"data.{section}.{stage}")
    yield from many("transform", data.fitted_transforms, "data.fitted_transforms")
    for split, sides in data.batch_transforms.items():
        for side, transforms in sides.items():
            yield from many("transform", transforms, f"data.batch_transforms.{split}.{side}")
    yield from many("callback", config.callbacks, "callbacks")
    yield from many("logger", config.loggers, "loggers")
    if config.tune is not None:
        yield _Reference("tune.backend", "tuner", config.tune.backend)


def _check(ref: _Reference, imports: bool, listing: Mapping[str, list[PluginInfo]]) -> str | None:
    name = ref.name
    module_part, sep, _ = name.partition(":")
    group = KINDS[ref.kind].group if ref.kind else None
    if sep and group and match_qualified(name, listing.get(group, [])) is not None:
        return None  # distribution:name
    if sep and not _IDENTIFIER.match(module_part):
        return _check_qualified(ref, listing)
    if "." in name or sep:
        return _check_dotted(ref, imports)
    if ref.kind is None:
        return None  # a bare nested name of unknown kind: resolved at build time among every kind
    kind = KINDS[ref.kind]
    if name in _REGISTERED.get(kind.name, {}):
        return None
    installed = sorted({p.name for p in listing.get(group, [])}) if group else []
    if name in installed:
        return _check_clash(ref, [p for p in listing.get(group or "", []) if p.name == name])
    if kind.name == "model" and not installed:
        return None  # without an lcv.models plugin installed, networks are known only once their package registers
    return _check_default_modules(ref, kind.name, group, installed, imports)


def _check_default_modules(
    ref: _Reference, kind: str, group: str | None, installed: list[str], imports: bool
) -> str | None:
    name = ref.name
    static = STATIC_NAMES.get(kind)
    modules = KINDS[kind].default_modules
    searched: list[str] = []
    candidates = list(installed) + sorted(_REGISTERED.get(kind, {}))
    if static is not None:
        module, names, distribution, listed_version = static
        if name in names:
            return None
        if _installed(distribution):
            if _newer(distribution, listed_version):  # torch may have gained this class since the list was made
                return _resolve_for_real(ref, kind) if imports else None
            searched.append(module)
        candidates += list(names)
    else:
        for module in modules:
            if not _installed(module.split(".")[0]):
                continue
            if not imports:
                return None  # a torchvision transform, say: known only by importing it, so left to build time
            return _resolve_for_real(ref, kind)
    noun = kind.replace("_", " ")
    pool = candidates if searched or static is None else [n for n in candidates if n not in static[1]]
    shown = sorted(set(pool), key=lambda n: (n not in installed, n.lower()))
    listing = ", ".join(shown[:25]) + (", ..." if len(shown) > 25 else "")
    message = f"Unknown {noun} '{name}' at {ref.path}.{did_you_mean(name, candidates)} Installed: {listing or 'none'}."
    if group:
        providers = KNOWN_PROVIDERS.get(group, {})
        provider = providers.get(name) or (providers.get("*") if not installed else None)
        if provider:
            message += f" '{name}' is provided by {provider}: pip install {provider}."
        message += f" Plugins come from the '{group}' entry-point group ({short_name(group)})."
    missing = [m for m in modules if not _installed(m.split(".")[0])]
    if missing:
        message += f" Not installed, so not searched: {', '.join(missing)}."
    elif searched:
        message += f" Searched: {', '.join(searched)}."
    return message + " A dotted path (package.module.Class) also works."


def _check_clash(ref: _Reference, plugins: list[PluginInfo]) -> str | None:
    if preferred(plugins) is not None:
        return None  # one plugin, or lcv's own among several (the build warns about the others)
    owners = " and ".join(f"{p.distribution} {p.version}" for p in plugins)
    forms = " or ".join(f"'{qualified_name(p)}'" for p in plugins)
    return f"Ambiguous {ref.kind} '{ref.name}' at {ref.path}: registered by {owners}. Write {forms} to pick one."


def _check_qualified(ref: _Reference, listing: Mapping[str, list[PluginInfo]]) -> str | None:
    distribution, _, name = ref.name.partition(":")
    kind = KINDS[ref.kind] if ref.kind else None
    group = kind.group if kind else None
    if group is None:
        return f"'{ref.name}' at {ref.path} is neither a dotted path nor a plugin name; write package.module.Class."
    plugins = listing.get(group, [])
    if match_qualified(ref.name, plugins) is not None:
        return None
    forms = sorted({qualified_name(p) for p in plugins} | {p.name for p in plugins})
    return (
        f"Unknown {kind.name if kind else 'component'} '{ref.name}' at {ref.path}: no distribution "
        f"'{distribution}' registers '{name}' in {group}.{did_you_mean(ref.name, forms)} "
        f"Installed: {', '.join(forms) or 'none'}."
    )


def _check_dotted(ref: _Reference, imports: bool) -> str | None:
    name = ref.name
    module_name = name.rpartition(":")[0] if ":" in name else name.rpartition(".")[0]
    top = module_name.split(".")[0]
    if not _IDENTIFIER.match(module_name or "-"):
        return f"'{name}' at {ref.path} is not a dotted path: write package.module.Class or package.module:Class."
    if not imports:
        if not _installed(top):
            return (
                f"Cannot import '{name}' at {ref.path}: no module named '{top}' is installed. Install the package "
                "that provides it, or fix the path (run from the folder that holds it, or add it to PYTHONPATH)."
            )
        return None
    return _resolve_for_real(ref, ref.kind or "model")


def _resolve_for_real(ref: _Reference, kind: str) -> str | None:
    try:
        resolve(kind, ref.name, ref.path)
    except ConfigError as exc:
        return exc.message
    except Exception as exc:  # noqa: BLE001  # a plugin or module that breaks on import is this config's problem
        return f"Cannot resolve '{ref.name}' at {ref.path}: {type(exc).__name__}: {exc}"
    return None


def _installed(top_level: str) -> bool:
    try:
        return importlib.util.find_spec(top_level) is not None  # a top-level name: finds, imports nothing
    except (ImportError, ValueError):
        return False


def _newer(distribution: str, listed: str) -> bool:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return _release(version) > _release(listed)


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


__all__ = ["MODELS_GROUP", "check_names"]
