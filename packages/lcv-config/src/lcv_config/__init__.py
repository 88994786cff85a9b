"""The contracts every lcv package meets through, the registry, the experiment config and the ``lcv`` command.

lcv-config never imports torch.

Public names are imported on first access (PEP 562), so that importing one light module (the
command line, the plugin loader) does not pay for pydantic and PyYAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lcv_config.__about__ import __version__

if TYPE_CHECKING:
    from lcv_config.checking import check_names
    from lcv_config.errors import (
        ConfigError,
        ConfigProblem,
        ConfigProblemsError,
        DuplicatePluginError,
        LcvError,
        PluginClashWarning,
        PluginError,
        PluginImportError,
        UnknownPluginError,
    )
    from lcv_config.groups import (
        CALLBACKS,
        COMMANDS,
        DATAMODULES,
        GROUPS,
        LEARNERS,
        LOGGERS,
        MODELS,
        SPLITTERS,
        TRANSFORMS,
        TUNERS,
    )
    from lcv_config.loading import dump_config, load_config, load_dict
    from lcv_config.plugins import PluginInfo, find_plugin, list_plugins, load_plugin, load_plugins
    from lcv_config.protocols import (
        Command,
        FittedTransform,
        FoldDataSource,
        Logger,
        Objective,
        Splitter,
        Transform,
        Trial,
        TrialPruned,
        Tuner,
    )
    from lcv_config.registry import (
        SPEC_ARGUMENTS,
        build,
        check_arguments,
        is_component,
        register,
        registered_names,
        resolve,
        resolve_any,
    )
    from lcv_config.renamed import RENAMED_OPTIONS, RenamedOption
    from lcv_config.schema import (
        Component,
        CrossValidationTrainerConfig,
        DataConfig,
        ExperimentConfig,
        TrainerConfig,
        TuneConfig,
    )
    from lcv_config.space import parse_space

_LAZY: dict[str, str] = {
    "check_names": "lcv_config.checking",
    "ConfigError": "lcv_config.errors",
    "ConfigProblem": "lcv_config.errors",
    "ConfigProblemsError": "lcv_config.errors",
    "DuplicatePluginError": "lcv_config.errors",
    "LcvError": "lcv_config.errors",
    "PluginClashWarning": "lcv_config.errors",
    "PluginError": "lcv_config.errors",
    "PluginImportError": "lcv_config.errors",
    "UnknownPluginError": "lcv_config.errors",
    "CALLBACKS": "lcv_config.groups",
    "COMMANDS": "lcv_config.groups",
    "DATAMODULES": "lcv_config.groups",
    "GROUPS": "lcv_config.groups",
    "LEARNERS": "lcv_config.groups",
    "LOGGERS": "lcv_config.groups",
    "MODELS": "lcv_config.groups",
    "SPLITTERS": "lcv_config.groups",
    "TRANSFORMS": "lcv_config.groups",
    "TUNERS": "lcv_config.groups",
    "dump_config": "lcv_config.loading",
    "load_config": "lcv_config.loading",
    "load_dict": "lcv_config.loading",
    "PluginInfo": "lcv_config.plugins",
    "find_plugin": "lcv_config.plugins",
    "list_plugins": "lcv_config.plugins",
    "load_plugin": "lcv_config.plugins",
    "load_plugins": "lcv_config.plugins",
    "Command": "lcv_config.protocols",
    "FittedTransform": "lcv_config.protocols",
    "FoldDataSource": "lcv_config.protocols",
    "Logger": "lcv_config.protocols",
    "Objective": "lcv_config.protocols",
    "Splitter": "lcv_config.protocols",
    "Transform": "lcv_config.protocols",
    "Trial": "lcv_config.protocols",
    "TrialPruned": "lcv_config.protocols",
    "Tuner": "lcv_config.protocols",
    "RENAMED_OPTIONS": "lcv_config.renamed",
    "RenamedOption": "lcv_config.renamed",
    "SPEC_ARGUMENTS": "lcv_config.registry",
    "build": "lcv_config.registry",
    "check_arguments": "lcv_config.registry",
    "is_component": "lcv_config.registry",
    "register": "lcv_config.registry",
    "registered_names": "lcv_config.registry",
    "resolve": "lcv_config.registry",
    "resolve_any": "lcv_config.registry",
    "Component": "lcv_config.schema",
    "CrossValidationTrainerConfig": "lcv_config.schema",
    "DataConfig": "lcv_config.schema",
    "ExperimentConfig": "lcv_config.schema",
    "TrainerConfig": "lcv_config.schema",
    "TuneConfig": "lcv_config.schema",
    "parse_space": "lcv_config.space",
}
"""Where each public name lives; imported on first access (PEP 562) so ``lcv --help`` stays fast."""

__all__ = [
    "CALLBACKS",
    "COMMANDS",
    "DATAMODULES",
    "GROUPS",
    "LEARNERS",
    "LOGGERS",
    "MODELS",
    "RENAMED_OPTIONS",
    "SPEC_ARGUMENTS",
    "SPLITTERS",
    "TRANSFORMS",
    "TUNERS",
    "Command",
    "Component",
    "ConfigError",
    "ConfigProblem",
    "ConfigProblemsError",
    "CrossValidationTrainerConfig",
    "DataConfig",
    "DuplicatePluginError",
    "ExperimentConfig",
    "FittedTransform",
    "FoldDataSource",
    "LcvError",
    "Logger",
    "Objective",
    "PluginClashWarning",
    "PluginError",
    "PluginImportError",
    "PluginInfo",
    "RenamedOption",
    "Splitter",
    "TrainerConfig",
    "Transform",
    "Trial",
    "TrialPruned",
    "TuneConfig",
    "Tuner",
    "UnknownPluginError",
    "__version__",
    "build",
    "check_arguments",
    "check_names",
    "dump_config",
    "find_plugin",
    "is_component",
    "list_plugins",
    "load_config",
    "load_dict",
    "load_plugin",
    "load_plugins",
    "parse_space",
    "register",
    "registered_names",
    "resolve",
    "resolve_any",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lcv_config' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
