"""Bad input to ``lcv cv`` fails with exit code 2 and one clear line, before any run directory exists."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode


DIGITS = "{digits}"
CASES = {
    "misspelled_splitter": [DIGITS, "data.splitter.name=stratifed_kfold"],
    "unknown_top_level_key": [DIGITS, "bogus_key=1"],
    "missing_config_file": ["does-not-exist.yaml"],
}


@pytest.fixture(scope="module")
def failures(
    tmp_path_factory: pytest.TempPathFactory, lcv_cli: LcvCli, digits_config: Path
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Run every case at once (each may pay for importing torch) and collect exit code, output and tmp dir."""
    started = {}
    for name, args in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        config_args = [a.format(digits=digits_config) for a in args]
        run_args = ["cv", *config_args, f"output_dir={tmp / 'runs'}", "--run-dir", str(tmp / "run")]
        started[name] = (lcv_cli.start(run_args, cwd=tmp), tmp)
    return {name: (lcv_cli.wait(proc), tmp) for name, (proc, tmp) in started.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exits_2_with_one_line_and_no_traceback(
    failures: dict[str, tuple[subprocess.CompletedProcess[str], Path]], case: str
) -> None:
    result, tmp = failures[case]
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lcv: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp / "run").exists(), "a run directory was created for a config that cannot run"
    assert not (tmp / "runs").exists()


def test_misspelled_splitter_suggests_the_right_name(
    failures: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    result, _ = failures["misspelled_splitter"]
    assert "Unknown splitter 'stratifed_kfold'" in result.stderr
    assert "Did you mean 'stratified_kfold'" in result.stderr
    assert "data.splitter.name" in result.stderr


def test_unknown_top_level_key_names_it_and_the_valid_keys(
    failures: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    result, _ = failures["unknown_top_level_key"]
    assert "bogus_key" in result.stderr
    assert "trainer" in result.stderr and "data" in result.stderr


def test_missing_config_file_names_the_file(failures: dict[str, tuple[subprocess.CompletedProcess[str], Path]]) -> None:
    result, _ = failures["missing_config_file"]
    assert "does-not-exist.yaml" in result.stderr
    assert "does not exist" in result.stderr
