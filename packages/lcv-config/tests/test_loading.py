"""Config files, merging, overrides, references, validation, and the catalogue of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcv_config import ConfigError, ExperimentConfig, dump_config, load_config, load_dict

YAML = """
name: digits
seed: 3
optimizer: {name: Adam, cfg: {lr: 0.001}}
data:
  splitter: {name: kfold, cfg: {n_splits: 4}}
  dataloaders: {default: {batch_size: 16}, val: {batch_size: 64}}
trainer:
  max_epochs: 4
"""
TOML = """
name = "digits"
seed = 3
[optimizer]
name = "Adam"
cfg = {lr = 0.001}
[data.splitter]
name = "kfold"
cfg = {n_splits = 4}
[data.dataloaders]
default = {batch_size = 16}
val = {batch_size = 64}
[trainer]
max_epochs = 4
"""
JSON = {
    "name": "digits",
    "seed": 3,
    "optimizer": {"name": "Adam", "cfg": {"lr": 0.001}},
    "data": {
        "splitter": {"name": "kfold", "cfg": {"n_splits": 4}},
        "dataloaders": {"default": {"batch_size": 16}, "val": {"batch_size": 64}},
    },
    "trainer": {"max_epochs": 4},
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_toml_and_json_give_the_same_config(tmp_path: Path) -> None:
    configs = [
        load_config(write(tmp_path, "c.yaml", YAML)),
        load_config(write(tmp_path, "c.toml", TOML)),
        load_config(write(tmp_path, "c.json", json.dumps(JSON))),
    ]
    assert configs[0] == configs[1] == configs[2]
    config = configs[0]
    assert config.name == "digits" and config.seed == 3 and config.trainer.max_epochs == 4
    assert config.data.splitter.name == "kfold" and config.data.splitter.cfg == {"n_splits": 4}
    assert config.data.dataloaders["val"] == {"batch_size": 64}


def test_files_merge_in_order_and_overrides_come_last(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", YAML)
    small = write(tmp_path, "small.yaml", "trainer: {max_epochs: 2}\ndata: {splitter: {cfg: {n_splits: 3}}}\n")
    config = load_config([base, small], ["trainer.max_epochs=9", "optimizer.cfg.lr=3e-4", "name=run_b"])
    assert config.trainer.max_epochs == 9  # override beats the second file, which beat the first
    assert config.data.splitter.cfg == {"n_splits": 3}  # mappings merge deeply
    assert config.data.splitter.name == "kfold"  # kept from the first file
    assert config.optimizer.cfg == {"lr": 3e-4}  # type: ignore[union-attr]
    assert config.name == "run_b"


def test_exponent_floats_are_numbers_in_files_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "optimizer: {name: Adam, cfg: {lr: 3e-4, eps: 1E-8, steps: 1e3, tag: '1e3'}}\n")
    data = load_dict([path], ["model.cfg.decay=5e-2"])
    assert data["optimizer"]["cfg"] == {"lr": 3e-4, "eps": 1e-8, "steps": 1000.0, "tag": "1e3"}
    assert data["model"]["cfg"]["decay"] == 0.05


def test_override_values_are_parsed_as_yaml(tmp_path: Path) -> None:
    data = load_dict(
        [],
        ["trainer.devices=[0, 1]", "trainer.fast_dev_run=true", "model.cfg.hidden=64", "model.name=mlp", "name="],
    )
    assert data["trainer"] == {"devices": [0, 1], "fast_dev_run": True}
    assert data["model"] == {"cfg": {"hidden": 64}, "name": "mlp"}
    assert data["name"] == ""


def test_override_of_a_bare_component_name_adds_cfg_and_lists_are_indexed() -> None:
    data = load_dict(
        [],
        ["callbacks.0.cfg.patience=5", "optimizer.cfg.lr=0.5"],
        base={"optimizer": "SGD", "callbacks": [{"name": "early_stopping"}]},
    )
    assert data["optimizer"] == {"name": "SGD", "cfg": {"lr": 0.5}}
    assert data["callbacks"] == [{"name": "early_stopping", "cfg": {"patience": 5}}]


def test_references_are_resolved_after_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "refs.yaml",
        "name: mlp\nmodel: {name: mlp, cfg: {out: '${data.num_classes}', tag: 'run-${name}-${trainer.max_epochs}'}}\n"
        "data: {num_classes: 10}\ntrainer: {max_epochs: 3}\n",
    )
    data = load_dict([path], ["data.num_classes=7"])
    assert data["model"]["cfg"] == {"out": 7, "tag": "run-mlp-3"}  # a whole reference keeps the type


def test_a_reference_to_a_reference_resolves(tmp_path: Path) -> None:
    data = load_dict([], [], base={"a": "${b}", "b": "${c.d}", "c": {"d": [1, 2]}})
    assert data["a"] == [1, 2] and data["b"] == [1, 2]


def test_resolved_config_dumps_and_loads_back(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "c.yaml", YAML))
    again = load_config(write(tmp_path, "dumped.yaml", dump_config(config)))
    assert again == config
    assert "max_epochs: 4" in dump_config(config)


def test_a_string_path_is_one_file(tmp_path: Path) -> None:
    assert load_config(str(write(tmp_path, "c.yaml", YAML))).name == "digits"


def test_defaults_without_files() -> None:
    config = load_config()
    assert isinstance(config, ExperimentConfig)
    assert config.data.splitter.name == "stratified_kfold" and config.trainer.schedule == "auto"


# The bad input catalogue: every case is one ConfigError whose message names where the problem is
# (the config path or file:line:column) and how to fix it (the expected value or the closest valid name).
# Each case: files {name: text}, overrides, then strings the message must contain.
CATALOGUE: list[tuple[str, dict[str, str], list[str], list[str]]] = [
    (
        "unknown top-level key",
        {"c.yaml": "traner: {max_epochs: 3}\n"},
        [],
        ["Unknown key 'traner' at traner.", "Did you mean 'trainer'", "Valid keys: name, output_dir"],
    ),
    (
        "unknown trainer key",
        {"c.yaml": "trainer: {max_epoch: 3}\n"},
        [],
        ["at trainer.max_epoch", "Did you mean 'max_epochs'"],
    ),
    (
        "component argument beside name",
        {"c.yaml": "optimizer: {name: Adam, lr: 0.1}\n"},
        [],
        ["Unknown key 'lr' at optimizer.lr", "Valid keys: name, cfg", "{name: ..., cfg: {lr: ...}}"],
    ),
    (
        "component argument in a list",
        {"c.yaml": "callbacks: [{name: early_stopping, patience: 3}]\n"},
        [],
        ["at callbacks[0].patience", "go under 'cfg'"],
    ),
    (
        "component typo in cfg key",
        {"c.yaml": "model: {name: mlp, cfgs: {hidden: 3}}\n"},
        [],
        ["at model.cfgs", "Did you mean 'cfg'"],
    ),
    (
        "component without name",
        {"c.yaml": "model: {cfg: {hidden: 3}}\n"},
        [],
        ["Missing required key 'name' at model.name"],
    ),
    (
        "negative max_epochs",
        {"c.yaml": "trainer: {max_epochs: -2}\n"},
        [],
        ["Invalid value -2 at trainer.max_epochs", "greater than or equal to 1"],
    ),
    (
        "fraction above one",
        {"c.yaml": "trainer: {limit_train_batches: 1.5}\n"},
        [],
        ["at trainer.limit_train_batches", "must be at most 1.0; use an int for a count"],
    ),
    ("wrong type", {"c.yaml": "seed: abc\n"}, [], ["Invalid value 'abc' at seed", "valid integer"]),
    (
        "wrong type in a union",
        {"c.yaml": "trainer: {precision: [16]}\n"},
        [],
        ["at trainer.precision:", "valid string; or Input should be a valid integer"],
    ),
    (
        "unknown schedule",
        {"c.yaml": "trainer: {schedule: lockstep}\n"},
        [],
        ["at trainer.schedule", "'interleaved', 'sequential'"],
    ),
    (
        "unknown dataloader argument",
        {"c.yaml": "data: {dataloaders: {train: {batch_sise: 8}}}\n"},
        [],
        ["data.dataloaders.train.batch_sise", "Did you mean 'batch_size'"],
    ),
    (
        "unknown dataloader split",
        {"c.yaml": "data: {dataloaders: {trian: {batch_size: 8}}}\n"},
        [],
        ["data.dataloaders.trian", "Did you mean 'train'", "Valid splits: default, train, val, test, predict"],
    ),
    (
        "zero batch size",
        {"c.yaml": "data: {dataloaders: {default: {batch_size: 0}}}\n"},
        [],
        ["data.dataloaders.default.batch_size", "positive integer"],
    ),
    ("zero trials", {"c.yaml": "tune: {n_trials: 0}\n"}, [], ["at tune.n_trials", "greater than or equal to 1"]),
    (
        "search space low above high",
        {"c.yaml": "tune: {space: {optimizer.cfg.lr: {type: float, low: 1, high: 0.1}}}\n"},
        [],
        ["tune.space.optimizer.cfg.lr", "low (1.0) must not exceed high (0.1)"],
    ),
    (
        "search space unknown type",
        {"c.yaml": "tune: {space: {x: {type: flaot, low: 1, high: 2}}}\n"},
        [],
        ["tune.space.x.type", "Did you mean 'float'"],
    ),
    (
        "yaml syntax error",
        {"bad.yaml": "trainer:\n  max_epochs: [3\nseed: 1\n"},
        [],
        ["YAML syntax error in", "bad.yaml:3:"],
    ),
    ("yaml tab indentation", {"tab.yaml": "trainer:\n\tmax_epochs: 3\n"}, [], ["tab.yaml:2:1"]),
    (
        "yaml duplicate key",
        {"dup.yaml": "seed: 1\ntrainer: {max_epochs: 3}\nseed: 2\n"},
        [],
        ["dup.yaml:3:1", "duplicate key 'seed'"],
    ),
    (
        "toml syntax error",
        {"bad.toml": "[trainer]\nmax_epochs = \n"},
        [],
        ["TOML syntax error in", "bad.toml", "line 2"],
    ),
    ("json syntax error", {"bad.json": '{"trainer": {"max_epochs": 3,}}'}, [], ["JSON syntax error in", "bad.json:1:"]),
    ("empty file", {"empty.yaml": ""}, [], ["empty.yaml' is empty", "must hold a mapping of sections"]),
    ("comment-only file", {"empty.yaml": "# nothing yet\n"}, [], ["is empty"]),
    ("list at top level", {"list.yaml": "- trainer\n- data\n"}, [], ["list.yaml' holds a list", "must hold a mapping"]),
    (
        "unknown format",
        {"c.ini": "[trainer]\n"},
        [],
        ["Unknown config format '.ini'", "use .yaml, .yml, .toml or .json"],
    ),
    (
        "circular reference",
        {"c.yaml": "name: '${output_dir}'\noutput_dir: '${name}'\n"},
        [],
        ["Circular reference: name -> output_dir -> name"],
    ),
    ("self reference", {"c.yaml": "name: 'run-${name}'\n"}, [], ["Circular reference: name -> name"]),
    (
        "reference to nothing",
        {"c.yaml": "trainer: {max_epochs: 3}\nname: '${trainer.max_epoch}'\n"},
        [],
        ["Reference '${trainer.max_epoch}' points nowhere", "Did you mean 'max_epochs'", "(at name)"],
    ),
    (
        "override of unknown key",
        {"c.yaml": "seed: 1\n"},
        ["trainer.max_epoch=5"],
        ["Override of unknown key 'trainer.max_epoch'", "Did you mean 'max_epochs'"],
    ),
    (
        "override of unknown top-level key",
        {"c.yaml": "seed: 1\n"},
        ["sede=5"],
        ["Override of unknown key 'sede'", "Did you mean 'seed'"],
    ),
    (
        "override without value",
        {"c.yaml": "seed: 1\n"},
        ["trainer.max_epochs"],
        ["'trainer.max_epochs' is not of the form key=value", "trainer.max_epochs=5"],
    ),
    ("override below a scalar", {"c.yaml": "seed: 1\n"}, ["seed.value=2"], ["'seed' is a int (1), not a section"]),
    (
        "override past a list",
        {"c.yaml": "callbacks: [{name: a}]\n"},
        ["callbacks.2.cfg.x=1"],
        ["'callbacks' is a list of 1 item(s)", "use 0 to 0"],
    ),
    ("override with empty key part", {"c.yaml": "seed: 1\n"}, ["trainer..max_epochs=1"], ["has an empty key"]),
]


@pytest.mark.parametrize(("files", "overrides", "expected"), [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_input_catalogue(tmp_path: Path, files: dict[str, str], overrides: list[str], expected: list[str]) -> None:
    paths = [write(tmp_path, name, text) for name, text in files.items()]
    with pytest.raises(ConfigError) as info:
        load_config(paths, overrides)
    message = str(info.value)
    assert "\n" not in message.strip() or "syntax" in message  # one message, not a dump
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_catalogue_is_large() -> None:
    assert len(CATALOGUE) >= 30


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Config file '.*nope\.yaml' does not exist\.$"):
        load_config(tmp_path / "nope.yaml")


def test_a_later_file_is_named_in_its_own_syntax_error(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", YAML)
    bad = write(tmp_path, "later.yaml", "trainer: {max_epochs: 3\n")
    with pytest.raises(ConfigError, match=r"later\.yaml:2:1"):
        load_config([good, bad])


def test_error_path_attribute_is_set() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(base={"trainer": {"max_epochs": 0}})
    assert info.value.path == "trainer.max_epochs"


def test_dump_config_writes_a_class_object_as_its_import_path(tmp_path: Path) -> None:
    """A component given as an object from Python (``name=OrderedDict``) dumps to a path that loads back to it."""
    from collections import OrderedDict

    from lcv_config import Component, resolve

    config = ExperimentConfig(model=Component(name=OrderedDict, cfg={"a": 1}))
    text = dump_config(config)
    assert "name: collections.OrderedDict" in text
    again = load_config(write(tmp_path, "dumped.yaml", text))
    assert again.model is not None and resolve("model", again.model.name, "model.name") is OrderedDict
