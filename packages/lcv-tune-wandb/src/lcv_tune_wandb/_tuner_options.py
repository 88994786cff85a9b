"""Turn the W&B tuner's arguments (mode, sampler, pruner, space) into what the sweep engine takes, or a ConfigError."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcv_config import ConfigError
from lcv_config.errors import did_you_mean
from lcv_config.space import CategoricalParam, FloatParam, IntParam
from lcv_tune_wandb.sweep_config import METHODS

MODES = ("auto", "local", "online")
"""``local``: the ``sweeps`` engine proposes runs, each an offline W&B run; ``online``: W&B's hosted sweep controller
and agent; ``auto``: online when an API key is configured and ``WANDB_MODE`` is not offline, else local."""


def plain(value: Any) -> Any:
    """Turn numpy scalars the engine proposes into Python values (JSON, YAML and configs want those)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (list, dict, str)) else value


def sweep_method(sampler: Any) -> str:
    """Return the sweep method a ``sampler`` names (a name, ``{name: ...}`` or an object with ``name``)."""
    name = sampler if isinstance(sampler, str) else (sampler.get("name") if isinstance(sampler, Mapping) else None)
    name = name if name is not None else getattr(sampler, "name", None)
    if not isinstance(name, str) or name.lower() not in METHODS:
        raise ConfigError(
            f"Unknown W&B sweep method {name!r}.{did_you_mean(str(name), METHODS)} Available: {', '.join(METHODS)}.",
            "tune.sampler",
        )
    return name.lower()


def early_terminate(pruner: Any) -> dict[str, Any]:
    """Return the sweep config's ``early_terminate`` entry for a ``pruner`` (hyperband only)."""
    name: Any
    cfg: dict[str, Any]
    if isinstance(pruner, str):
        name, cfg = pruner, {}
    elif isinstance(pruner, Mapping):
        name, cfg = pruner.get("name"), dict(pruner.get("cfg") or {})
    else:
        name, cfg = getattr(pruner, "name", None), dict(getattr(pruner, "cfg", None) or {})
    if str(name).lower() != "hyperband":
        raise ConfigError(
            f"Unknown W&B early-termination {name!r}.{did_you_mean(str(name), ['hyperband'])} Available: hyperband.",
            "tune.pruner",
        )
    return {"type": "hyperband", **cfg}


def is_parsed(space: Mapping[str, Any]) -> bool:
    """Return whether ``space`` is already parsed (every value a parameter object)."""
    return bool(space) and all(isinstance(p, (FloatParam, IntParam, CategoricalParam)) for p in space.values())


def resolve_tuner_mode(mode: str) -> str:
    """Resolve the ``mode`` option to ``local`` or ``online``."""
    if mode not in MODES:
        raise ConfigError(
            f"Unknown W&B tuner mode {mode!r}.{did_you_mean(mode, MODES)} Valid: {', '.join(MODES)}.",
            "tune.options.mode",
        )
    env = os.environ.get("WANDB_MODE", "").lower()
    if mode == "auto":
        online = bool(os.environ.get("WANDB_API_KEY")) and env not in ("offline", "dryrun", "disabled")
        return "online" if online else "local"
    if mode == "online" and not os.environ.get("WANDB_API_KEY") and not _netrc_has_wandb():
        raise ConfigError(
            "mode: online runs W&B's hosted sweep controller and needs an account: set WANDB_API_KEY or run "
            "'wandb login'. Without one, use mode: local (offline runs that 'wandb sync' uploads later).",
            "tune.options.mode",
        )
    return mode


def _netrc_has_wandb() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False
