"""Check an object against a plugin protocol without calling it, shared by the conformance suites."""

from __future__ import annotations

import inspect
from typing import Any

_PROTOCOL_INTERNALS = {"_is_protocol", "_is_runtime_protocol"}


def missing_members(obj: Any, protocol: type) -> list[str]:
    """Return the members of ``protocol`` that ``obj`` lacks, looked up statically (no property is evaluated)."""
    members = [n for n in vars(protocol) if not n.startswith("_") and n not in _PROTOCOL_INTERNALS]
    members += list(getattr(protocol, "__annotations__", {}))
    missing = []
    for name in dict.fromkeys(members):
        try:
            inspect.getattr_static(obj, name)
        except AttributeError:
            missing.append(name)
    return missing
