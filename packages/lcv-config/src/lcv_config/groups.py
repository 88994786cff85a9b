"""Entry-point group names: the plugin interfaces of lcv."""

from __future__ import annotations

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

GROUPS: tuple[str, ...] = (SPLITTERS, DATAMODULES, TRANSFORMS, LEARNERS, CALLBACKS, LOGGERS, TUNERS, COMMANDS)
"""Every group, in the order ``lcv components`` lists them."""

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    SPLITTERS: {"*": "lcv-data"},
    DATAMODULES: {"*": "lcv-data"},
    TRANSFORMS: {"*": "lcv-data"},
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
