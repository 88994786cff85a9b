"""Find and load plugins through entry points.

Listing a group reads installed metadata only; it never imports a plugin. Loading a name imports
that one plugin. Errors name the plugin, the distributions involved and what is installed.

A name that several distributions register is reachable as ``distribution:name``; the bare name means lcv's own
plugin (with a [`PluginClashWarning`][lcv_config.PluginClashWarning]) and, between third parties, is an error naming
both.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lcv_config.errors import (
    DuplicatePluginError,
    PluginClashWarning,
    PluginImportError,
    UnknownPluginError,
    did_you_mean,
)
from lcv_config.groups import GROUPS, KNOWN_PROVIDERS, is_first_party, normalize_distribution, short_name


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of an lcv group, described without importing it."""

    group: str
    """The entry-point group (``lcv.splitters``)."""
    name: str
    """The registered name (``kfold``)."""
    value: str
    """The import target, ``module:attribute``."""
    distribution: str
    """The distribution that registers it (``lcv-data``)."""
    version: str
    """That distribution's version."""

    def load(self) -> Any:
        """Import and return the registered object.

        Raises:
            PluginImportError: The plugin's module raised on import or lacks the attribute.
        """
        entry = metadata.EntryPoint(name=self.name, value=self.value, group=self.group)
        try:
            return entry.load()
        except Exception as exc:
            raise PluginImportError(
                f"Plugin '{self.name}' in group {self.group} (from {self.distribution} {self.version}, "
                f"target {self.value}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc


def kind_name(group: str) -> str:
    """Return the singular noun for a group's members (``lcv.splitters`` -> ``splitter``)."""
    return short_name(group).removesuffix("s")


def _scan(groups: tuple[str, ...]) -> dict[str, list[PluginInfo]]:
    # Only entry_points.txt is read for every distribution; METADATA (name, version), which is much slower to
    # parse, is read only for the few distributions that register something in these groups.
    found: dict[str, list[PluginInfo]] = {g: [] for g in groups}
    seen: set[tuple[str, str, str]] = set()
    for dist in metadata.distributions():
        entries = [e for e in dist.entry_points if e.group in found]
        if not entries:
            continue
        dist_name = dist.metadata["Name"] or "?"
        version = dist.version
        for entry in entries:
            key = (entry.group, dist_name, entry.name)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            found[entry.group].append(PluginInfo(entry.group, entry.name, entry.value, dist_name, version))
    return {g: sorted(ps, key=lambda p: (p.name, p.distribution)) for g, ps in found.items()}


def list_plugins(group: str) -> list[PluginInfo]:
    """List every plugin registered in ``group``, sorted by name, without importing any.

    A name registered by two distributions appears twice (see [`find_plugin()`][lcv_config.find_plugin] for which
    one the bare name means).
    """
    return _scan((group,))[group]


def list_all_plugins(groups: Iterable[str] = GROUPS) -> dict[str, list[PluginInfo]]:
    """List the plugins of several groups (default: every lcv group) in one pass, without importing any."""
    return _scan(tuple(groups))


def find_plugin(group: str, name: str) -> PluginInfo:
    """Return the description of plugin ``name`` in ``group`` without importing it.

    ``name`` is a registered name (``stratified_kfold``) or a qualified one, ``distribution:name``
    (``my-plugins:stratified_kfold``), which picks one distribution's plugin when several register the name.
    A bare name that lcv's own package and a third party both register means lcv's own plugin: a
    [`PluginClashWarning`][lcv_config.PluginClashWarning] names the other distribution (once per process).

    Raises:
        UnknownPluginError: Nothing of that name is installed; the message suggests close names,
            lists the installed ones and names the distribution that provides it, if known.
        DuplicatePluginError: Two third-party distributions register the bare name; the message names both and
            their qualified names.
    """
    plugins = list_plugins(group)
    return select_plugin(group, name, plugins)


def qualified_name(plugin: PluginInfo) -> str:
    """Return ``distribution:name``, the name that picks this plugin even when another distribution registers it."""
    return f"{plugin.distribution}:{plugin.name}"


def split_qualified(ref: str) -> tuple[str, str] | None:
    """Return ``(distribution, name)`` of a reference written ``distribution:name``, else ``None``.

    A dotted path written ``package.module:Class`` has the same shape; callers try the plugin first.
    """
    distribution, sep, name = ref.partition(":")
    if not sep or not distribution or not name or ":" in name or "." in name:
        return None
    return distribution, name


def match_qualified(ref: str, plugins: Iterable[PluginInfo]) -> PluginInfo | None:
    """Return the plugin a ``distribution:name`` reference picks out of ``plugins`` (names normalised), if any."""
    parts = split_qualified(ref)
    if parts is None:
        return None
    distribution, name = normalize_distribution(parts[0]), parts[1]
    for plugin in plugins:
        if plugin.name == name and normalize_distribution(plugin.distribution) == distribution:
            return plugin
    return None


def clashes(plugins: Iterable[PluginInfo]) -> dict[str, list[PluginInfo]]:
    """Return the names that several distributions register, each with its plugins (sorted by distribution)."""
    by_name: dict[str, list[PluginInfo]] = {}
    for plugin in plugins:
        by_name.setdefault(plugin.name, []).append(plugin)
    return {n: sorted(ps, key=lambda p: p.distribution) for n, ps in by_name.items() if len(ps) > 1}


def preferred(plugins: Sequence[PluginInfo]) -> PluginInfo | None:
    """Return the plugin a bare name means among ``plugins`` that share it: the only one, or lcv's own; else ``None``.

    ``None`` means the bare name is ambiguous (two third parties): only the qualified names resolve.
    """
    if len(plugins) == 1:
        return plugins[0]
    own = [p for p in plugins if is_first_party(p.distribution)]
    return own[0] if len(own) == 1 else None


def display_name(plugin: PluginInfo, plugins: Iterable[PluginInfo]) -> str:
    """Return the name that reaches ``plugin`` from a config or the command line: bare unless another wins it."""
    sharing = [p for p in plugins if p.name == plugin.name]
    return plugin.name if preferred(sharing) == plugin else qualified_name(plugin)


_WARNED: set[tuple[str, str]] = set()


def select_plugin(group: str, name: str, plugins: list[PluginInfo]) -> PluginInfo:
    """Return plugin ``name`` out of an existing listing of ``group``; see `find_plugin()` for the rules and errors."""
    qualified = match_qualified(name, plugins)
    if qualified is not None:
        return qualified
    matches = [p for p in plugins if p.name == name]
    if not matches:
        parts = split_qualified(name)
        if parts is not None and any(p.name == parts[1] for p in plugins):
            known = sorted(qualified_name(p) for p in plugins if p.name == parts[1])
            raise UnknownPluginError(
                f"No distribution '{parts[0]}' registers the {kind_name(group)} '{parts[1]}' in {group}."
                f"{did_you_mean(name, known)} Registered by: {', '.join(known)}."
            )
        raise UnknownPluginError(unknown_message(group, name, sorted({p.name for p in plugins})))
    chosen = preferred(matches)
    if chosen is None:
        owners = " and ".join(f"{p.distribution} {p.version} ({p.value})" for p in matches)
        forms = " or ".join(f"'{qualified_name(p)}'" for p in matches)
        raise DuplicatePluginError(
            f"The {kind_name(group)} '{name}' is registered by {len(matches)} distributions in {group}: {owners}. "
            f"Write {forms} to pick one, or uninstall one of them."
        )
    if len(matches) > 1 and (group, name) not in _WARNED:
        _WARNED.add((group, name))
        others = [p for p in matches if p is not chosen]
        warnings.warn(
            f"'{name}' ({group}) is also registered by {', '.join(p.distribution for p in others)}; using "
            f"{chosen.distribution}'s. Write {' or '.join(repr(qualified_name(p)) for p in others)} for the other.",
            PluginClashWarning,
            stacklevel=3,
        )
    return chosen


def unknown_message(group: str, name: str, installed: list[str], noun: str | None = None) -> str:
    """Build the message for an unknown name: suggestion, installed names, and which package provides it."""
    noun = noun or kind_name(group)
    message = f"Unknown {noun} '{name}'.{did_you_mean(name, installed)}"
    message += f" Installed: {', '.join(installed)}." if installed else f" No {short_name(group)} are installed."
    providers = KNOWN_PROVIDERS.get(group, {})
    provider = providers.get(name) or (providers.get("*") if not installed else None)
    if provider:
        message += f" '{name}' is provided by {provider}: pip install {provider}"
    return message


def load_plugin(group: str, name: str) -> Any:
    """Import and return plugin ``name`` of ``group``.

    Raises:
        UnknownPluginError: See [`find_plugin()`][lcv_config.find_plugin].
        DuplicatePluginError: See [`find_plugin()`][lcv_config.find_plugin].
        PluginImportError: The plugin raised on import.
    """
    return find_plugin(group, name).load()


def load_plugins(group: str) -> tuple[dict[str, Any], dict[str, PluginImportError]]:
    """Import every plugin of ``group``; one that fails is reported, the others still load.

    A name several distributions register is loaded from each, under its qualified name
    (``distribution:name``), and under the bare name too when lcv's own package is among them.

    Returns:
        The loaded objects by name, and the errors by name of those that failed.
    """
    loaded: dict[str, Any] = {}
    failed: dict[str, PluginImportError] = {}
    plugins = list_plugins(group)
    shared = clashes(plugins)
    for name in sorted({p.name for p in plugins}):
        for plugin in shared.get(name, []):
            try:
                loaded[qualified_name(plugin)] = plugin.load()
            except PluginImportError as exc:
                failed[qualified_name(plugin)] = exc
        chosen = preferred(shared.get(name) or [p for p in plugins if p.name == name])
        if chosen is None:
            try:
                select_plugin(group, name, plugins)
            except DuplicatePluginError as exc:
                failed[name] = PluginImportError(str(exc))
            continue
        key = qualified_name(chosen) if name in shared else None
        if key is not None and key in loaded:
            loaded[name] = loaded[key]
        elif key is not None and key in failed:
            failed[name] = failed[key]
        else:
            try:
                loaded[name] = chosen.load()
            except PluginImportError as exc:
                failed[name] = exc
    return loaded, failed
