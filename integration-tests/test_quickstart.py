"""The README's quickstart, run as a user runs it: ``lcv cv examples/digits/config.yaml`` in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode


@pytest.fixture(scope="module")
def quickstart(
    tmp_path_factory: pytest.TempPathFactory, lcv_cli: LcvCli, digits_config: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One short digits run (3 epochs), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("quickstart")
    run_dir = tmp / "run"
    args = ["cv", str(digits_config), "trainer.max_epochs=3", f"output_dir={tmp / 'runs'}", "--run-dir", str(run_dir)]
    result = lcv_cli.run(args, cwd=tmp)
    return result, run_dir


def test_exits_zero_and_prints_five_folds_and_the_mean(
    quickstart: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _ = quickstart
    assert result.returncode == 0, result.stderr[-3000:]
    fold_rows = [line for line in result.stdout.splitlines() if re.match(r"^\W*[0-4]\s*│", line)]
    assert len(fold_rows) == 5, result.stdout
    assert any("mean ± std" in line for line in result.stdout.splitlines())
    assert "Traceback" not in result.stderr


def test_mean_validation_accuracy_is_high(quickstart: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, run_dir = quickstart
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_folds"] == 5
    val_acc = metrics["summary"]["val_acc"]
    assert len(val_acc["per_fold"]) == 5
    assert val_acc["mean"] > 0.9, val_acc


def test_run_directory_holds_the_run(quickstart: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, run_dir = quickstart
    for name in ("config.yaml", "versions.json", "folds.json", "metrics.csv", "metrics.json", "summary.txt"):
        assert (run_dir / name).is_file(), f"{name} missing from {sorted(p.name for p in run_dir.iterdir())}"
    versions = json.loads((run_dir / "versions.json").read_text())
    assert {"lcv-config", "lcv-core", "lcv-data"} <= set(versions)
    assert "max_epochs: 3" in (run_dir / "config.yaml").read_text()
    assert "mean ± std" in (run_dir / "summary.txt").read_text()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"fold", "epoch", "val_acc"} <= set(header)


def test_folds_json_holds_five_disjoint_validation_folds_covering_digits(
    quickstart: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, run_dir = quickstart
    folds = json.loads((run_dir / "folds.json").read_text())
    assert folds["n_samples"] == 1797
    assert len(folds["folds"]) == 5
    val = [i for fold in folds["folds"] for i in fold["val"]]
    assert sorted(val) == list(range(1797)), "validation folds overlap or miss samples"
    for fold in folds["folds"]:
        assert set(fold["train"]).isdisjoint(fold["val"])
        assert len(fold["train"]) + len(fold["val"]) == 1797


def test_nothing_is_written_outside_the_run_directory(
    quickstart: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, run_dir = quickstart
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]
