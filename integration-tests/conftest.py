"""Fixtures for the integration tests: all five lcv packages installed, the ``lcv`` console script run for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class LcvCli:
    """Runs the ``lcv`` console script of the interpreter running the tests (the venv's, not one on PATH)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def start(self, args: Sequence[str], cwd: Path) -> subprocess.Popen[str]:
        """Start ``lcv ARGS...`` in ``cwd`` with a wide terminal, so tables are not wrapped."""
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        return subprocess.Popen(
            [self.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @staticmethod
    def wait(proc: subprocess.Popen[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Wait for a started command and return its exit code and output."""
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def run(self, args: Sequence[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``lcv ARGS...`` to completion."""
        return self.wait(self.start(args, cwd), timeout)


@pytest.fixture(scope="session")
def lcv_cli() -> LcvCli:
    """The venv's ``lcv`` command."""
    found = shutil.which("lcv", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"no 'lcv' executable next to {sys.executable}: is lcv-config installed in this environment?")
    return LcvCli(found)


@pytest.fixture(scope="session")
def digits_config() -> Path:
    """The digits example config of the quickstart."""
    return REPO / "examples" / "digits" / "config.yaml"
