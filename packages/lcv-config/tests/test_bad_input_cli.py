"""Bad input at config level, through the real ``lcv`` entry: exit 2, the key (or file) named, the fix, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lcv_config.cli import main

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

# (id, file name, content, overrides, what the one-line error must say)
CATALOGUE: list[tuple[str, str, str | bytes, list[str], list[str]]] = [
    ("binary file", "c.yaml", bytes(range(256)) * 4, [], ["c.yaml' is not UTF-8 text", "binary file"]),
    ("latin-1 file", "c.toml", "name = 'caf\xe9'\n".encode("latin-1"), [], ["c.toml' is not UTF-8 text"]),
    ("alias bomb", "c.yaml", BOMB, [], ["more than 200,000 values", "aliases"]),
    ("self-referencing alias", "c.yaml", "x: &a [*a]\n", [], ["nested deeper than 100", "alias refers to itself"]),
    ("deep YAML", "c.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", [], ["nested deeper than 100 levels"]),
    ("deep JSON", "c.json", '{"a": ' + "[" * 50000 + "]" * 50000 + "}", [], ["c.json' is nested deeper than 100"]),
    ("deep TOML", "c.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n", [], ["c.toml' is nested deeper than 100"]),
    ("deep override", "c.yaml", "seed: 1\n", ["data.dataloaders.default.x=" + "[" * 500 + "]" * 500], ["deeper"]),
    ("unparsable override", "c.yaml", "seed: 1\n", ["trainer.max_epochs=[1,"], ["Override 'trainer.max_epochs=[1,'"]),
    (
        "precision 8-bit",
        "c.yaml",
        "trainer: {precision: 8-bit}\n",
        [],
        ["trainer.precision", "Valid precisions: 32-true, 16-mixed, bf16-mixed"],
    ),
    ("devices 0", "c.yaml", "trainer: {devices: 0}\n", [], ["trainer.devices", "-1 for all, 'auto'"]),
    ("devices []", "c.yaml", "trainer: {devices: []}\n", [], ["trainer.devices", "non-empty list"]),
    ("devices 'gpu'", "c.yaml", "trainer: {devices: gpu}\n", [], ["trainer.devices", "not understood"]),
    (
        "num_workers -1",
        "c.yaml",
        "data: {dataloaders: {train: {num_workers: -1}}}\n",
        [],
        ["data.dataloaders.train.num_workers", "at least 0"],
    ),
    ("shuffle 'yes please'", "c.yaml", "data: {dataloaders: {default: {shuffle: maybe}}}\n", [], ["true or false"]),
    ("NUL in name", "c.yaml", 'name: "run\\0x"\n', [], ["at name", "U+0000"]),
    ("bell in name", "c.yaml", 'name: "run\\ax"\n', [], ["at name", "U+0007"]),
    ("right-to-left override in name", "c.yaml", 'name: "run\\u202Egpj.exe"\n', [], ["at name", "U+202E"]),
    ("name climbs out", "c.yaml", "name: ../../x\n", [], ["at name", "climbs out of output_dir", "set output_dir"]),
    ("name inside then out", "c.yaml", "name: a/../../x\n", [], ["at name", "'..'"]),
    ("absolute name", "c.yaml", "name: /tmp/x\n", [], ["at name", "absolute path"]),
    ("windows absolute name", "c.yaml", "name: 'C:\\\\runs'\n", [], ["at name", "absolute path"]),
    ("empty name", "c.yaml", "name: ''\n", [], ["at name", "empty"]),
    ("output_dir is a file", "c.yaml", "output_dir: c.yaml\n", [], ["at output_dir", "is an existing file"]),
    ("output_dir below a file", "c.yaml", "output_dir: c.yaml/runs\n", [], ["at output_dir", "is an existing file"]),
    ("control character in output_dir", "c.yaml", 'output_dir: "runs\\x1b[2J"\n', [], ["at output_dir", "U+001B"]),
    ("patience on the trainer", "c.yaml", "trainer: {patience: -3}\n", [], ["trainer.patience", "early_stopping"]),
    ("limit_train_batches 0", "c.yaml", "trainer: {limit_train_batches: 0}\n", [], ["trainer.limit_train_batches"]),
    ("limit_train_batches 0.0", "c.yaml", "trainer: {limit_train_batches: 0.0}\n", [], ["greater than 0"]),
    ("max_epochs 1e40", "c.yaml", "trainer: {max_epochs: 1e40}\n", [], ["trainer.max_epochs", "up to 1,000,000"]),
    ("max_epochs 2.5", "c.yaml", "trainer: {max_epochs: 2.5}\n", [], ["trainer.max_epochs", "whole number"]),
    ("max_epochs .inf", "c.yaml", "trainer: {max_epochs: .inf}\n", [], ["trainer.max_epochs", "whole number"]),
    ("max_epochs 10**9", "c.yaml", "trainer: {max_epochs: 1000000000}\n", [], ["less than or equal to 1000000"]),
    ("max_epochs override", "c.yaml", "seed: 1\n", ["trainer.max_epochs=1e40"], ["trainer.max_epochs"]),
    ("min_epochs above max", "c.yaml", "trainer: {min_epochs: 9, max_epochs: 3}\n", [], ["trainer.min_epochs"]),
    ("seed -1", "c.yaml", "seed: -1\n", [], ["at seed", "from 0 to 4,294,967,295"]),
    ("seed 2**32", "c.yaml", "seed: 4294967296\n", [], ["at seed"]),
    ("seed 1e10", "c.yaml", "seed: 1e10\n", [], ["at seed", "from 0 to 4,294,967,295"]),
    ("trainer seed 2**40", "c.yaml", "trainer: {seed: 1099511627776}\n", [], ["trainer.seed"]),
    ("lightning-cv key", "c.yaml", "trainer: {grad_accum_steps: 2}\n", [], ["accumulate_grad_batches"]),
    ("trainer key at the top", "c.yaml", "max_epochs: 3\n", [], ["belongs in the 'trainer' section"]),
]


@pytest.mark.parametrize(
    ("name", "content", "overrides", "expected"), [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE]
)
@pytest.mark.parametrize("action", ["validate", "show"])
def test_bad_input_exits_2_naming_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: str,
    name: str,
    content: str | bytes,
    overrides: list[str],
    expected: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # output_dir cases name files relative to the working directory
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    code = main(["config", action, "--no-imports", str(path), *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("lcv: error: ") and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line, not a dump
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"


def test_the_alias_bomb_fails_in_a_subprocess_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    # the timeout is a hang guard (the bomb used to take minutes and hundreds of MB), not a timing assertion
    result = subprocess.run(
        [sys.executable, "-m", "lcv_config.cli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "aliases" in result.stderr and "Traceback" not in result.stderr


def test_names_that_stay_inside_output_dir_are_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: digits/mlp-v2\noutput_dir: " + str(tmp_path / "runs") + "\n", encoding="utf-8")
    assert main(["config", "validate", "--no-imports", str(path)]) == 0, capsys.readouterr().err
