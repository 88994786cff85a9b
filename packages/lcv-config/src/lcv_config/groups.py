"""Entry-point group names: the plugin interfaces of lcv."""

from __future__ import annotations

import re

SPLITTERS = "lcv.splitters"
"""Splitter classes (scikit-learn's ``split``/``get_n_splits`` protocol)."""
DATAMODULES = "lcv.datamodules"
"""Datamodule classes and dataset sources."""
TRANSFORMS = "lcv.transforms"
"""Transform classes, including transforms fitted per fold."""
LEARNERS = "lcv.learners"
"""Configurable LightningModules."""
CALLBACKS = "lcv.callbacks"
"""Training-loop callback classes."""
TUNERS = "lcv.tuners"
"""Tuner backends."""
LOGGERS = "lcv.loggers"
"""Experiment loggers (Fabric-compatible: ``log_metrics``, ``log_hyperparams``, ``finalize``)."""
COMMANDS = "lcv.commands"
"""Subcommands of the ``lcv`` command line."""
MODELS = "lcv.models"
"""Networks (plain ``torch.nn.Module`` classes) by name, for a config's ``model``."""

GROUPS: tuple[str, ...] = (
    SPLITTERS,
    DATAMODULES,
    TRANSFORMS,
    MODELS,
    LEARNERS,
    CALLBACKS,
    LOGGERS,
    TUNERS,
    COMMANDS,
)
"""Every group, in the order ``lcv components`` lists them."""

FIRST_PARTY: frozenset[str] = frozenset({"lcv-config", "lcv-core", "lcv-data", "lcv-tune-optuna", "lcv-tune-wandb"})
"""lcv's own distributions: a bare name they register wins over a third party's (with a warning).

A fixed list, not the ``lcv-`` prefix: a third party may publish ``lcv-something`` too.
"""

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    SPLITTERS: {"*": "lcv-data"},
    DATAMODULES: {"*": "lcv-data"},
    TRANSFORMS: {"*": "lcv-data"},
    MODELS: {"mlp": "lcv-core"},
    LEARNERS: {"supervised": "lcv-core"},
    CALLBACKS: {"*": "lcv-core"},
    LOGGERS: {"wandb": "lcv-tune-wandb", "*": "lcv-core"},
    TUNERS: {"optuna": "lcv-tune-optuna", "wandb": "lcv-tune-wandb"},
    COMMANDS: {"cv": "lcv-core", "fit": "lcv-core", "test": "lcv-core", "predict": "lcv-core", "tune": "lcv-core"},
}
"""Which first-party distribution provides a name, for the hint in an unknown-plugin error."""


def short_name(group: str) -> str:
    """Return the group's name without the ``lcv.`` prefix (``lcv.splitters`` -> ``splitters``)."""
    return group.removeprefix("lcv.")


def normalize_distribution(name: str) -> str:
    """Return a distribution name in its normalised form (PEP 503: ``My_Plugins`` -> ``my-plugins``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_first_party(distribution: str) -> bool:
    """Return whether ``distribution`` is one of lcv's own (see [`FIRST_PARTY`][lcv_config.groups.FIRST_PARTY])."""
    return normalize_distribution(distribution) in FIRST_PARTY


def resolve_group(name: str) -> str:
    """Accept ``splitters`` or ``lcv.splitters`` and return the full group name.

    Raises:
        UnknownPluginError: The name is not a group of lcv.
    """
    from lcv_config.errors import UnknownPluginError, did_you_mean

    full = name if name.startswith("lcv.") else f"lcv.{name}"
    if full not in GROUPS:
        shorts = [short_name(g) for g in GROUPS]
        raise UnknownPluginError(
            f"Unknown plugin group '{name}'.{did_you_mean(short_name(full), shorts)} Groups: {', '.join(shorts)}"
        )
    return full
