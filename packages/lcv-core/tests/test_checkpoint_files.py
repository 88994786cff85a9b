"""Checkpoint files are never silently lost: fixed names are versioned, failed writes are loud, leftovers removed."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_core import CrossValidationTrainer
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.core import saving


def _fit(tiny: Any, data: Any, kwargs: dict[str, Any], run: Path, **extra: Any) -> Any:
    return CrossValidationTrainer(**{**kwargs, **extra}, default_root_dir=str(run)).fit(tiny, data)


def _epoch_of(folder: Path) -> int:
    return int(torch.load(folder / "fold_0.ckpt", weights_only=True)["epoch"])


def test_a_fixed_filename_is_overwritten_by_each_new_best_and_never_deleted(
    data, tiny, trainer_kwargs, tmp_path: Path
) -> None:
    ckpt = ModelCheckpoint(filename="best", save_top_k=1)
    result = _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=4, callbacks=[ckpt])
    curve = result.curve("val_loss")
    assert sum(curve[e] < min(curve[:e]) for e in range(1, 4)) >= 1, "a second best epoch replaced the first"
    folders = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir())
    assert folders == ["best"]
    assert _epoch_of(tmp_path / "run" / "checkpoints" / "best") == result.best_epoch
    assert all(Path(p).is_file() for p in ckpt.best_model_paths)


def test_a_fixed_filename_is_versioned_when_several_epochs_are_kept(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(filename="best", save_top_k=2)
    result = _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=4, callbacks=[ckpt])
    root = tmp_path / "run" / "checkpoints"
    folders = {p.name: _epoch_of(p) for p in root.iterdir() if p.is_dir()}
    curve = result.curve("val_loss")
    assert set(folders) <= {"best", "best-v1", "best-v2"} and len(folders) == 2
    assert sorted(folders.values()) == sorted(sorted(range(4), key=lambda e: curve[e])[:2])
    assert {name for _, _, name in ckpt.kept} == set(folders)
    assert _epoch_of(Path(ckpt.best_model_paths[0]).parent) == result.best_epoch


def test_leftovers_of_a_killed_run_are_removed_at_the_next_start(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    root = tmp_path / "run" / "checkpoints"
    root.mkdir(parents=True)
    leftovers = [root / ".last.ckpt.k3j2h1g0.tmp", root / ".last.ckpt.lcvtmp-999999999-abc.tmp"]
    for f in leftovers:
        f.write_bytes(b"half")
    (root / ".epoch=1.a1b2c3d4").mkdir()
    (root / ".epoch=1.a1b2c3d4" / "fold_0.ckpt").write_bytes(b"half")
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    _fit(tiny, data, trainer_kwargs, tmp_path / "run", max_epochs=1, callbacks=[ModelCheckpoint()])
    assert sorted(p.name for p in root.iterdir()) == ["epoch=0", "last.ckpt", "notes.txt"]


@pytest.mark.parametrize(("code", "why"), [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "permission denied")])
def test_a_failed_write_names_the_file_keeps_the_previous_one_and_says_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, why: str
) -> None:
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saving.save({"format": saving.FORMAT, "epoch": 1}, target)
    real_mkstemp = tempfile.mkstemp

    def failing_mkstemp(**kwargs: Any) -> tuple[int, str]:
        if code == errno.EACCES:
            raise PermissionError(code, "Permission denied")
        fd, name = real_mkstemp(**kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name  # every write: ENOSPC

    monkeypatch.setattr(tempfile, "mkstemp", failing_mkstemp)
    with pytest.raises(OSError, match=why) as info:
        saving.save({"format": saving.FORMAT, "epoch": 2, "big": torch.zeros(100_000)}, target)
    message = str(info.value)
    assert str(target) in message and "the previous last.ckpt is unchanged" in message
    assert f"lcv cv --resume {tmp_path / 'run'}" in message
    assert info.value.errno == code
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # the temporary file is gone
