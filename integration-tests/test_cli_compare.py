"""``lcv cv`` on digits, then ``lcv compare`` on the run directories, as a user runs them (lcv-data's folds.json).

Three short 3-fold runs: A and B on the same folds (two learning rates), C with another seed (other folds), and a
repeated stratified 2×3-fold run whose summary groups its folds by repeat.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from scipy import stats

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode

SHORT = ["trainer.max_epochs=2", "data.splitter.cfg.n_splits=3", "callbacks=[]", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, lcv_cli: LcvCli, digits_config: Path) -> dict[str, Path]:
    """Run directories A, B (same folds, lr 1e-3 and 3e-3), C (seed 1: other folds) and R (repeated 2×3 folds)."""
    tmp = tmp_path_factory.mktemp("compare")
    variants = {
        "a": [],
        "b": ["optimizer.cfg.lr=0.003"],
        "c": ["seed=1"],
        "r": ["data.splitter={name: repeated_stratified_kfold, cfg: {n_splits: 3, n_repeats: 2}}"],
    }
    for name, extra in variants.items():
        args = ["cv", str(digits_config), *SHORT, *extra, f"output_dir={tmp / 'runs'}", "--run-dir", str(tmp / name)]
        result = lcv_cli.run(args, cwd=tmp)
        assert result.returncode == 0, result.stderr[-3000:]
    return {name: tmp / name for name in variants}


def _compare(lcv_cli: LcvCli, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return lcv_cli.run(["compare", *map(str, args)], cwd=Path.cwd())


def test_compare_two_runs_on_the_same_folds(runs: dict[str, Path], lcv_cli: LcvCli, tmp_path: Path) -> None:
    out_json = tmp_path / "compare.json"
    result = _compare(lcv_cli, runs["a"], runs["b"], "--metric", "val_acc", "--json", out_json)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"A = {runs['a']}" in result.stdout
    assert "val_acc (max)" in result.stdout and "P(A better)" in result.stdout and "3-fold CV" in result.stdout
    (c,) = json.loads(out_json.read_text(encoding="utf-8"))["comparisons"]
    a, b = (json.loads((runs[n] / "metrics.json").read_text())["summary"]["val_acc"]["per_fold"] for n in "ab")
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / 3
    var = sum((x - mean) ** 2 for x in d) / 2
    folds = json.loads((runs["a"] / "folds.json").read_text())["folds"]
    ratio = sum(len(f["val"]) for f in folds) / sum(len(f["train"]) for f in folds)
    t = mean / ((1 / 3 + ratio) * var) ** 0.5
    assert ratio == pytest.approx(0.5, abs=1e-3)  # 3-fold: n_test/n_train = 1/(k−1)
    assert c["corrected_t"] == pytest.approx(t) and c["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 2))
    assert c["p_a_better"] + c["p_equivalent"] + c["p_b_better"] == pytest.approx(1.0)


def test_compare_runs_on_other_folds_exits_2_naming_them(runs: dict[str, Path], lcv_cli: LcvCli) -> None:
    result = _compare(lcv_cli, runs["a"], runs["c"])
    assert result.returncode == 2
    assert "A and B were validated on different folds: folds 0, 1, 2 differ" in result.stderr
    assert "random_state=0" in result.stderr and "random_state=1" in result.stderr and "--independent" in result.stderr
    assert "Traceback" not in result.stderr
    assert _compare(lcv_cli, runs["a"], runs["c"], "--independent").returncode == 0


def test_repeated_cv_reports_repeats_and_compares_with_runs_r(runs: dict[str, Path], lcv_cli: LcvCli) -> None:
    summary = (runs["r"] / "summary.txt").read_text(encoding="utf-8")
    assert "2×3-fold CV" in summary and "repeat 1 mean" in summary and "std between repeats" in summary
    metrics = json.loads((runs["r"] / "metrics.json").read_text())
    assert metrics["n_repeats"] == 2 and metrics["n_folds"] == 6
    acc = metrics["summary"]["val_acc"]
    assert acc["repeats"] == [0, 0, 0, 1, 1, 1]
    assert acc["repeat_means"] == pytest.approx([sum(acc["per_fold"][:3]) / 3, sum(acc["per_fold"][3:]) / 3])
    # against itself: zero difference, p = 1, and the repeated correction's df = k·R − 1 = 5
    result = _compare(lcv_cli, runs["r"], runs["r"], "--metric", "val_acc")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2×3-fold CV" in result.stdout and "(5)" in result.stdout and "1.0000" in result.stdout
