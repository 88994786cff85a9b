"""The ``lcv fit``, ``lcv test`` and ``lcv predict`` commands, and the config embedded in every checkpoint.

The commands run through their classes with a fake datamodule (lcv-data's interface, duck-typed): 150
samples, the last 30 the holdout, two folds over the rest.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

import lcv_core.cli.commands
import lcv_core.configure
from lcv_config import ConfigError, LcvError
from lcv_core.cli.commands import CvCommand, FitCommand
from lcv_core.cli.predict import PredictCommand, read_features
from lcv_core.cli.test import TestCommand

CONFIG = """\
name: tiny
seed: 0
data:
  holdout: 30
model: {name: mlp, cfg: {in_features: 8, out_features: 3, hidden: [16]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.05}}
trainer: {accelerator: cpu, max_epochs: 2, monitor: val_loss, mode: min, enable_progress_bar: false}
callbacks:
  - {name: model_checkpoint, cfg: {monitor: val_loss, mode: min}}
"""


def make_dataset(n: int = 150) -> TensorDataset:
    """A learnable 3-class problem with 8 features: the label is the argmax of a fixed linear map."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x @ torch.randn(8, 3, generator=g)).argmax(dim=1))


class HoldoutData:
    """A fake datamodule with lcv-data's interface: setup, folds, holdout loaders, save_folds/load_folds."""

    def __init__(self) -> None:
        self.dataset = make_dataset(150)
        self.folds: list[tuple[list[int], list[int]]] | None = None
        self.test_indices: list[int] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.folds is None:
            self.folds = [(list(range(60, 120)), list(range(60))), (list(range(60)), list(range(60, 120)))]
            self.test_indices = list(range(120, 150))

    def save_folds(self, path: str | Path) -> None:
        self.setup()
        assert self.folds is not None
        folds = [{"train": tr, "val": va} for tr, va in self.folds]
        Path(path).write_text(json.dumps({"n_samples": 150, "folds": folds, "test": self.test_indices}), "utf-8")

    def load_folds(self, path: str | Path) -> None:
        data = json.loads(Path(path).read_text("utf-8"))
        self.folds = [(f["train"], f["val"]) for f in data["folds"]]
        self.test_indices = data["test"]

    def train_val_dataloaders(self) -> list[tuple[DataLoader[Any], DataLoader[Any]]]:
        self.setup()
        assert self.folds is not None
        return [
            (DataLoader(Subset(self.dataset, tr), batch_size=16, shuffle=True), self._loader(va))
            for tr, va in self.folds
        ]

    def _loader(self, indices: list[int]) -> DataLoader[Any]:
        return DataLoader(Subset(self.dataset, indices), batch_size=16)

    def test_dataloader(self, fold: int | None = None) -> DataLoader[Any]:
        self.setup()
        assert self.test_indices is not None
        return self._loader(self.test_indices)

    def test_dataloaders(self) -> list[DataLoader[Any]]:
        assert self.folds is not None
        return [self.test_dataloader(k) for k in range(len(self.folds))]

    def predict_dataloader(self, fold: int | None = None) -> DataLoader[Any]:
        return self.test_dataloader(fold)


def _command(cls: type, argv: list[str]) -> int:
    instance = cls()
    parser = argparse.ArgumentParser()
    instance.configure(parser)
    return int(instance.run(parser.parse_args(argv)))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _probs(path: Path) -> np.ndarray:
    return np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in _rows(path)])


def _no_name_check(config: Any, files: list[str]) -> None:
    """The fake datamodule stands in for lcv-data's, which this package's tests run without (not installed)."""


@pytest.fixture(autouse=True)
def fake_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lcv_core.configure, "build_datamodule", lambda config: HoldoutData())
    monkeypatch.setattr(lcv_core.cli.commands, "check_plugin_names", _no_name_check)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("commands")
    (tmp / "tiny.yaml").write_text(CONFIG, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lcv_core.configure, "build_datamodule", lambda config: HoldoutData())
        mp.setattr(lcv_core.cli.commands, "check_plugin_names", _no_name_check)
        assert _command(CvCommand, [str(tmp / "tiny.yaml"), "--run-dir", str(tmp / "run")]) == 0
    return tmp / "run"


def _epoch_dir(run_dir: Path) -> Path:
    (epoch,) = [p for p in (run_dir / "checkpoints").iterdir() if p.is_dir() and p.name.startswith("epoch=")]
    return epoch


def test_last_and_every_fold_checkpoint_embed_the_resolved_config(run_dir: Path) -> None:
    resolved = (run_dir / "config.yaml").read_text(encoding="utf-8")
    files = [run_dir / "checkpoints" / "last.ckpt", *sorted(_epoch_dir(run_dir).glob("fold_*.ckpt"))]
    assert len(files) == 3
    for path in files:
        state = torch.load(path, weights_only=True)
        assert state["experiment_config"] == resolved
        assert state["versions"]["lcv-core"] != "not installed"


def test_predict_from_one_fold_checkpoint_alone_matches_lcv_test(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command(TestCommand, [str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["test_acc", "test_loss"]
    assert [line.split()[:2] for line in table.splitlines()[1:4]] == [["fold", "0"], ["fold", "1"], ["mean", "±"]]
    report = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
    assert report["metrics"]["test_acc"]["per_fold"] == [m["test_acc"] for m in report["per_fold"]]
    alone = tmp_path / "fold_1.ckpt"
    shutil.copy(_epoch_dir(run_dir) / "fold_1.ckpt", alone)
    assert _command(PredictCommand, [str(alone), "--output", str(tmp_path / "p.csv")]) == 0
    rows = _rows(tmp_path / "p.csv")
    assert len(rows) == 30 and list(rows[0]) == ["prob_0", "prob_1", "prob_2", "label", "target"]
    acc = np.mean([r["label"] == r["target"] for r in rows])
    assert acc == pytest.approx(report["per_fold"][1]["test_acc"], abs=1e-6)
    assert f"accuracy against the targets {acc:.4f}" in capsys.readouterr().out


def test_an_epoch_folder_predicts_with_the_fold_ensemble(run_dir: Path, tmp_path: Path) -> None:
    epoch = _epoch_dir(run_dir)
    singles = []
    for fold in (0, 1):
        out = tmp_path / f"fold{fold}.csv"
        assert _command(PredictCommand, [str(epoch / f"fold_{fold}.ckpt"), "--output", str(out)]) == 0
        singles.append(_probs(out))
    assert _command(PredictCommand, [str(epoch), "--output", str(tmp_path / "mean.csv")]) == 0
    assert np.allclose(_probs(tmp_path / "mean.csv"), (singles[0] + singles[1]) / 2, atol=1e-6)
    assert _command(PredictCommand, [str(epoch), "--ensemble", "vote", "--output", str(tmp_path / "vote.csv")]) == 0
    votes = [int(r["label"]) for r in _rows(tmp_path / "vote.csv")]
    a, b = singles[0].argmax(1), singles[1].argmax(1)
    assert votes == [min(x, y) if x != y else x for x, y in zip(a, b, strict=True)]  # a tie goes to the smaller label


def test_predict_on_npy_and_csv_features(run_dir: Path, tmp_path: Path) -> None:
    x = make_dataset(150).tensors[0][120:].numpy()
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")  # no header
    assert _command(PredictCommand, [str(run_dir), "--output", str(tmp_path / "holdout.csv")]) == 0
    for name in ("x.npy", "x.csv"):
        out = tmp_path / f"{name}.out.csv"
        assert _command(PredictCommand, [str(run_dir), "--data", str(tmp_path / name), "--output", str(out)]) == 0
        assert "target" not in _rows(out)[0]
        assert np.allclose(_probs(out), _probs(tmp_path / "holdout.csv"), atol=1e-5)


def _not_lcv(tmp: Path) -> Path:
    torch.save({"state_dict": {}}, tmp / "other.ckpt")
    return tmp / "other.ckpt"


def _text(tmp: Path) -> Path:
    (tmp / "notes.ckpt").write_text("hello", encoding="utf-8")
    return tmp / "notes.ckpt"


def _no_config(tmp: Path) -> Path:
    torch.save({"format": "lcv-fold-weights", "state_dict": {}, "fold": 0}, tmp / "fold_0.ckpt")
    return tmp / "fold_0.ckpt"


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda tmp: tmp / "missing.ckpt", [], "does not exist; pass a fold_<i>.ckpt file"),
        (_not_lcv, [], "is not an lcv checkpoint (expected format 'lcv-fold-weights'"),
        (_text, [], "is not an lcv checkpoint: torch.load cannot read it"),
        (_no_config, [], "has no embedded experiment config"),
        (lambda tmp: tmp, [], "holds no checkpoint: expected fold_<i>.ckpt files"),
        (None, ["--data", "x5.npy"], "has 5 features per sample; the model expects 8"),
        (None, ["--data", "missing.npy"], "does not exist; pass a .npy or .csv file"),
        (None, ["--data", "x.txt"], "expected a .npy or .csv file, got '.txt'"),
    ],
)
def test_bad_predict_input_gives_one_clear_error(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, extra: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x5.npy", np.zeros((4, 5), dtype=np.float32))
    (tmp_path / "x.txt").write_text("1,2\n", encoding="utf-8")
    target = make(tmp_path) if make else run_dir
    with pytest.raises(LcvError) as info:
        _command(PredictCommand, [str(target), *extra])
    assert message in str(info.value)
    assert not (tmp_path / "predictions.csv").exists()


def test_lcv_test_without_holdout_names_the_fix(run_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no test data for lcv test\. Add a holdout.*`data\.holdout: 0\.2`"):
        _command(TestCommand, [str(run_dir), "data.holdout=null"])


def test_lcv_fit_trains_one_model_on_everything_but_the_holdout(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(CONFIG, encoding="utf-8")
    run = tmp_path / "fit"
    assert _command(FitCommand, [str(tmp_path / "tiny.yaml"), "--run-dir", str(run)]) == 0
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    assert folds["folds"] == [{"train": list(range(120)), "val": list(range(120, 150))}]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_folds"] == 1 and metrics["summary"]["val_loss"]["std"] == 0.0
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["experiment_config"].startswith("# lcv fit:")
    assert _command(TestCommand, [str(run)]) == 0
    report = json.loads((run / "test_metrics.json").read_text(encoding="utf-8"))
    best = metrics["history"][0][metrics["best_epoch"]]
    assert report["per_fold"][0]["test_loss"] == pytest.approx(best["val_loss"], rel=1e-5)  # validated on the holdout
    assert report["ensemble"] == {}


def test_lcv_fit_without_holdout_exits_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(CONFIG.replace("data:\n  holdout: 30\n", "data: {}\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lcv fit validates on held-out data, but this config has none"):
        _command(FitCommand, [str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_read_features_skips_a_csv_header_and_rejects_text(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4.5\n", encoding="utf-8")
    assert read_features(tmp_path / "h.csv").tolist() == [[1.0, 2.0], [3.0, 4.5]]
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n", encoding="utf-8")
    with pytest.raises(LcvError, match=r"bad\.csv is not a numeric feature table"):
        read_features(tmp_path / "bad.csv")


def test_lcv_tune_with_a_missing_backend_exits_2_before_torch_is_imported(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "tune.yaml"
    config.write_text("tune: {backend: surely_not_installed, space: {optimizer.cfg.lr: [0.1, 0.01]}}\n")
    probe = (
        "import json, sys\nfrom lcv_config.cli import main\ncode = main(['tune', sys.argv[1]])\n"
        "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=120)
    assert json.loads(done.stdout.splitlines()[-1]) == {"code": 2, "torch": False}, done.stderr
    assert "tune.backend" in done.stderr and "surely_not_installed" in done.stderr and "Traceback" not in done.stderr
