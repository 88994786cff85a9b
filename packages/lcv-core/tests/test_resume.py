"""A fit killed with SIGKILL and resumed from ``last.ckpt`` ends with the history of an uninterrupted fit."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_core.callbacks.base import Callback
from lcv_core.trainer import CrossValidationTrainer

CHILD = r'''
"""A deterministic CPU fit: 3 folds, 6 epochs, Adam + StepLR, dropout, shuffling, top-2 checkpoints."""
import json
import pathlib
import sys
import time

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.callbacks.early_stopping import EarlyStopping
from lcv_core.trainer import CrossValidationTrainer


class Data:
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(90, 6, generator=g)
        self.dataset = TensorDataset(x, (x.sum(1) > 0).long())
        self.folds = [([j for j in range(90) if j // 30 != i], list(range(30 * i, 30 * i + 30))) for i in range(3)]

    def train_val_dataloaders(self):
        return [
            (DataLoader(Subset(self.dataset, t), batch_size=10, shuffle=True), DataLoader(Subset(self.dataset, v), 10))
            for t, v in self.folds
        ]


class Net(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=0.01)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)}


class Pause(Callback):
    """Touch a marker and wait to be killed at (epoch, fold, batch_idx)."""

    def __init__(self, at, marker) -> None:
        self.at, self.marker = at, marker

    def on_train_batch_start_per_fold(self, trainer, fold, batch_idx):
        if self.at is not None and (trainer.current_epoch, fold, batch_idx) == self.at:
            pathlib.Path(self.marker).touch()
            time.sleep(120)


def fit(run_dir, pause_at=None, marker="", resume=False):
    torch.set_num_threads(1)
    ckpt = ModelCheckpoint(save_top_k=2)
    trainer = CrossValidationTrainer(
        accelerator="cpu", devices=1, max_epochs=6, seed=3, enable_progress_bar=False, default_root_dir=run_dir,
        checkpoint_every_n_epochs=1,  # the kill points below are placed against last.ckpt after every epoch
        callbacks=[EarlyStopping(patience=10), ckpt, Pause(pause_at, marker)],
    )
    result = trainer.fit(Net, Data(), ckpt_path="last" if resume else None)
    return {"history": result.history, "kept": [[s, e] for s, e, _ in ckpt.kept], "best": result.checkpoints["best"]}


if __name__ == "__main__":
    run_dir, pause, marker, resume = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    out = fit(run_dir, tuple(pause) if pause else None, marker, resume)
    pathlib.Path(run_dir, "out.json").write_text(json.dumps(out))
'''


def _child(script: Path, run: Path, pause: tuple[int, int, int] | None, resume: bool) -> subprocess.Popen[bytes]:
    marker = run.parent / "paused"
    marker.unlink(missing_ok=True)
    args = [sys.executable, str(script), str(run), json.dumps(pause), str(marker), "1" if resume else "0"]
    with open(run.parent / "stderr.txt", "wb") as err:  # a file, not a pipe: a full pipe would block the child
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)


def _kill_when_paused(proc: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + 300  # generous: importing torch and lightning is slow on a busy machine
    while not marker.exists():
        if proc.poll() is not None:
            stderr = (marker.parent / "stderr.txt").read_text()[-2000:]
            raise AssertionError(f"the child ended before its kill point: {stderr}")
        assert time.monotonic() < deadline, "the child never reached its kill point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _last_epoch(run: Path) -> int:
    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["trainer"]["current_epoch"])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_history(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    run, marker = tmp_path / "run", tmp_path / "paused"

    # 1. killed at the start of the third epoch (epoch 1's checkpoint is the last one written)
    proc = _child(script, run, (2, 0, 0), resume=False)
    _kill_when_paused(proc, marker)
    assert _last_epoch(run) == 1
    # 2. resumed, then killed in the middle of the fifth epoch, in fold 1's fourth batch
    proc = _child(script, run, (4, 1, 3), resume=True)
    _kill_when_paused(proc, marker)
    assert _last_epoch(run) == 3
    # 3. resumed to the end (in this process: a third interpreter would only add torch's import time)
    fit = runpy.run_path(str(script))["fit"]
    resumed: dict[str, Any] = fit(str(run), resume=True)
    uninterrupted: dict[str, Any] = fit(str(tmp_path / "straight"))
    assert [len(h) for h in resumed["history"]] == [6, 6, 6]
    for fold_a, fold_b in zip(uninterrupted["history"], resumed["history"], strict=True):
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a.keys() == row_b.keys()
            assert row_a == pytest.approx(row_b, abs=1e-6)
    assert [e for _, e in resumed["kept"]] == [e for _, e in uninterrupted["kept"]]
    assert all(Path(p).is_file() for p in resumed["best"])
    epoch_dirs = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert epoch_dirs == sorted(f"epoch={e}" for _, e in resumed["kept"]), "top-k survives the kills"


class Crash(Callback):
    """Raise in the middle of fold ``fold``'s epoch ``epoch``, as a crash would interrupt it."""

    def __init__(self, epoch: int, fold: int) -> None:
        self.at = (epoch, fold)

    def on_train_batch_start_per_fold(self, *, trainer: Any, fold: int, batch_idx: int, **kwargs: Any) -> None:
        if (trainer.current_epoch, fold) == self.at and batch_idx == 3:
            raise KeyboardInterrupt("crash")


@pytest.mark.parametrize("schedule", ["sequential", "offload"])
def test_crash_mid_epoch_then_resume_in_process(data, tiny, trainer_kwargs, tmp_path: Path, schedule: str) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 3, "schedule": schedule, "checkpoint_every_n_epochs": 1}
    straight = CrossValidationTrainer(**kwargs).fit(tiny, data)
    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        CrossValidationTrainer(**kwargs, default_root_dir=run, callbacks=[Crash(epoch=1, fold=2)]).fit(tiny, data)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    done = [len(f["history"]) for f in state["folds"]]
    assert done == ([3, 3, 1, 0, 0] if schedule == "sequential" else [1] * 5)
    resumed = CrossValidationTrainer(**kwargs, default_root_dir=run).fit(tiny, data, ckpt_path="last")
    for fold_a, fold_b in zip(straight.history, resumed.history, strict=True):
        assert len(fold_a) == len(fold_b) == 3
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-6)
