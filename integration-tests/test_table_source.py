"""The `table` dataset source (lcv-data) under `lcv cv` (lcv-core): a CSV named in a config trains, bad tables exit 2.

Runs in-process through :func:`lcv_config.cli.main`, in a folder holding the table: a relative `path` is taken from
the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lcv_config.cli import main

pd = pytest.importorskip("pandas")

CONFIG = """\
name: table
seed: 0
data:
  dataset:
    name: table
    cfg: {path: patients.csv, features: [age, bmi], target: outcome, groups: hospital}
  splitter: {name: group_kfold, cfg: {n_splits: 3}}
  fitted_transforms: [standardize]
  dataloaders: {default: {batch_size: 16}}
model: {name: mlp, cfg: {in_features: 2, out_features: 2, hidden: [8]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.01}}
trainer: {accelerator: cpu, max_epochs: 2, enable_progress_bar: false}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with config.yaml and patients.csv: 90 patients of 6 hospitals, a text outcome."""
    rng = np.random.default_rng(0)
    n = 90
    age = rng.integers(20, 80, n)
    frame = pd.DataFrame(
        {
            "age": age,
            "bmi": rng.normal(25, 4, n).round(1),
            "hospital": [f"h{i % 6}" for i in range(n)],
            "outcome": np.where(age > 50, "sick", "well"),
            "note": ["ok"] * n,
        }
    )
    frame.to_csv(tmp_path / "patients.csv", index=False)
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_lcv_cv_trains_on_a_csv_with_its_groups_kept_apart(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = folder / "run"
    code = main(["cv", "config.yaml", "--run-dir", str(run_dir)])
    assert code == 0, capsys.readouterr().err[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["n_folds"], metrics["n_epochs"]) == (3, 2)
    hospitals = pd.read_csv(folder / "patients.csv")["hospital"].to_numpy()
    folds = json.loads((run_dir / "folds.json").read_text(encoding="utf-8"))["folds"]
    seen: set[str] = set()
    for fold in folds:
        val = set(hospitals[fold["val"]].tolist())
        assert not val & set(hospitals[fold["train"]].tolist()), "a hospital is in a fold's training and validation"
        seen |= val
    assert seen == {f"h{i}" for i in range(6)}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.dataset.cfg.features=[age,bmj]", ["no column 'bmj' (did you mean 'bmi'?)", "data.dataset.cfg.features"]),
        (
            "data.dataset.cfg.groups=hospitl",
            ["no column 'hospitl' (did you mean 'hospital'?)", "data.dataset.cfg.groups"],
        ),
        ("data.dataset.cfg.features=[age,note]", ["Features must be numbers", "'note'", "data.dataset.cfg.features"]),
        ("data.dataset.cfg.path=patient.csv", ["No file 'patient.csv'", "working directory", "data.dataset.cfg.path"]),
        ("data.dataset.cfg.featurs=[age]", ["Unknown argument 'featurs'", "Did you mean 'features'"]),
    ],
)
def test_a_bad_table_exits_2_naming_the_key_and_the_fix(
    folder: Path, capsys: pytest.CaptureFixture[str], override: str, expected: list[str]
) -> None:
    code = main(["cv", "config.yaml", override, "--run-dir", str(folder / "run")])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    for text in expected:
        assert text in err, (text, err)
    assert "Traceback" not in err


def test_missing_values_exit_2_with_their_count(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.read_csv(folder / "patients.csv")
    frame.loc[[4, 8, 15], "bmi"] = np.nan
    frame.to_csv(folder / "patients.csv", index=False)
    code = main(["cv", "config.yaml", "--run-dir", str(folder / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "3 of 90 rows of patients.csv have a missing or infinite value" in err
    assert "drop_missing: true" in err
    with pytest.warns(UserWarning, match=r"3 of 90 rows .*left out \(drop_missing: true\)"):
        code = main(["cv", "config.yaml", "data.dataset.cfg.drop_missing=true", "--run-dir", str(folder / "run")])
    assert code == 0, capsys.readouterr().err[-3000:]
