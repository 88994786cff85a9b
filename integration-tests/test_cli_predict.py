"""``lcv cv`` from a YAML file end to end, then ``lcv test`` on the run and ``lcv predict`` from one checkpoint alone.

Every command runs through the real command line (``lcv_config.cli.main``), as ``lcv ...`` would.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lcv_config.cli import main

CONFIG = """\
name: iris
seed: 0
data:
  dataset: iris
  holdout: 0.2
  splitter: {name: stratified_kfold, cfg: {n_splits: 2, shuffle: true}}
  fitted_transforms: [standardize]
  dataloaders: {default: {batch_size: 16}}
model: {name: mlp, cfg: {in_features: 4, out_features: 3, hidden: [16]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.05}}
trainer: {accelerator: cpu, max_epochs: 2, monitor: val_loss, mode: min, enable_progress_bar: false}
callbacks:
  - {name: model_checkpoint, cfg: {monitor: val_loss, mode: min}}
"""


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli_predict")
    config = tmp / "iris.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    run = tmp / "run"
    assert main(["cv", str(config), "--run-dir", str(run)]) == 0
    return run


def test_lcv_test_then_predict_from_one_checkpoint_alone_agree(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "fold 0" in table and "fold 1" in table and "mean ± std" in table and "ensemble: acc" in table
    report = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
    fold0_acc = report["per_fold"][0]["test_acc"]
    assert report["metrics"]["test_acc"]["mean"] == pytest.approx(np.mean([m["test_acc"] for m in report["per_fold"]]))
    assert set(report["ensemble"]) == {"acc", "acc_vote"}

    (epoch_dir,) = [p for p in (run_dir / "checkpoints").iterdir() if p.is_dir() and p.name.startswith("epoch=")]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(epoch_dir / "fold_0.ckpt", alone / "fold_0.ckpt")
    saved = tmp_path / "saved_run"
    shutil.move(str(run_dir), saved)  # the run directory is gone: the checkpoint must carry everything
    try:
        out = alone / "pred.csv"
        assert main(["predict", str(alone / "fold_0.ckpt"), "--output", str(out)]) == 0
        rows = _read_csv(out)
        assert len(rows) == 30  # 20% of iris's 150 samples
        assert list(rows[0]) == ["prob_0", "prob_1", "prob_2", "label", "target"]
        probs = np.array([[float(r[f"prob_{c}"]) for c in range(3)] for r in rows])
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        acc = np.mean([r["label"] == r["target"] for r in rows])
        assert acc == pytest.approx(fold0_acc, abs=1e-6)
        assert f"accuracy against the targets {acc:.4f}" in capsys.readouterr().out
    finally:
        shutil.move(str(saved), run_dir)


def test_predict_on_a_csv_of_raw_features_matches_the_holdout_prediction(run_dir: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    from lcv_core.cli.checkpoint_models import load_models

    holdout_out = tmp_path / "holdout.csv"
    assert main(["predict", str(run_dir), "--output", str(holdout_out)]) == 0
    # The holdout's raw features, in the order the holdout loader served them: find each by its target row.
    loaded = load_models(run_dir)
    from lcv_core.configure import build_datamodule

    dm = build_datamodule(loaded.config)
    dm.setup("fit")
    x = load_iris().data[dm.test_indices]
    features = tmp_path / "features.csv"
    np.savetxt(features, x, delimiter=",", header="a,b,c,d", comments="")
    data_out = tmp_path / "data.csv"
    assert main(["predict", str(run_dir), "--data", str(features), "--output", str(data_out)]) == 0
    from_holdout = np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in _read_csv(holdout_out)])
    from_data = np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in _read_csv(data_out)])
    assert from_data.shape == (30, 3)
    assert np.allclose(from_data, from_holdout, atol=1e-5)  # the fold's standardize was applied to the raw CSV


def test_lcv_fit_trains_one_model_validated_on_the_holdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "iris.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    run = tmp_path / "fit"
    assert main(["fit", str(config), "--run-dir", str(run)]) == 0
    files = ("config.yaml", "versions.json", "metrics.json", "metrics.csv", "folds.json", "learning_curves.png")
    for name in (*files, "summary.txt", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    assert len(folds["folds"]) == 1
    assert len(folds["folds"][0]["train"]) == 120 and sorted(folds["folds"][0]["val"]) == sorted(folds["test"])
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    capsys.readouterr()
    assert main(["test", str(run)]) == 0
    report = json.loads((run / "test_metrics.json").read_text(encoding="utf-8"))
    assert len(report["per_fold"]) == 1
    # validation is the holdout, so the test loss equals the best epoch's validation loss
    best = metrics["history"][0][metrics["best_epoch"]]
    assert report["per_fold"][0]["test_loss"] == pytest.approx(best["val_loss"], rel=1e-4)


def test_lcv_fit_without_holdout_exits_2_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "iris.yaml"
    config.write_text(CONFIG.replace("  holdout: 0.2\n", ""), encoding="utf-8")
    assert main(["fit", str(config), "--run-dir", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "data.holdout: 0.2" in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_predict_from_a_file_that_is_not_a_checkpoint_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "model.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["predict", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bogus) in err and "Traceback" not in err


def test_cv_resume_from_the_run_alone_continues_its_history(run_dir: Path, tmp_path: Path) -> None:
    """``lcv cv --resume RUN trainer.max_epochs=3``: no config file, the checkpoint holds it; epochs 1-2 are kept."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "config.yaml").unlink()  # the checkpoint alone carries the config
    before = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    assert main(["cv", "--resume", str(copy), "trainer.max_epochs=3"]) == 0
    after = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    assert after["n_epochs"] == 3
    for fold_before, fold_after in zip(before["history"], after["history"], strict=True):
        assert fold_after[:2] == fold_before  # the resumed run continues, it does not start again


def test_cv_resume_refuses_a_config_file_and_a_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cv", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint there" in capsys.readouterr().err
    assert main(["cv"]) == 2
    assert "--resume CKPT" in capsys.readouterr().err


def test_the_configured_learners_network_comes_out_of_a_fold_checkpoint_in_one_call(run_dir: Path) -> None:
    """``load_models(checkpoint).models[i].model`` is the plain network (``MLP``), with the fold's best weights."""
    import torch

    from lcv_core.cli.checkpoint_models import load_models
    from lcv_core.learners import MLP

    (fold_file,) = sorted(run_dir.glob("checkpoints/epoch=*/fold_0.ckpt"))[-1:]
    network = load_models(fold_file).models[0].model
    assert isinstance(network, MLP)
    weights = torch.load(fold_file, weights_only=True)["state_dict"]
    for name, value in network.state_dict().items():
        assert torch.equal(value, weights[f"model.{name}"])
