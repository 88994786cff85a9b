"""Nested cross-validation end to end: ``lcv tune --nested`` on digits, killed once and resumed; outer test rows unseen.

The report (``nested.json``) is checked against the per-outer-fold files it is built from; a second test poisons the
outer test rows' inputs and shows that no inner trial changes while the outer score does.
"""

from __future__ import annotations

import json
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

if TYPE_CHECKING:
    from conftest import LcvCli

N_TRIALS = 2
CONFIG: dict[str, Any] = {
    "name": "digits-nested",
    "seed": 0,
    "data": {
        "dataset": "digits",
        "splitter": {"name": "stratified_kfold", "cfg": {"n_splits": 3, "shuffle": True}},
        "fitted_transforms": ["standardize"],
        "dataloaders": {"default": {"batch_size": 128}},
    },
    "model": {"name": "mlp", "cfg": {"in_features": 64, "out_features": 10, "hidden": [16]}},
    "criterion": "CrossEntropyLoss",
    "optimizer": {"name": "Adam", "cfg": {"lr": 0.01}},
    "trainer": {"accelerator": "cpu", "max_epochs": 2, "enable_progress_bar": False},
    "tune": {
        "n_trials": N_TRIALS,
        "pruner": "nop",
        "space": {"optimizer.cfg.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
        "nested": {"splitter": "stratified_kfold", "cfg": {"n_splits": 3, "shuffle": True}},
    },
}


def _finished(study_dir: Path) -> list[dict[str, Any]]:
    path = study_dir / "trials.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread here and in the lcv processes: a tiny MLP on a shared CPU is slower with more."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_nested_tune_killed_mid_way_resumes_and_its_report_matches_the_outer_fold_files(
    lcv_cli: LcvCli, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    run_dir = tmp_path / "run"
    args = ["tune", str(config), "--nested", "--run-dir", str(run_dir)]
    proc = lcv_cli.start(args, tmp_path)
    deadline = time.monotonic() + 120
    while not (run_dir / "outer_1" / "trials.jsonl").exists():  # outer fold 0 done, outer fold 1 tuning
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "outer fold 1 never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run_dir / "outer_0" / "outer_result.json").is_file()
    assert not (run_dir / "nested.json").exists()
    first = (run_dir / "outer_0" / "outer_result.json").read_text(encoding="utf-8")

    done = lcv_cli.run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "took over the lock" in done.stderr
    assert "outer fold 1/3" not in done.stdout  # outer fold 0 was read back, not tuned again
    assert (run_dir / "outer_0" / "outer_result.json").read_text(encoding="utf-8") == first

    report = json.loads((run_dir / "nested.json").read_text(encoding="utf-8"))
    splits = json.loads((run_dir / "outer_folds.json").read_text(encoding="utf-8"))["folds"]
    assert len(splits) == 3 and sorted(i for s in splits for i in s["test"]) == list(range(1797))
    scores, inner = [], []
    for j, split in enumerate(splits):
        fold_dir = run_dir / f"outer_{j}"
        outer = json.loads((fold_dir / "outer_result.json").read_text(encoding="utf-8"))
        assert len(_finished(fold_dir)) == N_TRIALS  # the killed study ran only the trials it had left
        best = yaml.safe_load((fold_dir / "best.yaml").read_text(encoding="utf-8"))
        assert outer["best_params"] == {"optimizer.cfg.lr": best["optimizer"]["cfg"]["lr"]}
        values = {r["value"] for r in _finished(fold_dir)}
        assert outer["inner_value"] == min(values)
        final = json.loads((fold_dir / "final" / "test_metrics.json").read_text(encoding="utf-8"))
        assert outer["score"] == final["final"]["test_loss"]
        assert outer["score"] == pytest.approx(statistics.fmean(m["test_loss"] for m in final["per_fold"]))
        folds = json.loads((fold_dir / "folds.json").read_text(encoding="utf-8"))
        assert sorted(folds["test"]) == sorted(split["test"])  # the outer test rows are this fold's test data only
        seen = {i for f in folds["folds"] for part in ("train", "val") for i in f[part]}
        assert seen == set(split["train"]) and not seen & set(split["test"])
        assert report["outer"][j] == outer
        scores.append(outer["score"])
        inner.append(outer["inner_value"])
    nested = report["nested"]
    assert nested["per_outer_fold"] == scores
    assert nested["mean"] == pytest.approx(statistics.fmean(scores))
    assert nested["std"] == pytest.approx(statistics.stdev(scores))
    half = 4.302652729911275 * statistics.stdev(scores) / 3**0.5  # Student's t(0.975, 2 df)
    assert nested["ci95"] == pytest.approx([statistics.fmean(scores) - half, statistics.fmean(scores) + half])
    assert report["inner_mean"] == pytest.approx(statistics.fmean(inner))
    all_data = [r["value"] for r in _finished(run_dir / "non_nested")]
    assert len(all_data) == N_TRIALS and report["non_nested"] == min(all_data)
    assert report["difference"] == pytest.approx(nested["mean"] - report["non_nested"])
    lrs = [o["best_params"]["optimizer.cfg.lr"] for o in report["outer"]]
    stability = report["stability"]["optimizer.cfg.lr"]
    assert stability["values"] == lrs and stability["distinct"] == len(set(lrs))
    assert stability["min"] == min(lrs) and stability["max"] == max(lrs)
    text = (run_dir / "report.txt").read_text(encoding="utf-8")
    assert f"nested estimate     test_loss {nested['mean']:.4f} ± {nested['std']:.4f}" in text
    assert f"non-nested estimate val_loss {report['non_nested']:.4f}" in text
    assert text.strip() in done.stdout.replace("\r", "")


def poisoned_digits(rows: list[int] | None = None) -> TensorDataset:
    """Digits, with the inputs of ``rows`` replaced by large noise (a dataset function a config names by path)."""
    from lcv_data import load_digits

    x, y = load_digits().tensors
    x = x.clone()
    if rows:
        x[rows] = torch.from_numpy(np.random.default_rng(1).normal(0, 1e3, (len(rows), x.shape[1]))).float()
    return TensorDataset(x, y)


@pytest.mark.usefixtures("one_thread")
def test_poisoning_the_outer_test_rows_changes_no_inner_trial_only_the_outer_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lcv_core import nested_tune
    from lcv_data import CrossValDataModule, load_digits

    outer_cfg = {"n_splits": 2, "shuffle": True}
    test_rows = (
        CrossValDataModule(load_digits(), seed=0).outer_folds("stratified_kfold", outer_cfg)[0].test_indices.tolist()
    )
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the config names poisoned_digits by its dotted path
    results = []
    for name, rows in (("clean", None), ("poisoned", test_rows)):
        cfg = json.loads(json.dumps(CONFIG))
        cfg["data"]["dataset"] = {"name": "test_nested.poisoned_digits", "cfg": {"rows": rows}}
        cfg["trainer"]["max_epochs"] = 1
        cfg["tune"]["nested"] = {
            "splitter": "stratified_kfold",
            "cfg": outer_cfg,
            "final": "refit",
            "non_nested": False,
        }
        results.append(nested_tune(cfg_model(cfg), run_dir=tmp_path / name, print_report=False))
    clean, poisoned = (tmp_path / "clean" / "outer_0", tmp_path / "poisoned" / "outer_0")
    assert _finished(clean) == _finished(poisoned)  # every inner trial: same parameters, same fold mean per epoch
    for fold in (clean, poisoned):
        assert sorted(json.loads((fold / "folds.json").read_text(encoding="utf-8"))["test"]) == sorted(test_rows)
    assert results[0].outer[0].inner_value == results[1].outer[0].inner_value
    assert results[1].outer[0].score > 2 * results[0].outer[0].score  # the refit model meets the noise only here
    assert results[0].outer[0].final == "refit" and (clean / "final" / "refit.pt").is_file()


def cfg_model(cfg: dict[str, Any]) -> Any:
    from lcv_config import ExperimentConfig

    return ExperimentConfig.model_validate(cfg)
