"""The table example: `lcv cv examples/table/config.yaml` on a CSV file, run from the repository root."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lcv_config.cli import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_the_committed_csv_is_what_make_data_writes() -> None:
    spec = importlib.util.spec_from_file_location("lcv_example_table_make_data", HERE / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (HERE / "wine.csv").read_text(encoding="utf-8") == module.wine_csv_text()


def test_lcv_cv_on_the_wine_table_scores_well(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)  # the config's path is relative to where lcv runs: the repository root
    run_dir = tmp_path / "run"
    code = main(
        [
            "cv",
            str(HERE / "config.yaml"),
            "trainer.max_epochs=3",
            "data.splitter.cfg.n_splits=3",
            "trainer.enable_progress_bar=false",
            "--run-dir",
            str(run_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["n_folds"], metrics["n_epochs"]) == (3, 3)
    assert metrics["summary"]["val_acc"]["mean"] > 0.85, metrics["summary"]["val_acc"]


def test_a_misspelt_target_exits_2_with_the_closest_column(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    code = main(["cv", str(HERE / "config.yaml"), "data.dataset.cfg.target=cultivr", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "wine.csv has no column 'cultivr' (did you mean 'cultivar'?)" in err
    assert "data.dataset.cfg.target" in err
