"""A third party's plugins (integration-tests/third_party_plugins, lcv-example-plugins) next to lcv's own.

The distribution registers one plugin of every kind and a ``stratified_kfold`` that lcv-data registers too:
the bare name keeps lcv-data's (one warning line), the qualified name picks the third party's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LcvCli

TINY = ["trainer.max_epochs=1", "data.splitter.cfg.n_splits=2", "model.cfg.hidden=[16]"]
TINY += ["trainer.enable_progress_bar=false"]
WARNING = (
    "lcv: warning: 'stratified_kfold' (lcv.splitters) is also registered by lcv-example-plugins; using lcv-data's. "
    "Write 'lcv-example-plugins:stratified_kfold' for the other."
)


@pytest.mark.parametrize(
    ("splitter", "expected"),
    [("stratified_kfold", "StratifiedKFold(n_splits=2"), ("lcv-example-plugins:stratified_kfold", "RoundRobin")],
    ids=["built-in", "qualified-third-party"],
)
def test_lcv_cv_runs_with_the_builtin_and_the_qualified_third_party_splitter(
    tmp_path: Path, lcv_cli: LcvCli, digits_config: Path, splitter: str, expected: str
) -> None:
    run_dir = tmp_path / "run"
    args = ["cv", str(digits_config), *TINY, f"data.splitter.name={splitter}", "--run-dir", str(run_dir)]
    result = lcv_cli.run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    folds = json.loads((run_dir / "folds.json").read_text(encoding="utf-8"))
    assert expected in folds["splitter"] and len(folds["folds"]) == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("lcv: warning:")]
    assert warnings == ([WARNING] if splitter == "stratified_kfold" else [])


def test_every_kind_of_third_party_plugin_runs_in_one_cv(tmp_path: Path, lcv_cli: LcvCli) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        """
seed: 0
data:
  dataset: {name: example_blobs, cfg: {n_samples: 48}}
  splitter: {name: "lcv-example-plugins:stratified_kfold", cfg: {n_splits: 3}}
  transforms: {pre: [{name: example_clip, cfg: {low: -4.0, high: 4.0}}]}
  fitted_transforms: [example_center]
  dataloaders: {default: {batch_size: 16}}
model: {name: example_linear, cfg: {in_features: 4, out_features: 2}}
criterion: CrossEntropyLoss
optimizer: {name: SGD, cfg: {lr: 0.1}}
trainer: {max_epochs: 2, enable_progress_bar: false}
callbacks: [example_epoch_counter]
loggers: [example_jsonl]
""",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    checked = lcv_cli.run(["config", "validate", str(config)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    result = lcv_cli.run(["cv", str(config), "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lcv: warning:" not in result.stderr
    lines = (run_dir / "logs" / "example_jsonl" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert any("cv/val_loss_mean" in r for r in records) and records[-1] == {"status": "success"}

    learner = lcv_cli.run(
        ["example_folds", str(config), "data.datamodule=example_folds", "learner=example_regressor"], cwd=tmp_path
    )
    assert learner.returncode == 0, learner.stderr
    assert learner.stdout.splitlines() == [f"fold {i}: 40 training, 20 validation" for i in range(3)]


def test_the_third_party_learner_datamodule_and_tuner_by_name(tmp_path: Path, lcv_cli: LcvCli) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        """
seed: 0
learner: {name: example_regressor, cfg: {in_features: 4, lr: 0.05}}
data:
  datamodule: example_folds
  splitter: {name: kfold, cfg: {n_splits: 3}}
trainer: {max_epochs: 1, enable_progress_bar: false}
tune:
  backend: example_random
  n_trials: 2
  space: {learner.cfg.lr: {type: float, low: 0.01, high: 0.1, log: true}}
""",
        encoding="utf-8",
    )
    cv = lcv_cli.run(["cv", str(config), "--run-dir", str(tmp_path / "cv")], cwd=tmp_path)
    assert cv.returncode == 0, cv.stderr[-3000:]
    tune = lcv_cli.run(["tune", str(config), "--run-dir", str(tmp_path / "tune")], cwd=tmp_path)
    assert tune.returncode == 0, tune.stderr[-3000:]
    trials = (tmp_path / "tune" / "example_random.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(trials) == 2


def test_components_and_help_list_the_clash_once(tmp_path: Path, lcv_cli: LcvCli) -> None:
    listing = lcv_cli.run(["components", "splitters", "stratified*"], cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    names = [line.split("│")[0].strip() for line in listing.stdout.splitlines() if "│" in line]
    assert names.count("stratified_kfold") == 1 and names.count("lcv-example-plugins:stratified_kfold") == 1
    assert "clash: 'stratified_kfold' is registered by lcv-data and lcv-example-plugins" in listing.stdout
    help_text = lcv_cli.run(["--help"], cwd=tmp_path).stdout
    assert [line.split()[0] for line in help_text.splitlines() if line.startswith("  cv ")] == ["cv"]
    assert "example_folds" in help_text
