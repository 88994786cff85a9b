"""Every example runs, with tiny settings, in this pytest process (the ``examples`` nox session)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lcv_config.cli import main

EXAMPLES = Path(__file__).resolve().parent


def test_digits_example_reaches_high_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lcv cv examples/digits/config.yaml`` for 2 epochs scores above 0.85 mean validation accuracy."""
    run_dir = tmp_path / "run"
    code = main(
        [
            "cv",
            str(EXAMPLES / "digits" / "config.yaml"),
            "trainer.max_epochs=2",
            f"output_dir={tmp_path / 'runs'}",
            "--run-dir",
            str(run_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "mean ± std" in out
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_folds"] == 5
    assert metrics["n_epochs"] == 2
    assert metrics["summary"]["val_acc"]["mean"] > 0.85, metrics["summary"]["val_acc"]
    assert not (tmp_path / "runs").exists(), "the run went to output_dir instead of --run-dir"


def test_every_example_config_is_valid() -> None:
    """Each example's config loads and validates (names, keys and values) without training."""
    from lcv_config import load_config

    configs = sorted(EXAMPLES.glob("*/config.yaml"))
    assert configs, "no example configs found"
    for config in configs:
        assert load_config([str(config)]).name


# -- the five workflows users come from: each run.py's main(...) with tiny settings ------------------------------------


def load_example(name: str) -> Any:
    """Import ``examples/<name>/run.py`` as a module (the examples are scripts, not a package)."""
    path = EXAMPLES / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"lcv_example_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B writes offline runs into the test's folder and never asks for an account."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / ".wandb-data"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_from_lightning_cv_trains_summarises_and_prunes_bad_learning_rates(tmp_path: Path) -> None:
    """A plain LightningModule + train_val_dataloaders(): CV scores, a model summary, and Optuna pruning on the mean."""
    out = load_example("from_lightning_cv").main(
        n_splits=3, max_epochs=2, n_trials=3, tune_epochs=2, subset=600, run_dir=tmp_path / "run"
    )
    assert out["n_folds"] == 3 and out["n_epochs"] == 2
    assert out["val_acc"] > 0.5, out["val_acc"]
    # The summary callback: the layer table printed once at train start, and every fold's parameter count.
    assert "Sequential" in out["summary_text"] and "Trainable params" in out["summary_text"]
    assert out["parameters_per_fold"] == {0: 64 * 64 + 64 + 64 * 10 + 10, 1: 4810, 2: 4810}
    # lightning-cv's hooks keep their meaning: on_train_fold_end once per epoch (not per fold); the stop threshold
    # is not reached in 2 epochs; what on_before_log_metrics added (the learning rate) is in the CSV log
    assert out["stop_epochs"] == [0, 1] and out["stop_reason"] is None
    with out["metrics_csv"].open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lr_rows = [r for r in rows if r.get("lr")]
    assert lr_rows and {float(r["lr"]) for r in lr_rows} == {1e-2}
    assert all(any(k.endswith("/train_loss_step") and r[k] for k in r) for r in lr_rows)
    metrics = json.loads(out["metrics_json"].read_text(encoding="utf-8"))
    assert metrics["n_folds"] == 3
    assert out["last_checkpoint"].is_file()
    # Optuna: the study is a SQLite file, the good lr wins, the far-too-small one (1e-5) is pruned after epoch 1.
    assert out["study_db"].is_file()
    assert out["n_trials"] == 3
    assert out["best_lr"] == pytest.approx(1e-2)
    assert 1 in out["pruned_trials"] and out["pruned_trials"][1] == pytest.approx(1e-5)
    assert out["pruned_after_epoch"][1] == 0
    assert list(out["intermediate_values"][0]) == [0, 1], "the finished trial reports the fold mean every epoch"
    assert out["intermediate_values"][1][0] > out["intermediate_values"][0][0]
    assert len(out["per_fold_user_attr"][0]) == 3, "each trial stores its per-fold scores"
    assert out["best_value"] == pytest.approx(out["val_loss"]), "the same lr, folds and seed give the same score"


def test_from_torch_mate_config_runs_with_lcv_cv_and_with_a_custom_learner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The torch_mate-style config through `lcv cv`, then with a custom learner named by dotted path."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "from_torch_mate"))
    example = load_example("from_torch_mate")
    overrides = example.tiny_overrides(n_splits=3, max_epochs=3, limit_train_batches=8)
    cli = example.run_cli(overrides, tmp_path / "cli")
    assert cli["exit_code"] == 0
    metrics = cli["metrics"]
    assert (metrics["n_folds"], metrics["n_epochs"]) == (3, 3)
    assert metrics["summary"]["val_acc"]["mean"] > 0.5, metrics["summary"]["val_acc"]
    assert "val_accuracy" not in metrics["summary"]  # metrics: [accuracy] is val_acc, under one name
    assert (tmp_path / "cli" / "learning_curves.png").is_file()
    assert "TinyConvNet" in (tmp_path / "cli" / "config.yaml").read_text(encoding="utf-8")
    # The custom learner built its own network (not the config's TinyConvNet) and logged its own metric.
    custom = example.run_custom_learner(overrides, tmp_path / "custom")
    assert custom["model_type"] == "Sequential"
    assert custom["val_acc"] > 0.5
    assert custom["val_margin"] > 0.0
    assert (tmp_path / "custom" / "metrics.json").is_file()


def test_from_torch_mate_config_runs_from_python_with_the_model_as_a_class_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure_all with the model as a class object: StepLR, batch transforms and the score as configured."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "from_torch_mate"))
    example = load_example("from_torch_mate")
    overrides = example.tiny_overrides(n_splits=3, max_epochs=3, limit_train_batches=8)
    out = example.run_with_class_object(overrides, tmp_path / "python")
    assert out["n_folds"] == 3
    assert out["val_acc"] > 0.5
    # StepLR(step_size=1, gamma=0.8) from lr 0.01, stepped after each of 3 epochs.
    assert out["lr_per_fold"] == pytest.approx([0.01 * 0.8**3] * 3)
    # The `before` batch transform saw every training batch: 3 folds x 3 epochs x 8 batches.
    assert out["train_batches_counted"] == 3 * 3 * 8
    assert (tmp_path / "python" / "metrics.json").is_file()


def test_from_neuromancer_setup_function_best_weights_profiler_and_wandb_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wandb_offline: None
) -> None:
    """data_setup_function + an unchanged Problem: warmup patience, best weights reloaded, profiler, offline sweep."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "from_neuromancer"))
    out = load_example("from_neuromancer").main(
        nsim=300, n_splits=2, max_epochs=6, patience=1, warmup=2, n_trials=2, sweep_epochs=2, run_dir=tmp_path
    )
    assert out["val_loss"] < 0.05, out["val_loss"]  # the next state's MSE + 0.1 x physics; the states are of order 1
    assert out["train_physics"] >= 0.0  # every loss the Problem returns is logged, per stage
    assert out["n_epochs"] >= 3, "warmup: the first 2 epochs never count against patience"
    if out["stop_reason"] is not None:
        assert "did not improve for 1 epochs" in out["stop_reason"]
    assert all(Path(p).is_file() for p in out["best_checkpoints"])
    # The best weights, loaded into the plain nn.Module, reproduce fold 0's validation reference loss.
    assert out["fold0_reloaded_val_reference"] == pytest.approx(out["fold0_best_val_reference"], rel=1e-4)
    assert 0.0 < out["test_loss"] < 0.05
    report = (tmp_path / "cv" / "profiler.txt").read_text(encoding="utf-8")
    assert "[fold 0] training_step" in report and "[fold 1] backward" in report
    # The sweep: a grid over lr and batch size, offline W&B runs, a ready-to-run best.yaml.
    sweep = out["sweep"]
    assert [t["state"] for t in sweep.trials] == ["COMPLETE", "COMPLETE"]
    assert {t["params"]["data.dataset.cfg.batch_size"] for t in sweep.trials} <= {16, 64}
    assert sweep.best_value == min(t["value"] for t in sweep.trials)
    best = (tmp_path / "sweep" / "best.yaml").read_text(encoding="utf-8")
    assert f"lr: {sweep.best_params['optimizer.cfg.lr']}" in best
    runs = sorted((tmp_path / "sweep" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    from lcv_tune_wandb import read_offline_run

    assert {read_offline_run(r).config["optimizer.cfg.lr"] for r in runs} == {
        t["params"]["optimizer.cfg.lr"] for t in sweep.trials
    }


def _tensorboard_tags(folder: Path) -> dict[str, set[str]]:
    """Scalar and histogram tags of every TensorBoard event file under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, set[str]] = {"scalars": set(), "histograms": set()}
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"histograms": 0, "scalars": 0})
        accumulator.Reload()
        tags["scalars"] |= set(accumulator.Tags()["scalars"])
        tags["histograms"] |= set(accumulator.Tags()["histograms"])
    return tags


def test_lightning_tutorial_autoencoder_checkpoints_resume_ensemble_and_lr_finder(tmp_path: Path) -> None:
    """The tutorial's autoencoder: bf16 on CPU, accumulation, clipping, best/last checkpoints, resume, lr finder."""
    out = load_example("lightning_tutorial_autoencoder").main(
        n_splits=2, max_epochs=2, patience=3, subset=600, lr_find_steps=30, run_dir=tmp_path
    )
    assert out["n_epochs"] == 2
    assert out["val_loss"] < 0.25, out["val_loss"]  # pixels in 0..1: predicting the mean image scores about 0.1-0.2
    assert out["history"][0][1]["train_loss"] < out["history"][0][0]["train_loss"]
    # Test on the 20% holdout (120 of 600 images), per fold, and the fold ensemble's reconstructions.
    assert len(out["test_per_fold"]) == 2 and 0.0 < out["test_loss"] < 0.25
    assert out["ensemble_shape"] == (out["n_test"], 64) and out["n_test"] == 120
    assert out["ensemble_mse"] <= max(f["test_loss"] for f in out["test_per_fold"]) + 1e-3
    # Best and last checkpoints; the best one as plain nn.Modules reproduces fold 0's validation loss.
    assert out["best_checkpoints_written"] and out["last_checkpoint"].is_file()
    assert out["embedding_shape"][1] == 3
    assert out["fold0_reloaded_val_loss"] == pytest.approx(out["fold0_best_val_loss"], rel=1e-3)
    # Resume: one more epoch, the first two unchanged.
    assert out["resumed_n_epochs"] == 3
    for fold in (0, 1):
        for epoch in (0, 1):
            resumed, first = out["resumed_history"][fold][epoch], out["history"][fold][epoch]
            assert resumed["val_loss"] == pytest.approx(first["val_loss"])
    # TensorBoard got every fold's values and the fold mean.
    tags = _tensorboard_tags(out["tensorboard_dir"])
    assert {"fold_0/val_loss", "fold_1/val_loss", "cv/val_loss_mean", "cv/val_loss_std"} <= tags["scalars"], tags
    # The learning-rate finder on fold 0: a curve, a suggestion inside the range, a plot.
    assert out["lr_finder_points"] >= 10
    assert out["lr_suggestion"] is not None and 1e-5 <= out["lr_suggestion"] <= 1.0
    assert out["lr_finder_plot"].is_file() and out["lr_finder_plot"].stat().st_size > 1000


def test_exploring_lightning_debug_tools_callbacks_and_optuna_sweep(tmp_path: Path) -> None:
    """fast_dev_run, overfit_batches, output/gradient/init callbacks, the profiler and an early-stopping sweep."""
    out = load_example("exploring_lightning").main(
        n_splits=2,
        max_epochs=2,
        overfit_epochs=15,
        n_trials=3,
        tune_epochs=5,
        patience=1,
        min_delta=0.2,
        run_dir=tmp_path,
    )
    # fast_dev_run: one batch of one epoch per fold, and no files.
    assert out["fast_dev_run_epochs"] == 1
    assert out["fast_dev_run_batches"] == {0: 1, 1: 1}
    assert not out["fast_dev_run_dir"].exists()
    # overfit_batches=2: the same two batches every epoch, learnt almost by heart.
    assert out["overfit_batches_per_epoch"] == {0: 2, 1: 2}
    assert out["overfit_last_loss"] < 0.3 * out["overfit_first_loss"]
    assert out["overfit_val_acc"] > 0.8
    # The outputs callback saw every training batch's dict; its epoch means track the logged train_loss.
    outputs = out["batch_outputs"]
    n_batches = len(outputs.outputs[0][0])
    assert n_batches == math.ceil(898 / 64)  # fold 0 trains on 898 or 899 of the 1797 images, 64 per batch
    assert set(outputs.outputs[0][0][0]) == {"loss", "acc"}
    means = outputs.epoch_means(0)
    assert means[1] < means[0]
    assert means[0] == pytest.approx(out["history"][0][0]["train_loss"], rel=0.05)
    assert out["val_acc"] > 0.8
    # Gradient histograms in TensorBoard, per fold and parameter.
    assert out["histograms_written"] > 0
    tags = _tensorboard_tags(out["tensorboard_dir"])
    assert {"fold_0/grad/net.0.weight", "fold_1/grad/net.2.bias"} <= tags["histograms"], tags["histograms"]
    # PyTorch's default init keeps every weight within 1/sqrt(fan_in); every fold starts from its own weights.
    for fold in (0, 1):
        for layer in out["init"][fold].values():
            assert layer["max_abs"] <= layer["bound"] + 1e-6
    assert out["init"][0]["net.0.weight"]["mean"] != out["init"][1]["net.0.weight"]["mean"]
    report = out["profiler_report"].read_text(encoding="utf-8")
    assert "[fold 0] training_step" in report
    # The sweep: trials.jsonl, best.yaml, and early stopping (min_delta 0.2, patience 1) ending trials before epoch 5.
    trials = out["sweep_trials"]
    assert len(trials) == 3
    finished = [t for t in trials if t["state"] == "COMPLETE"]
    early = [t for t in finished if t["epochs"] < 5]
    assert early, trials
    stopped = json.loads((tmp_path / "sweep" / f"trial_{early[0]['number']}" / "metrics.json").read_text())
    assert "did not improve" in stopped["stop_reason"], stopped["stop_reason"]
    assert stopped["n_epochs"] == early[0]["epochs"]
    assert out["sweep"].best_value == min(t["value"] for t in finished)
    assert "lr:" in (tmp_path / "sweep" / "best.yaml").read_text(encoding="utf-8")


def test_nested_example_reports_both_estimates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lcv tune examples/nested/config.yaml --nested`` with 2 outer folds, 1 trial and 1 epoch writes its report."""
    run_dir = tmp_path / "run"
    overrides = ["trainer.max_epochs=1", "tune.n_trials=1", "tune.nested.cfg.n_splits=2"]
    code = main(["tune", str(EXAMPLES / "nested" / "config.yaml"), *overrides, "--nested", "--run-dir", str(run_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    report = json.loads((run_dir / "nested.json").read_text(encoding="utf-8"))
    assert len(report["outer"]) == 2 and report["metric"] == "test_acc"
    assert report["nested"]["mean"] > 0.5 and report["non_nested"] > 0.5
    assert "nested estimate     test_acc" in out and "non-nested estimate val_acc" in out
