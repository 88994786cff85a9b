"""Find and load plugins through entry points.

Listing a group reads installed metadata only; it never imports a plugin. Loading a name imports
that one plugin. Errors name the plugin, the distributions involved and what is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lcv_config.errors import DuplicatePluginError, PluginImportError, UnknownPluginError, did_you_mean
from lcv_config.groups import GROUPS, KNOWN_PROVIDERS, short_name


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

    A name registered by two distributions appears twice; loading it is an error.
    """
    return _scan((group,))[group]


def list_all_plugins(groups: Iterable[str] = GROUPS) -> dict[str, list[PluginInfo]]:
    """List the plugins of several groups (default: every lcv group) in one pass, without importing any."""
    return _scan(tuple(groups))


def find_plugin(group: str, name: str) -> PluginInfo:
    """Return the description of plugin ``name`` in ``group`` without importing it.

    Raises:
        UnknownPluginError: Nothing of that name is installed; the message suggests close names,
            lists the installed ones and names the distribution that provides it, if known.
        DuplicatePluginError: Two distributions register the name.
    """
    plugins = list_plugins(group)
    return select_plugin(group, name, plugins)


def select_plugin(group: str, name: str, plugins: list[PluginInfo]) -> PluginInfo:
    """Return plugin ``name`` out of an existing listing of ``group``; see `find_plugin()` for the errors."""
    matches = [p for p in plugins if p.name == name]
    if len(matches) > 1:
        owners = " and ".join(f"{p.distribution} {p.version} ({p.value})" for p in matches)
        raise DuplicatePluginError(
            f"The {kind_name(group)} '{name}' is registered twice in {group}: by {owners}. "
            "Uninstall one of them, or refer to the class by its dotted path."
        )
    if matches:
        return matches[0]
    raise UnknownPluginError(unknown_message(group, name, sorted({p.name for p in plugins})))


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

    Returns:
        The loaded objects by name, and the errors by name of those that failed.
    """
    loaded: dict[str, Any] = {}
    failed: dict[str, PluginImportError] = {}
    plugins = list_plugins(group)
    for name in sorted({p.name for p in plugins}):
        try:
            loaded[name] = select_plugin(group, name, plugins).load()
        except PluginImportError as exc:
            failed[name] = exc
        except DuplicatePluginError as exc:
            failed[name] = PluginImportError(str(exc))
    return loaded, failed
