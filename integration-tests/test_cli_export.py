"""``lcv export``: the artifact of a fold ensemble and of a refit model reproduces ``lcv predict`` to 1e-6.

``lcv cv`` and ``lcv fit`` on iris with per-fold standardisation, then ``lcv predict RUN --data FEATURES`` and the
exported artifact on the same raw features: probabilities and labels must agree, in every format.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcv_config.cli import main
from lcv_core.inference.export import FORMATS as SUFFIX
from lcv_core.inference.export import load_artifact

CONFIG = """\
name: iris
seed: 0
data:
  dataset: iris
  holdout: 0.2
  splitter: {name: stratified_kfold, cfg: {n_splits: 3, shuffle: true}}
  fitted_transforms: [standardize]
  dataloaders: {default: {batch_size: 16}}
model: {name: mlp, cfg: {in_features: 4, out_features: 3, hidden: [16]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.02}}
trainer: {accelerator: cpu, max_epochs: 2, monitor: val_loss, mode: min, enable_progress_bar: false}
"""

HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))
FORMATS = [
    "torchscript",
    "export",
    pytest.param(
        "onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra: pip install 'lcv-core[onnx]'")
    ),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-fold ``lcv cv`` run, an ``lcv fit`` run of the same config, and raw iris features (unscaled, float32)."""
    from sklearn.datasets import load_iris

    tmp = tmp_path_factory.mktemp("export")
    config = tmp / "iris.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["cv", str(config), "--run-dir", str(tmp / "cv")]) == 0
    assert main(["fit", str(config), "--run-dir", str(tmp / "fit")]) == 0
    features = tmp / "features.npy"
    x = load_iris().data.astype(np.float32)
    np.save(features, np.concatenate([x[::7], x[::7] * 1.5]))  # some rows far outside the training range too
    return {"cv": tmp / "cv", "fit": tmp / "fit", "features": features}


def _predict_csv(run: Path, features: Path, out: Path, *extra: str) -> tuple[np.ndarray, np.ndarray]:
    assert main(["predict", str(run), "--data", str(features), "--output", str(out), *extra]) == 0
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    probs = np.array([[float(r[k]) for k in r if k.startswith("prob_")] for r in rows])
    return probs, np.array([int(r["label"]) for r in rows])


def _artifact_outputs(path: Path, features: Path) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(np.load(features))
    with torch.no_grad():
        probs, labels = load_artifact(path)(x)
    return probs.numpy().astype(np.float64), labels.numpy()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("run", "what", "ensemble"), [("cv", "ensemble", "mean"), ("cv", "ensemble", "vote"), ("fit", "refit", "mean")]
)
def test_the_artifact_reproduces_lcv_predict(
    runs: dict[str, Path], tmp_path: Path, fmt: str, run: str, what: str, ensemble: str
) -> None:
    out = tmp_path / f"{what}{SUFFIX[fmt]}"
    args = ["export", str(runs[run]), "--what", what, "--format", fmt, "--output", str(out), "--ensemble", ensemble]
    assert main(args) == 0
    expected_probs, expected_labels = _predict_csv(
        runs[run], runs["features"], tmp_path / "p.csv", "--ensemble", ensemble
    )
    probs, labels = _artifact_outputs(out, runs["features"])
    assert probs.shape == expected_probs.shape == (44, 3)
    assert np.abs(probs - expected_probs).max() <= 1e-6
    assert (labels == expected_labels).all()
    note = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    assert note["folds"] == ([0, 1, 2] if what == "ensemble" else [0])
    assert note["fitted_transforms"] == [["Standardize"]] * len(note["folds"])


def test_one_fold_and_the_default_output_path(runs: dict[str, Path]) -> None:
    """``--what fold=K`` exports that fold's model alone, into ``<run>/export/fold_K.pt`` by default."""
    assert main(["export", str(runs["cv"]), "--what", "fold=1"]) == 0
    assert main(["export", str(runs["cv"])]) == 0
    fold, _ = _artifact_outputs(runs["cv"] / "export" / "fold_1.pt", runs["features"])
    ensemble, _ = _artifact_outputs(runs["cv"] / "export" / "ensemble.pt", runs["features"])
    assert np.allclose(fold.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(fold, ensemble), "one fold's model is not the ensemble"


@pytest.mark.parametrize(
    ("run", "what", "message"),
    [
        ("cv", "refit", "`lcv fit` run"),
        ("fit", "ensemble", "--what refit"),
        ("cv", "fold=7", "has folds 0, 1, 2"),
        ("cv", "best", "expected ensemble, refit or fold=K"),
    ],
)
def test_what_does_not_fit_the_run(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], run: str, what: str, message: str
) -> None:
    assert main(["export", str(runs[run]), "--what", what, "--output", "unused.pt"]) != 0
    assert message in capsys.readouterr().err
