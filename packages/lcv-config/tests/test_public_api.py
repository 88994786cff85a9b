"""The public surface of lcv_config is pinned, importable lazily, and free of torch."""

from __future__ import annotations

import json
import subprocess
import sys

import lcv_config

PUBLIC = [
    "CALLBACKS", "COMMANDS", "DATAMODULES", "GROUPS", "LEARNERS", "LOGGERS", "MODELS", "SPEC_ARGUMENTS", "SPLITTERS",
    "TRANSFORMS", "TUNERS", "check_arguments", "is_component", "resolve_any", "RENAMED_OPTIONS", "RenamedOption",
    "ConfigProblem", "ConfigProblemsError", "check_names",
    "Command", "Component", "ConfigError", "CrossValidationTrainerConfig", "DataConfig", "DuplicatePluginError",
    "ExperimentConfig", "FittedTransform", "FoldDataSource", "LcvError", "Logger", "Objective", "PluginError",
    "PluginClashWarning", "PluginImportError", "PluginInfo", "Splitter", "TrainerConfig", "Transform", "Trial",
    "TrialPruned",
    "TuneConfig", "Tuner", "UnknownPluginError", "__version__", "build", "dump_config", "find_plugin",
    "list_plugins", "load_config", "load_dict", "load_plugin", "load_plugins", "parse_space", "register",
    "registered_names", "resolve",
]  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert sorted(lcv_config.__all__) == sorted(PUBLIC)


def test_every_public_name_resolves_and_is_listed_by_dir() -> None:
    for name in PUBLIC:
        assert getattr(lcv_config, name) is not None, name
    assert set(PUBLIC) <= set(dir(lcv_config))


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    try:
        _ = lcv_config.load_confg  # type: ignore[attr-defined]  # the typo is the point
    except AttributeError as exc:
        assert "module 'lcv_config' has no attribute 'load_confg'" in str(exc)
    else:
        raise AssertionError("no AttributeError")


PROBE = """
import json, sys
import lcv_config
light = sorted(m for m in ("pydantic", "yaml", "rich") if m in sys.modules)
from lcv_config import ExperimentConfig, build, load_config, parse_space
from lcv_config.testing import SplitterContract, TunerContract
load_config(base={"trainer": {"max_epochs": 2}})
heavy = sorted(m for m in ("torch", "lightning", "optuna", "wandb", "sklearn", "numpy") if m in sys.modules)
print(json.dumps({"light": light, "heavy": heavy}))
"""


def test_importing_is_lazy_and_never_pulls_in_torch() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"light": [], "heavy": []}
