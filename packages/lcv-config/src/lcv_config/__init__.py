"""lcv-config: the contracts every lcv package meets through, the component registry, the
validated experiment config and the ``lcv`` command line. It never imports torch."""

from lcv_config.__about__ import __version__
from lcv_config.errors import (
    ConfigError,
    DuplicatePluginError,
    LcvError,
    PluginError,
    PluginImportError,
    UnknownPluginError,
)
from lcv_config.groups import CALLBACKS, COMMANDS, DATAMODULES, GROUPS, LEARNERS, SPLITTERS, TRANSFORMS, TUNERS
from lcv_config.loading import dump_config, load_config, load_dict
from lcv_config.plugins import PluginInfo, find_plugin, list_plugins, load_plugin, load_plugins
from lcv_config.protocols import (
    Command,
    FittedTransform,
    FoldDataSource,
    Objective,
    Splitter,
    Transform,
    Trial,
    TrialPruned,
    Tuner,
)
from lcv_config.registry import build, register, registered_names, resolve
from lcv_config.schema import (
    Component,
    CrossValidationTrainerConfig,
    DataConfig,
    ExperimentConfig,
    TrainerConfig,
    TuneConfig,
)
from lcv_config.space import parse_space

__all__ = [
    "CALLBACKS",
    "COMMANDS",
    "DATAMODULES",
    "GROUPS",
    "LEARNERS",
    "SPLITTERS",
    "TRANSFORMS",
    "TUNERS",
    "Command",
    "Component",
    "ConfigError",
    "CrossValidationTrainerConfig",
    "DataConfig",
    "DuplicatePluginError",
    "ExperimentConfig",
    "FittedTransform",
    "FoldDataSource",
    "LcvError",
    "Objective",
    "PluginError",
    "PluginImportError",
    "PluginInfo",
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
    "dump_config",
    "find_plugin",
    "list_plugins",
    "load_config",
    "load_dict",
    "load_plugin",
    "load_plugins",
    "parse_space",
    "register",
    "registered_names",
    "resolve",
]
