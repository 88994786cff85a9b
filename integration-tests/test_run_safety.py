"""Through the real ``lcv`` process: one run per directory, checkpoints that are data, fold layouts kept, refusals
that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

CONFIG = """\
name: iris
seed: 0
data:
  dataset: iris
  holdout: 0.2
  splitter: {name: stratified_kfold, cfg: {n_splits: 5, shuffle: true}}
  fitted_transforms: [standardize]
  dataloaders: {default: {batch_size: 16}}
model: {name: mlp, cfg: {in_features: 4, out_features: 3, hidden: [16]}}
criterion: CrossEntropyLoss
optimizer: {name: Adam, cfg: {lr: 0.05}}
trainer: {accelerator: cpu, max_epochs: 3, monitor: val_loss, mode: min, enable_progress_bar: false}
callbacks:
  - {name: model_checkpoint, cfg: {monitor: val_loss, mode: min}}
"""


@pytest.fixture(scope="module")
def run(lcv_cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("safety")
    (tmp / "iris.yaml").write_text(CONFIG, encoding="utf-8")
    done = lcv_cli.run(["cv", "iris.yaml", "--run-dir", "run"], cwd=tmp)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def test_two_runs_on_one_directory_one_wins_and_the_files_are_its_own(lcv_cli, tmp_path: Path) -> None:
    (tmp_path / "iris.yaml").write_text(CONFIG.replace("max_epochs: 3", "max_epochs: 30"), encoding="utf-8")
    first = lcv_cli.start(["cv", "iris.yaml", "seed=1", "--run-dir", "shared"], cwd=tmp_path)
    second = lcv_cli.start(["cv", "iris.yaml", "seed=2", "--run-dir", "shared"], cwd=tmp_path)
    done = [lcv_cli.wait(first), lcv_cli.wait(second)]
    assert sorted(d.returncode for d in done) == [0, 2], [d.stderr for d in done]
    winner, loser = (done[0], done[1]) if done[0].returncode == 0 else (done[1], done[0])
    assert "is in use by pid" in loser.stderr and "--run-dir" in loser.stderr and "Traceback" not in loser.stderr
    shared = tmp_path / "shared"
    seed = yaml.safe_load((shared / "config.yaml").read_text(encoding="utf-8"))["seed"]
    assert f"seed={seed}" in " ".join(winner.args)
    metrics = json.loads((shared / "metrics.json").read_text(encoding="utf-8"))
    rows = (shared / "logs" / "csv" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert len([r for r in rows[1:] if r.strip()]) > 0
    assert metrics and not (shared / ".lock").exists() and not (shared / "error.txt").exists()


def test_runs_started_in_the_same_second_get_their_own_directories(lcv_cli, tmp_path: Path) -> None:
    (tmp_path / "iris.yaml").write_text(CONFIG.replace("max_epochs: 3", "max_epochs: 1"), encoding="utf-8")
    procs = [lcv_cli.start(["cv", "iris.yaml"], cwd=tmp_path) for _ in range(2)]
    done = [lcv_cli.wait(p) for p in procs]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    dirs = [p for p in (tmp_path / "runs" / "iris").iterdir() if p.is_dir()]
    assert len(dirs) == 2 and all((d / "metrics.json").is_file() for d in dirs)


@pytest.mark.parametrize("command", ["test", "predict"])
def test_test_and_predict_refuse_another_fold_layout(lcv_cli, run: Path, command: str) -> None:
    done = lcv_cli.run([command, str(run), "data.splitter.cfg.n_splits=3"], cwd=run.parent)
    assert done.returncode == 2, done.stderr
    assert "data.splitter" in done.stderr and "another fold layout" in done.stderr and "Traceback" not in done.stderr


def test_a_refused_resume_writes_nothing(lcv_cli, run: Path) -> None:
    names = ("config.yaml", "folds.json", "transforms.json", "metrics.json")
    before = {n: (run / n).read_bytes() for n in names}
    done = lcv_cli.run(["cv", "--resume", str(run), "data.splitter.cfg.n_splits=3"], cwd=run.parent)
    assert done.returncode == 2 and "holds 5 folds" in done.stderr, done.stderr
    assert {n: (run / n).read_bytes() for n in names} == before
    assert not (run / ".lock").exists()


# Through real processes for os.system; subprocess.call and builtins.exec go through the same check in lcv-core's
# tests (in one process: every crafted checkpoint here costs a process that imports torch).
@pytest.mark.parametrize(
    ("name", "payload"),
    [("os.system", "model: {{name: os.system, cfg: {{command: 'touch {marker}'}}}}")],
)
@pytest.mark.parametrize("command", ["test", "predict", "resume"])
def test_a_crafted_checkpoint_runs_nothing_without_the_trust_flag(
    lcv_cli, run: Path, tmp_path: Path, name: str, payload: str, command: str
) -> None:
    marker = tmp_path / "MARKER"
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config.update(yaml.safe_load(payload.format(marker=marker)))
    text = yaml.safe_dump(config, sort_keys=False)
    crafted = tmp_path / "crafted"
    if command == "resume":
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        state["experiment_config"] = text
        (crafted / "checkpoints").mkdir(parents=True)
        torch.save(state, crafted / "checkpoints" / "last.ckpt")
        args = ["cv", "--resume", str(crafted)]
    else:
        (fold,) = [p for p in (run / "checkpoints").glob("epoch=*/fold_0.ckpt")]
        state = torch.load(fold, weights_only=True)
        state["experiment_config"] = text
        crafted.mkdir()
        torch.save(state, crafted / "fold_0.ckpt")
        args = [command, str(crafted / "fold_0.ckpt")]
    done = lcv_cli.run(args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"model.name = '{name}'" in done.stderr and "--trust-checkpoint" in done.stderr
    assert not marker.exists()
    assert sorted(p.name for p in crafted.rglob("*")) in (["fold_0.ckpt"], ["checkpoints", "last.ckpt"])
