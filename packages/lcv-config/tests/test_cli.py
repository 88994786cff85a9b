"""The ``lcv`` command line: exit codes, messages, and staying light (no torch, no pydantic for listing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lcv_config.cli import main

COMMANDS_SOURCE = """
import argparse

from lcv_config import ConfigError


class Boom:
    help = "Fail with a config error."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--times", type=int, default=1)

    def run(self, args: argparse.Namespace) -> int:
        raise ConfigError("Unknown key 'lr' at optimizer.lr. Did you mean 'cfg'?", "optimizer.lr")


class Crash:
    help = "Fail with a bug."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise RuntimeError("loss is NaN at epoch 3")


class Hello:
    help = "Say hello."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")

    def run(self, args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0
"""


@pytest.fixture
def commands(fake_dist) -> None:
    fake_dist(
        "fake-commands",
        {"lcv.commands": {"boom": "fake_cmds:Boom", "crash": "fake_cmds:Crash", "hello": "fake_cmds:Hello"}},
        modules={"fake_cmds": COMMANDS_SOURCE},
    )


def run_lcv(*args: str, cwd: Path | None = None, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "lcv_config.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_version_lists_lcv_packages(capsys: pytest.CaptureFixture[str], fake_dist) -> None:
    fake_dist("lcv-fake-plugin", {}, version="0.3.1")
    fake_dist("not-lcv", {}, version="9.9")
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from lcv_config import __version__

    assert f"lcv-config {__version__}" in lines
    assert "lcv-fake-plugin 0.3.1" in lines
    assert not any(line.startswith("not-lcv") for line in lines)


def test_help_lists_commands_with_their_help_and_distribution(
    capsys: pytest.CaptureFixture[str], commands: None
) -> None:
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hello = next(line for line in lines if line.startswith("  hello "))
    assert hello.split() == ["hello", "Say", "hello", "fake-commands", "1.0"]
    # the name column is as wide as the longest command name (12 at least)
    assert any(line.split()[:3] == ["components", "List", "installed"] and "lcv-config" in line for line in lines)


def test_help_names_a_command_that_fails_to_import(capsys: pytest.CaptureFixture[str], fake_dist) -> None:
    fake_dist("fake-broken", {"lcv.commands": {"broken": "fake_broken_cmd:Cmd"}}, modules={"fake_broken_cmd": "1/0\n"})
    assert main(["--help"]) == 0
    broken = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  broken "))
    assert "fails to import" in broken and "fake-broken 1.0" in broken


def test_a_plugin_command_runs(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


def test_components_lists_a_group_without_importing(capsys: pytest.CaptureFixture[str], fake_dist) -> None:
    fake_dist("fake-split", {"lcv.splitters": {"every_other": "fake_split_never:EveryOther"}})
    assert main(["components", "splitters"]) == 0
    out = capsys.readouterr().out
    assert "lcv.splitters" in out and "every_other" in out and "fake-split" in out
    assert "lcv.tuners" not in out and "lcv.commands" not in out
    assert "fake_split_never" not in sys.modules


def test_components_filters_names_with_a_glob_without_importing(capsys: pytest.CaptureFixture[str], fake_dist) -> None:
    fake_dist(
        "fake-split",
        {"lcv.splitters": {"every_other": "fake_split_never:EveryOther", "every_third": "fake_split_never:Third"}},
    )
    assert main(["components", "splitters", "every_o*"]) == 0
    out = capsys.readouterr().out
    assert "every_other" in out and "every_third" not in out
    assert main(["components", "all", "no_such_*"]) == 0
    assert "(none matches 'no_such_*': splitters)" in capsys.readouterr().out
    assert "fake_split_never" not in sys.modules


LONG_TARGET = "fake_split_never.a_rather_long_module_path.of_a_plugin:EveryOtherSampleSplitter"


def test_piped_components_print_whole_targets(
    capsys: pytest.CaptureFixture[str], fake_dist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    fake_dist("fake-split", {"lcv.splitters": {"every_other": LONG_TARGET}})
    assert main(["components", "splitters", "every_o*"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "every_other" in line]
    assert len(rows) == 1 and rows[0].split("│")[-1].strip() == LONG_TARGET  # one line, nothing cut or folded


def test_a_target_cut_to_the_width_ends_with_an_ellipsis(
    capsys: pytest.CaptureFixture[str], fake_dist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    fake_dist("fake-split", {"lcv.splitters": {"every_other": LONG_TARGET}})
    assert main(["components", "splitters", "every_o*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if "every_other" in line]
    assert len(rows) == 1 and all(len(line.rstrip()) <= 70 for line in lines)
    shown = rows[0].split("│")[-1].strip()
    assert shown.endswith("…") and LONG_TARGET.startswith(shown[:-1]) and len(shown) > 12
    assert rows[0].split("│")[0].strip() == "every_other" and "fake-split" in rows[0]  # names stay whole


def test_components_unknown_group_exits_2_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "splitter"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Unknown plugin group 'splitter'. Did you mean 'splitters'?" in err
    assert "Groups: splitters, datamodules, transforms, models, learners, callbacks, loggers, tuners, commands" in err


def test_unknown_command_exits_2_with_a_suggestion(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["helo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcv: error: Unknown command 'helo'. Did you mean 'hello'?")
    assert "components" in err and "config" in err


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: lcv" in capsys.readouterr().err


def test_lcv_error_exits_2_with_one_line_and_no_traceback(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "lcv: error: Unknown key 'lr' at optimizer.lr. Did you mean 'cfg'?\n"
    assert "Traceback" not in err


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["--verbose", "boom"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "fake_cmds.py" in err
    assert main(["boom", "--verbose"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_unexpected_exception_exits_1(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["crash"]) == 1
    err = capsys.readouterr().err
    assert err == "lcv: error: RuntimeError: loss is NaN at epoch 3 (run with --verbose for the traceback)\n"


def test_bad_subcommand_arguments_exit_2(capsys: pytest.CaptureFixture[str], commands: None) -> None:
    assert main(["boom", "--times", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_a_broken_command_plugin_is_named(capsys: pytest.CaptureFixture[str], fake_dist) -> None:
    fake_dist("fake-broken", {"lcv.commands": {"broken": "fake_broken_cmd:Cmd"}}, modules={"fake_broken_cmd": "1/0\n"})
    assert main(["broken"]) == 2
    err = capsys.readouterr().err
    assert "Plugin 'broken' in group lcv.commands (from fake-broken 1.0" in err and "ZeroDivisionError" in err
    assert main(["components", "commands"]) == 0  # listing still works
    assert "broken" in capsys.readouterr().out


PROBE = """
import json, sys
from lcv_config.cli import main
code = main(sys.argv[1:])
watched = ("torch", "lightning", "optuna", "wandb", "sklearn", "numpy", "pydantic", "rich")
heavy = sorted(m for m in watched if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    ("args", "allowed"),
    [(["--help"], []), (["--version"], []), (["components"], ["rich"]), (["components", "tuners"], ["rich"])],
)
def test_listing_commands_import_no_heavy_module(args: list[str], allowed: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["code"] == 0, result.stderr
    assert report["heavy"] == allowed  # no torch, and not even pydantic: the whole command line stays light


def test_config_validate_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epoch: 5\n", encoding="utf-8")
    result = run_lcv("config", "validate", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Unknown key 'max_epoch' at trainer.max_epoch. Did you mean 'max_epochs'" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_validate_and_show_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("trainer:\n  max_epochs: 5\noptimizer: {name: SGD, cfg: {lr: 0.1}}\n", encoding="utf-8")
    result = run_lcv(
        "config", "validate", "--no-imports", str(good)
    )  # only lcv-config installed here: no plugins to resolve names with
    assert result.returncode == 0 and result.stdout == f"{good}: valid\n"
    shown = run_lcv("config", "show", str(good), "trainer.max_epochs=7", "optimizer.cfg.lr=0.5")
    assert shown.returncode == 0, shown.stderr
    assert "max_epochs: 7" in shown.stdout and "lr: 0.5" in shown.stdout and "name: SGD" in shown.stdout
