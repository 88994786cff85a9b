"""The bad-input catalogue: every case makes ``lcv cv`` exit 2 with one line naming the path and the fix.

The cases run in-process through :func:`lcv_config.cli.main` (torch is imported once, not once per case);
two run the real console script as well, to show the same holds for the installed command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest

from lcv_config.cli import main

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode

DIGITS = "{digits}"


class Case(NamedTuple):
    args: list[str]
    expected: list[str]  # substrings of the one error line: the offending path/value and the fix
    files: dict[str, str] = {}


BASE = "model: {name: mlp, cfg: {in_features: 64, out_features: 10}}\n"
CASES: dict[str, Case] = {
    "misspelled_splitter": Case(
        [DIGITS, "data.splitter.name=stratifed_kfold"],
        ["Unknown splitter 'stratifed_kfold'", "Did you mean 'stratified_kfold'", "data.splitter.name"],
    ),
    "unknown_top_level_key": Case([DIGITS, "bogus_key=1"], ["bogus_key", "trainer", "data"]),
    "misspelled_top_level_key_in_file": Case(
        ["c.yaml"], ["traner", "Did you mean 'trainer'"], {"c.yaml": BASE + "traner: {max_epochs: 1}\n"}
    ),
    "missing_config_file": Case(["does-not-exist.yaml"], ["does-not-exist.yaml", "does not exist"]),
    "unknown_model": Case([DIGITS, "model.name=mpl"], ["Unknown model 'mpl'", "Did you mean 'mlp'", "model.name"]),
    "unknown_optimizer": Case(
        [DIGITS, "optimizer.name=Adm"], ["Unknown optimizer 'Adm'", "Did you mean 'Adam'", "optimizer.name"]
    ),
    "unknown_criterion": Case(
        [DIGITS, "criterion=CrossEntropy"], ["Unknown criterion 'CrossEntropy'", "CrossEntropyLoss", "criterion"]
    ),
    "unknown_callback": Case(
        [DIGITS, "callbacks.0.name=early_stoping"],
        ["Unknown callback 'early_stoping'", "Did you mean 'early_stopping'", "callbacks[0]"],
    ),
    "unknown_dataset": Case([DIGITS, "data.dataset.name=digts"], ["digts", "Did you mean 'digits'"]),
    "unknown_learner": Case([DIGITS, "learner=superviesd"], ["superviesd", "Did you mean 'supervised'", "learner"]),
    "argument_not_in_signature": Case(
        [DIGITS, "model.cfg.hiden=[8]"], ["Unknown argument 'hiden'", "Did you mean 'hidden'", "model.cfg.hiden"]
    ),
    "optimizer_argument_not_in_signature": Case(
        [DIGITS, "optimizer.cfg.learning_rate=0.1"], ["Unknown argument 'learning_rate'", "optimizer.cfg"]
    ),
    "missing_required_argument": Case(
        ["c.yaml", "data.dataset=digits"],
        ["Missing required argument 'out_features'", "model.cfg"],
        {"c.yaml": "model: {name: mlp, cfg: {in_features: 64}}\n"},
    ),
    "wrong_argument_type": Case(
        [DIGITS, "model.cfg.in_features=abc"], ["in_features", "expected int", "'abc'", "model.cfg.in_features"]
    ),
    "yaml_syntax_error": Case(
        ["bad.yaml"], ["YAML syntax error", "bad.yaml:3:"], {"bad.yaml": "a: 1\nb: [1, 2\nc: 3\n"}
    ),
    "circular_reference": Case(
        ["c.yaml"],
        ["Circular reference", "name -> trainer.monitor"],
        {"c.yaml": "name: ${trainer.monitor}\ntrainer: {monitor: '${name}'}\n"},
    ),
    "reference_to_a_missing_key": Case(
        ["c.yaml"],
        ["${trainer.max_epoch}", "Did you mean 'max_epochs'"],
        {"c.yaml": "name: run-${trainer.max_epoch}\n"},
    ),
    "override_of_unknown_key": Case(
        [DIGITS, "trainer.max_epoch=3"], ["unknown key 'trainer.max_epoch'", "Did you mean 'max_epochs'"]
    ),
    "override_without_key": Case([DIGITS, "=3"], ["empty key", "a.b.c=value"]),
    "empty_config": Case(["empty.yaml"], ["empty.yaml", "is empty"], {"empty.yaml": "# nothing here\n"}),
    "config_that_is_a_list": Case(["list.yaml"], ["list.yaml", "holds a list", "mapping"], {"list.yaml": "- 1\n- 2\n"}),
    "unknown_config_format": Case(["c.ini"], ["Unknown config format '.ini'", ".yaml"], {"c.ini": "[a]\n"}),
    "dotted_path_module_not_found": Case(
        [DIGITS, "model.name=no_such_package.nets.Net"],
        ["Cannot import 'no_such_package.nets.Net' at model.name", "no module named 'no_such_package' is installed"],
    ),
    "dotted_path_module_raises": Case(
        [DIGITS, "model.name=broken_nets.Net"],
        ["Cannot import module 'broken_nets'", "ZeroDivisionError", "model.name"],
        {"broken_nets.py": "RATIO = 1 / 0\n\nclass Net: ...\n"},
    ),
    "dotted_path_missing_attribute": Case(
        [DIGITS, "model.name=collections.OrderdDict"], ["has no attribute 'OrderdDict'", "Did you mean 'OrderedDict'"]
    ),
    "negative_max_epochs": Case(
        [DIGITS, "trainer.max_epochs=-1"], ["-1", "trainer.max_epochs", "greater than or equal to 1"]
    ),
    "fraction_above_one": Case(
        [DIGITS, "trainer.limit_train_batches=1.5"], ["trainer.limit_train_batches", "at most 1.0"]
    ),
    "unknown_schedule": Case([DIGITS, "trainer.schedule=paralel"], ["trainer.schedule", "interleaved"]),
    "unknown_dataloader_key": Case(
        [DIGITS, "data.dataloaders.default.batch_sise=8"],
        [
            "Unknown dataloader argument 'batch_sise'",
            "Did you mean 'batch_size'",
            "data.dataloaders.default.batch_sise",
        ],
    ),
    "unknown_dataloader_split": Case(
        [DIGITS, "data.dataloaders.training.batch_size=8"], ["Unknown dataloader split 'training'", "train"]
    ),
    "zero_batch_size": Case([DIGITS, "data.dataloaders.default.batch_size=0"], ["batch_size", "positive integer"]),
    "component_without_name": Case(
        ["c.yaml", "data.dataset=digits"], ["optimizer", "name"], {"c.yaml": BASE + "optimizer: {cfg: {lr: 0.1}}\n"}
    ),
    "splitter_needs_groups": Case(
        [DIGITS, "data.splitter.name=group_kfold", "data.splitter.cfg={n_splits: 3}"], ["group"]
    ),
    "bad_param_group_pattern": Case(
        [DIGITS, "optimizer.cfg.param_groups=[{params: [encoder.*], lr: 0.1}]"],
        ["Parameter pattern 'encoder.*' matches no parameter", "net.0.weight", "optimizer.cfg.param_groups[0].params"],
    ),
}


class Outcome(NamedTuple):
    code: int
    stdout: str
    stderr: str
    tmp: Path


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, digits_config: Path) -> dict[str, Outcome]:
    """Run every case in-process once, each in its own directory, and collect exit code, output and directory."""
    import contextlib
    import io
    import os

    results = {}
    cwd = Path.cwd()
    for name, case in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        for file, text in case.files.items():
            (tmp / file).write_text(text, encoding="utf-8")
        args = [a.replace(DIGITS, str(digits_config)) for a in case.args]
        out, err = io.StringIO(), io.StringIO()
        sys.path.insert(0, str(tmp))
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["cv", *args, f"output_dir={tmp / 'runs'}", "--run-dir", str(tmp / "run")])
        finally:
            os.chdir(cwd)
            sys.path.remove(str(tmp))
            sys.modules.pop("broken_nets", None)
        results[name] = Outcome(code, out.getvalue(), err.getvalue(), tmp)
    return results


def test_the_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_line_naming_the_path_and_the_fix(outcomes: dict[str, Outcome], case: str) -> None:
    result = outcomes[case]
    assert result.code == 2, result.stderr[-3000:]
    # the plugin-clash warning (a third party's stratified_kfold in the integration env) is not the error line
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("lcv: warning:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lcv: error: ")
    for expected in CASES[case].expected:
        assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stderr + result.stdout
    assert not (result.tmp / "run").exists(), "a run directory was created for a config that cannot run"
    assert not (result.tmp / "runs").exists()


@pytest.mark.parametrize("case", ["unknown_top_level_key", "yaml_syntax_error"])
def test_the_console_script_behaves_the_same(tmp_path: Path, lcv_cli: LcvCli, digits_config: Path, case: str) -> None:
    for file, text in CASES[case].files.items():
        (tmp_path / file).write_text(text, encoding="utf-8")
    args = [a.replace(DIGITS, str(digits_config)) for a in CASES[case].args]
    result: subprocess.CompletedProcess[str] = lcv_cli.run(
        ["cv", *args, f"output_dir={tmp_path / 'runs'}", "--run-dir", str(tmp_path / "run")], cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("lcv: error: ") and "Traceback" not in result.stderr
    assert all(e in result.stderr for e in CASES[case].expected)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()
