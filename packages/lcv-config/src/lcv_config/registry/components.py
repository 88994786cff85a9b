"""How a component is written in a config: ``{name: ..., cfg: {...}}``, a bare name, a class or a function."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lcv_config.errors import ConfigError


def is_component(value: Any) -> bool:
    """Return whether ``value`` is written as a nested component: a mapping with exactly ``name`` and ``cfg``."""
    return (
        isinstance(value, Mapping)
        and set(value) == {"name", "cfg"}
        and isinstance(value["name"], str)
        and isinstance(value["cfg"], Mapping | None)
    )


def split_component(component: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """Return ``(name, cfg)`` of a component reference in any accepted form."""
    if isinstance(component, str) or inspect.isclass(component) or inspect.isfunction(component):
        return component, {}
    if hasattr(component, "name") and hasattr(component, "cfg") and not isinstance(component, Mapping):
        return component.name, dict(component.cfg or {})
    if isinstance(component, Mapping):
        extra = set(component) - {"name", "cfg"}
        if "name" not in component or extra:
            keys = ", ".join(sorted(extra)) or "none"
            raise ConfigError(
                f"A component is written {{name: ..., cfg: {{...}}}}; got keys {sorted(component)} "
                f"(unexpected: {keys}). Put arguments under 'cfg'.",
                path,
            )
        return component["name"], dict(component.get("cfg") or {})
    if callable(component):
        return component, {}
    raise ConfigError(f"Expected a component name or {{name, cfg}}, got {type(component).__name__}.", path)
