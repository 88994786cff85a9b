"""A checkpoint is data: its embedded config may name only what installed plugins or ``register`` provide.

``lcv test``, ``lcv predict`` and ``lcv cv --resume`` rebuild the experiment from the config stored in a checkpoint.
A config file is code its author chose to run (its dotted paths are imported and called); a checkpoint someone sent
you is not, so before anything is built every string in the embedded config that reads as a dotted path
(``package.module.attr`` or ``package.module:attr``) must be one of:

- a name registered with ``register`` or by an installed plugin's entry point (also an entry point's own target,
  ``lcv_core.learners:SupervisedLearner``, and the import path of a registered or plugin object, which is how
  ``dump_config`` writes an object given from Python);
- an attribute of a module that bare names are looked up in (``torch.nn.CrossEntropyLoss``, ``torch.optim.Adam``).

Anything else is refused, with its config path and the two ways to allow it: ``--trust-checkpoint`` (Python:
``trust_checkpoint=True``), as ``trust_remote_code`` does in Hugging Face, or making the class a plugin. The check
imports nothing the checkpoint names; values the user overrides on the command line are the user's own and not checked.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?", re.ASCII)

TRUST_FLAG = "--trust-checkpoint"
"""The command-line flag that lets a checkpoint's config import and call any dotted path."""


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}.{i}" if path else str(i))


def _module_of(name: str) -> str:
    return name.rpartition(":")[0] if ":" in name else name.rpartition(".")[0]


def _importable_top(name: str) -> bool:
    top = name.split(":")[0].split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None  # a top-level name: finds, imports nothing
    except (ImportError, ValueError):
        return False


def _dotted_candidates(data: Any, skip: Iterable[str]) -> list[tuple[str, str]]:
    """Every ``(config path, value)`` that reads as a dotted path into an installed package, outside ``skip``."""
    skipped = tuple(skip)
    out = []
    for path, value in _strings(data, ""):
        if any(path == s or path.startswith(f"{s}.") for s in skipped):
            continue
        if ("." in value or ":" in value) and _DOTTED.fullmatch(value) and _importable_top(value):
            out.append((path, value))
    return out


def _trusted_names() -> tuple[set[str], set[str]]:
    """Return the names plugins and ``register`` provide, and the modules bare names are looked up in."""
    from lcv_config.plugins import list_all_plugins
    from lcv_config.registry import KINDS, registered_names

    names = {n for kind in KINDS for n in registered_names(kind)}
    groups = sorted({k.group for k in KINDS.values() if k.group} | {"lcv.models"})
    for plugins in list_all_plugins(groups).values():
        for plugin in plugins:
            names |= {plugin.value, plugin.value.replace(":", ".")}
    modules = {m for k in KINDS.values() for m in k.default_modules}
    return names, modules


def _object_paths(tops: set[str]) -> set[str]:
    """Return the import paths (``module.qualname``) of registered and plugin objects in the packages ``tops``.

    Only installed plugins are loaded (whose packages the user installed); nothing the checkpoint names is imported.
    """
    from lcv_config.plugins import list_all_plugins
    from lcv_config.registry import KINDS, registered_names, resolve

    objects: list[Any] = []
    groups = sorted({k.group for k in KINDS.values() if k.group} | {"lcv.models"})
    entry_points = set()
    for plugins in list_all_plugins(groups).values():
        for plugin in plugins:
            entry_points.add(plugin.name)
            if plugin.value.split(":")[0].split(".")[0] in tops:
                try:
                    objects.append(plugin.load())
                except Exception:  # noqa: BLE001, S112  # a broken plugin provides nothing; it is reported elsewhere
                    continue
    for kind in KINDS:
        for name in registered_names(kind):
            if name not in entry_points:
                objects.append(resolve(kind, name))  # registered in this process: already imported
    paths = set()
    for obj in objects:
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            paths |= {f"{module}.{qualname}", f"{module}:{qualname}"}
    return paths


def untrusted_paths(data: Any, skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Return ``(config path, dotted path)`` for every dotted path in ``data`` that no plugin or ``register`` provides.

    Args:
        data: The embedded config as plain data (``ExperimentConfig.model_dump()``).
        skip: Config paths (``model.name``, ``callbacks.0``) the user set on the command line: not checked.
    """
    candidates = _dotted_candidates(data, skip)
    if not candidates:
        return []
    names, modules = _trusted_names()
    left = [(p, v) for p, v in candidates if v not in names and _module_of(v) not in modules]
    if left:
        known = _object_paths({v.split(":")[0].split(".")[0] for _, v in left})
        left = [(p, v) for p, v in left if v not in known]
    return left


def override_keys(overrides: Sequence[str]) -> list[str]:
    """Return the config paths ``key=value`` overrides set (``callbacks.0.cfg.patience``)."""
    return [o.partition("=")[0].strip() for o in overrides if "=" in o]


def check_trusted(config: Any, source: str | Path, overrides: Sequence[str] = (), *, trust: bool = False) -> None:
    """Refuse a checkpoint's config that names a dotted path no installed plugin or ``register`` provides.

    Args:
        config: The experiment config rebuilt from the checkpoint (with the user's overrides applied).
        source: The checkpoint, for the message.
        overrides: The user's ``key=value`` overrides; the paths they set are the user's own and not checked.
        trust: Allow every dotted path (``--trust-checkpoint`` / ``trust_checkpoint=True``).

    Raises:
        LcvError: Naming each refused dotted path with its config path, and how to allow it.
    """
    if trust:
        return
    from lcv_config import LcvError

    data = config.model_dump(mode="python") if hasattr(config, "model_dump") else config
    refused = untrusted_paths(data, override_keys(overrides))
    if not refused:
        return
    listing = ", ".join(f"{path} = {value!r}" for path, value in refused)
    raise LcvError(
        f"The config embedded in checkpoint {source} names dotted paths that no installed plugin or register() "
        f"provides: {listing}. Rebuilding the run would import and call them, and a checkpoint is data, not code. "
        f"If you trust where this checkpoint comes from as you would trust its code, pass {TRUST_FLAG} (Python: "
        "load_models(..., trust_checkpoint=True)); or make the class a plugin (an entry point in an lcv.* group, or "
        "lcv_config.register in a package you import), so it is found by name."
    )


def add_trust_flag(parser: Any) -> None:
    """Add ``--trust-checkpoint`` to a command that rebuilds a run from a checkpoint's embedded config."""
    parser.add_argument(
        TRUST_FLAG,
        action="store_true",
        help="let the checkpoint's embedded config import and call any dotted path (only for checkpoints you trust "
        "as you would trust their code); without it only names of installed plugins and register() are built",
    )
