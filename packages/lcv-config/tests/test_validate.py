"""``lcv config validate`` resolves every name, and bad input exits 2 with the key named: through the real CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from lcv_config import (
    RENAMED_OPTIONS,
    ConfigError,
    ConfigProblemsError,
    CrossValidationTrainerConfig,
    DataConfig,
    ExperimentConfig,
    LcvError,
    TrainerConfig,
    check_names,
    load_config,
)
from lcv_config.cli import main
from lcv_config.plugins import PluginInfo
from lcv_config.renamed import renamed_options_table

MIGRATING = Path(__file__).resolve().parents[3] / "docs" / "migrating.md"

PLUGINS = {
    "lcv.splitters": {"fake_kfold": "fake_never_imported:KFold"},
    "lcv.datamodules": {"fake_digits": "fake_never_imported:digits", "fake_cross_val": "fake_never_imported:DM"},
    "lcv.transforms": {"fake_standardize": "fake_never_imported:Standardize"},
    "lcv.learners": {"fake_supervised": "fake_never_imported:Learner"},
    "lcv.callbacks": {"fake_early_stopping": "fake_never_imported:EarlyStopping"},
    "lcv.loggers": {"fake_csv": "fake_never_imported:CSV"},
    "lcv.tuners": {"fake_optuna": "fake_never_imported:Tuner"},
}

GOOD = """
learner: fake_supervised
optimizer: {name: Adam, cfg: {lr: 0.01}}
lr_scheduler: {name: StepLR, cfg: {step_size: 2}}
criterion: CrossEntropyLoss
data:
  datamodule: fake_cross_val
  dataset: fake_digits
  splitter: {name: fake_kfold, cfg: {n_splits: 3}}
  fitted_transforms: [fake_standardize]
callbacks: [{name: fake_early_stopping, cfg: {patience: 3}}]
loggers: [fake_csv]
tune: {backend: fake_optuna}
"""


@pytest.fixture
def plugins(fake_dist) -> None:
    fake_dist("fake-plugins", PLUGINS)


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["config", "validate", *args])
    captured = capsys.readouterr()
    return code, captured.err


def test_a_config_whose_names_all_resolve_is_valid(tmp_path: Path, plugins: None, capsys) -> None:
    path = write(tmp_path, GOOD)
    code, err = validate(capsys, str(path))
    assert (code, err) == (0, "")
    assert "fake_never_imported" not in sys.modules  # plugin names come from metadata: nothing imported


NAME_CATALOGUE = [
    ("learner", "learner: fake_supervsed", "learner.name", "Did you mean 'fake_supervised'"),
    ("optimizer", "optimizer: {name: Adm}", "optimizer.name", "Did you mean 'Adam'"),
    ("scheduler", "lr_scheduler: {name: StepLr}", "lr_scheduler.name", "Did you mean 'StepLR'"),
    ("criterion", "criterion: CrossEntropyLos", "criterion.name", "Did you mean 'CrossEntropyLoss'"),
    ("dataset", "data: {dataset: fake_digts}", "data.dataset.name", "Did you mean 'fake_digits'"),
    ("datamodule", "data: {datamodule: fake_digts}", "data.datamodule", "Did you mean 'fake_digits'"),
    ("splitter", "data: {splitter: fake_kfld}", "data.splitter.name", "Did you mean 'fake_kfold'"),
    (
        "transform",
        "data: {fitted_transforms: [fake_standardise]}",
        "data.fitted_transforms[0].name",
        "Did you mean 'fake_standardize'",
    ),
    ("callback", "callbacks: [fake_early_stoping]", "callbacks[0].name", "Did you mean 'fake_early_stopping'"),
    ("logger", "loggers: [fake_cvs]", "loggers[0].name", "Did you mean 'fake_csv'"),
    ("tuner backend", "tune: {backend: fake_optunaa}", "tune.backend", "Did you mean 'fake_optuna'"),
    ("dotted path, no module", "model: {name: fake_no_such_pkg.nets.Net}", "model.name", "fake_no_such_pkg"),
    ("dotted path, no attribute", "model: {name: fake_nets.Nett}", "model.name", "Did you mean 'Net'?"),
    (
        "nested dotted path",
        "model: {name: fake_nets.Net, cfg: {encoder: {name: fake_nets.Encodr, cfg: {}}}}",
        "model.cfg.encoder.name",
        "Did you mean 'Encoder'?",
    ),
]


@pytest.mark.parametrize(("line", "path", "fix"), [c[1:] for c in NAME_CATALOGUE], ids=[c[0] for c in NAME_CATALOGUE])
def test_validate_refuses_each_misspelt_name(
    tmp_path: Path, plugins: None, site: Path, capsys, line: str, path: str, fix: str
) -> None:
    (site / "fake_nets.py").write_text("class Net: ...\nclass Encoder: ...\n", encoding="utf-8")
    config = write(tmp_path, line + "\n")
    code, err = validate(capsys, str(config))
    assert code == 2, err
    assert path in err and fix in err, err
    assert "Traceback" not in err
    sys.modules.pop("fake_nets", None)


def test_validate_reports_every_problem_in_one_run(tmp_path: Path, plugins: None, capsys) -> None:
    text = GOOD.replace("fake_kfold", "fake_kfld").replace("name: Adam", "name: Adm").replace("[fake_csv]", "[x_csv]")
    code, err = validate(capsys, str(write(tmp_path, text)))
    assert code == 2
    assert err.startswith("lcv: error: 3 problems in ")
    assert "optimizer.name" in err and "data.splitter.name" in err and "loggers[0].name" in err
    assert re.search(r"Installed: [^.]*fake_csv", err)  # what is installed, not only the closest names


def test_no_imports_keeps_the_structural_check_only(tmp_path: Path, plugins: None, capsys) -> None:
    path = write(tmp_path, "optimizer: {name: Adm}\nmodel: {name: fake_no_such_pkg.Net}\n")
    assert validate(capsys, "--no-imports", str(path)) == (0, "")
    path = write(tmp_path, "trainer: {max_epoch: 3}\n")
    code, err = validate(capsys, "--no-imports", str(path))
    assert code == 2 and "Did you mean 'max_epochs'" in err


def _infos(group: str, names: dict[str, str], distribution: str = "fake") -> list[PluginInfo]:
    return [PluginInfo(group, n, v, distribution, "1.0") for n, v in names.items()]


DEFAULTS = {
    "lcv.learners": _infos("lcv.learners", {"supervised": "never_imported:Learner"}, "lcv-core"),
    "lcv.datamodules": _infos("lcv.datamodules", {"cross_val": "never_imported:DM"}, "lcv-data"),
    "lcv.splitters": _infos("lcv.splitters", {"stratified_kfold": "never_imported:S"}, "lcv-data"),
}


def test_a_missing_tuner_backend_is_found_from_metadata_alone() -> None:
    config = ExperimentConfig(tune={"backend": "optuna"})
    problems = check_names(config, plugins={**DEFAULTS, "lcv.tuners": []})
    assert [p.path for p in problems] == ["tune.backend"]
    assert "Unknown tuner 'optuna'" in problems[0].message
    assert "pip install lcv-tune-optuna" in problems[0].message
    wandb_only = {"lcv.tuners": _infos("lcv.tuners", {"wandb": "lcv_tune_wandb:Tuner"}, "lcv-tune-wandb")}
    problems = check_names(config, plugins={**DEFAULTS, **wandb_only})
    assert "Installed: wandb." in problems[0].message and "pip install lcv-tune-optuna" in problems[0].message
    optuna = {"lcv.tuners": _infos("lcv.tuners", {"optuna": "never_imported:Tuner"}, "lcv-tune-optuna")}
    assert check_names(config, plugins={**DEFAULTS, **optuna}) == []


def test_a_qualified_plugin_name_is_checked_against_its_distribution() -> None:
    splitters = {**DEFAULTS, "lcv.splitters": _infos("lcv.splitters", {"kfold": "x:K"}, "lcv-data")}
    good = ExperimentConfig(data={"splitter": "lcv-data:kfold"})
    assert check_names(good, plugins=splitters) == []
    bad = ExperimentConfig(data={"splitter": "acme-splits:kfold"})
    (problem,) = check_names(bad, plugins=splitters)
    assert problem.path == "data.splitter.name" and "lcv-data:kfold" in problem.message


def test_checking_names_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = """
import json, sys
from lcv_config import check_names, load_config
config = load_config(sys.argv[1])
problems = check_names(config)
heavy = sorted(m for m in ("torch", "lightning", "sklearn", "optuna", "wandb") if m in sys.modules)
print(json.dumps({"paths": [p.path for p in problems], "heavy": heavy}))
"""
    path = write(tmp_path, "optimizer: {name: Adm}\ntune: {backend: surely_not_installed}\n")
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"optimizer.name", "tune.backend"} <= set(report["paths"])  # (+ lcv's default names without lcv-core)
    assert report["heavy"] == []


def test_validate_with_a_missing_backend_exits_2_before_torch(tmp_path: Path) -> None:
    probe = """
import json, sys
from lcv_config.cli import main
code = main(["config", "validate", sys.argv[1]])
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""
    path = write(tmp_path, "tune: {backend: surely_not_installed}\n")
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout.splitlines()[-1]) == {"code": 2, "torch": False}
    assert "tune.backend" in result.stderr and "Traceback" not in result.stderr


# --- the Python API gives the CLI's errors -----------------------------------------------------------------------


def test_unknown_trainer_arguments_name_the_closest_and_the_lcv_name() -> None:
    with pytest.raises(LcvError, match=r"Unknown key 'max_epoch' for TrainerConfig. Did you mean 'max_epochs'"):
        TrainerConfig(max_epoch=5)
    with pytest.raises(ConfigError, match="'grad_accum_steps' is lightning-cv's name; lcv calls it 'accumulate_grad"):
        CrossValidationTrainerConfig(grad_accum_steps=2)
    with pytest.raises(ConfigError, match="'epochs' is NeuroMANCER's name; lcv calls it 'max_epochs'"):
        TrainerConfig.model_validate({"epochs": 3})
    config = TrainerConfig()
    with pytest.raises(ConfigError, match="max_epochs") as info:
        config.max_epochs = 0
    assert isinstance(info.value, ValidationError)  # code catching pydantic's error keeps working
    assert info.value.errors()[0]["loc"] == ("max_epochs",)


def test_a_renamed_option_in_a_config_file_names_lcvs_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lcv calls it 'check_val_every_n_epoch'") as info:
        load_config(write(tmp_path, "trainer: {validation_frequency: 2}\n"))
    assert info.value.path == "trainer.validation_frequency"


def test_a_trainer_key_at_the_top_level_says_where_it_belongs() -> None:
    with pytest.raises(ConfigError, match="'max_epochs' belongs in the 'trainer' section"):
        ExperimentConfig(max_epochs=3)
    with pytest.raises(ConfigError, match="Unknown transform stage 'prre'. Did you mean 'pre'"):
        DataConfig(transforms={"prre": ["standardize"]})


def test_every_renamed_option_points_at_a_real_trainer_key() -> None:
    for key, option in RENAMED_OPTIONS.items():
        assert key not in TrainerConfig.model_fields, key
        assert option.lcv is None or option.lcv in TrainerConfig.model_fields, option


def test_the_migration_guide_shows_the_same_table() -> None:
    if not MIGRATING.is_file():
        pytest.skip("not a repository checkout: no docs/ folder")
    text = MIGRATING.read_text(encoding="utf-8")
    found = re.search(r"<!-- renamed-options:[^\n]*-->\n(.*?)<!-- /renamed-options -->", text, re.S)
    assert found, "docs/migrating.md lost its renamed-options block"
    assert found.group(1) == renamed_options_table(), (
        "docs/migrating.md's table differs from lcv_config.RENAMED_OPTIONS; paste renamed_options_table() into it"
    )


def test_several_problems_make_one_error_listing_each() -> None:
    from lcv_config.errors import ConfigProblem

    error = ConfigProblemsError([ConfigProblem("a.name", "Unknown x 'y' at a.name."), ConfigProblem("b", "Bad.")])
    assert str(error) == "2 problems in the config:\n  - Unknown x 'y' at a.name.\n  - Bad. (at b)"
    assert isinstance(error, ConfigError) and error.path == "a.name"
