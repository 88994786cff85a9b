"""A LightningDataModule from Lightning's docs, unchanged, cross-validated by lcv-core over lcv-data's adapter."""

from __future__ import annotations

import importlib
import json
import textwrap
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import torch

from lcv_core.inference import test
from lcv_core.trainer import CrossValidationTrainer
from lcv_data import LightningFolds

if TYPE_CHECKING:
    from conftest import LcvCli  # the fixture's type; conftest is not importable at run time in every import mode

PROJECT = Path(__file__).resolve().parent / "lightning_project"
TRAINER = {"accelerator": "cpu", "devices": 1, "seed": 0, "enable_progress_bar": False}


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The user's project module, importable as ``mnist_project`` (also by the ``lcv`` command run here)."""
    monkeypatch.syspath_prepend(str(PROJECT))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))
    return importlib.import_module("mnist_project")


def test_the_docs_mnist_datamodule_cross_validates_with_stratified_kfold(project: ModuleType, tmp_path: Path) -> None:
    folds = LightningFolds(
        project.MNISTDataModule(batch_size=64), "stratified_kfold", splitter_kwargs={"n_splits": 3, "shuffle": True}
    )
    trainer = CrossValidationTrainer(**TRAINER, max_epochs=3, default_root_dir=str(tmp_path))
    result = trainer.fit(project.LitMNIST, folds)
    assert result.n_folds == 3
    assert result.metric("val_acc").mean > 0.6, result.metric("val_acc")  # the class is a bright row: easy to learn
    # Stratified over the training dataset of the datamodule's random_split: every fold has each class's share.
    labels = [int(y) for _, y in folds.datamodule.mnist_train]
    overall = Counter(labels)
    assert folds.folds is not None
    for _, val in folds.folds:
        counts = Counter(labels[i] for i in val)
        assert all(abs(counts[c] - n / 3) <= 1 for c, n in overall.items())
    # Out-of-fold predictions: one per training sample, from the fold that held it out.
    assert result.oof_predictions is not None and result.oof_predictions.shape == (550, 10)
    assert torch.allclose(result.oof_predictions.sum(1), torch.ones(550), atol=1e-5)
    # The datamodule's own test loader, after its setup("test"): 100 test images scored by every fold's model.
    scores = test(result, folds.test_dataloader())
    assert len(scores.per_fold) == 3 and scores.metrics["test_acc"].mean > 0.6
    # Exact resume: a fourth epoch from last.ckpt over a fresh datamodule, the first three unchanged.
    fresh = LightningFolds(
        project.MNISTDataModule(batch_size=64), "stratified_kfold", splitter_kwargs={"n_splits": 3, "shuffle": True}
    )
    resumed_trainer = CrossValidationTrainer(**TRAINER, max_epochs=4, default_root_dir=str(tmp_path))
    resumed = resumed_trainer.fit(project.LitMNIST, fresh, ckpt_path="last")
    assert resumed.n_epochs == 4
    for fold in range(3):
        for epoch in range(3):
            assert resumed.history[fold][epoch]["val_loss"] == pytest.approx(result.history[fold][epoch]["val_loss"])


def test_lcv_cv_runs_a_config_that_names_the_datamodule_by_its_dotted_path(
    project: ModuleType, lcv_cli: LcvCli, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            """
            name: mnist
            seed: 0
            data:
              datamodule: lightning
              dataset: {name: mnist_project.MNISTDataModule, cfg: {batch_size: 64}}
              splitter: {name: stratified_kfold, cfg: {n_splits: 3, shuffle: true}}
              labels: targets
              pool_validation: true
            learner: {name: mnist_project.LitMNIST, cfg: {lr: 0.01}}
            trainer: {accelerator: cpu, max_epochs: 2}
            """
        ),
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    result = lcv_cli.run(["cv", str(config), "--run-dir", str(run_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_folds"] == 3 and metrics["summary"]["val_acc"]["mean"] > 0.5, metrics["summary"]
    folds = json.loads((run_dir / "folds.json").read_text(encoding="utf-8"))
    assert folds["n_samples"] == 600  # training and validation datasets pooled
    assert sorted(i for fold in folds["folds"] for i in fold["val"]) == list(range(600))
