"""``last.ckpt`` written in the background: each file holds its epoch exactly, complete at the end of the fit and after
an error, and a resumed fit gives the uninterrupted history (issue #24)."""

from __future__ import annotations

import io
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_core.callbacks.base import Callback
from lcv_core.core import saving
from lcv_core.demos import TinyClassifier
from lcv_core.loop import checkpoint
from lcv_core.loop.checkpoint import LastCheckpointWriter
from lcv_core.trainer import CrossValidationTrainer

IN_PLACE, BACKGROUND = sys.maxsize, 0  # LastCheckpointWriter(background_bytes=...): never / always in the background


class AdamTiny(TinyClassifier):
    """The tiny classifier with Adam, whose moments the next epoch updates in place while the last one is written."""

    def configure_optimizers(self) -> Any:
        """Return Adam."""
        return torch.optim.Adam(self.parameters(), lr=0.01)


def _trainer(kwargs: dict[str, Any], run: Path | None, background_bytes: int, **extra: Any) -> CrossValidationTrainer:
    """A trainer whose writer goes to the background above ``background_bytes``, writing after every epoch."""
    every = {"checkpoint_every_n_epochs": 1}  # these tests are about how each write is made, not how often
    trainer = CrossValidationTrainer(**{**every, **kwargs, **extra}, default_root_dir=str(run) if run else None)
    trainer.schedule.last_writer = LastCheckpointWriter(background_bytes=background_bytes)
    return trainer


def _record_writes(monkeypatch: pytest.MonkeyPatch, delay: float) -> list[dict[str, Any]]:
    """Record what each write puts on disk, as read back from its bytes; background writes take ``delay`` longer."""
    written: list[dict[str, Any]] = []

    def slow_save(state: Any, path: Any) -> Path:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(delay)  # training goes on meanwhile
        buffer = io.BytesIO()
        torch.save(dict(state), buffer)
        buffer.seek(0)
        written.append(saving.unpack(torch.load(buffer, weights_only=True)))
        return saving.save(state, path)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    return written


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"  # NaN == NaN here


def test_background_writes_hold_their_epoch_exactly_while_training_goes_on(
    data, tiny, trainer_kwargs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 4, "schedule": "interleaved"}
    in_place = _record_writes(monkeypatch, delay=0.0)
    _trainer(kwargs, tmp_path / "a", IN_PLACE).fit(AdamTiny, data)
    background = _record_writes(monkeypatch, delay=0.3)  # longer than an epoch of the tiny model
    trainer = _trainer(kwargs, tmp_path / "b", BACKGROUND)
    trainer.fit(AdamTiny, data)
    assert trainer.schedule.last_writer.background_s > 0  # the writes did run in the background
    assert [w["trainer"]["current_epoch"] for w in background] == [0, 1, 2, 3]
    for a, b in zip(in_place, background, strict=True):
        a["trainer"].pop("checkpoint_paths"), b["trainer"].pop("checkpoint_paths")  # the two run directories
        for key in ("folds", "rng", "trainer", "best_weights", "callbacks", "split"):
            _assert_same(a[key], b[key], key)


def test_the_last_epoch_is_on_disk_when_fit_returns(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    trainer = _trainer({**trainer_kwargs, "max_epochs": 3}, tmp_path, BACKGROUND)
    result = trainer.fit(tiny, data)
    state = saving.load(tmp_path / "checkpoints" / "last.ckpt")
    assert state["trainer"]["current_epoch"] == 2
    assert [f["history"] for f in state["folds"]] == result.history
    assert not trainer.schedule.last_writer.pending
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")], "a temporary file is left"


class _Crash(Callback):
    def on_train_batch_start_per_fold(self, *, trainer: Any, fold: int, batch_idx: int, **kwargs: Any) -> None:
        if (trainer.current_epoch, fold, batch_idx) == (2, 1, 1):
            raise KeyboardInterrupt("crash")


@pytest.mark.parametrize("schedule", ["interleaved", "sequential"])
def test_after_an_error_the_pending_write_is_complete_and_resume_is_exact(
    data, tiny, trainer_kwargs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 4, "schedule": schedule}
    straight = CrossValidationTrainer(**kwargs).fit(AdamTiny, data)
    _record_writes(monkeypatch, delay=0.2)  # the write before the crash is still running when it comes
    with pytest.raises(KeyboardInterrupt):
        _trainer(kwargs, tmp_path, BACKGROUND, callbacks=[_Crash()]).fit(AdamTiny, data)
    state = saving.load(tmp_path / "checkpoints" / "last.ckpt")  # complete: fit flushed it before raising
    done = [len(f["history"]) for f in state["folds"]]
    assert done == ([4, 2, 0, 0, 0] if schedule == "sequential" else [2] * 5)
    resumed = _trainer(kwargs, tmp_path, BACKGROUND).fit(AdamTiny, data, ckpt_path="last")
    for fold_a, fold_b in zip(straight.history, resumed.history, strict=True):
        assert len(fold_a) == len(fold_b) == 4
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-6)


def test_a_failed_background_write_fails_the_fit_with_its_message(
    data, tiny, trainer_kwargs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(state: Any, path: Any) -> Path:
        raise OSError(28, f"Cannot write checkpoint {path}: the disk is full.")

    monkeypatch.setattr(checkpoint, "save", full_disk)
    with pytest.raises(OSError, match="the disk is full"):
        _trainer({**trainer_kwargs, "max_epochs": 2}, tmp_path, BACKGROUND).fit(tiny, data)


def test_a_small_checkpoint_is_written_in_place_and_a_large_one_in_the_background(
    data, tiny, trainer_kwargs, tmp_path: Path
) -> None:
    small = _trainer({**trainer_kwargs, "max_epochs": 2}, tmp_path / "small", checkpoint.BACKGROUND_BYTES)
    small.fit(tiny, data)
    assert small.schedule.last_writer.background_s == 0.0  # the tiny model's checkpoint is far below 1 MiB
    large = _trainer({**trainer_kwargs, "max_epochs": 2}, tmp_path / "large", 1)
    large.fit(tiny, data)
    assert large.schedule.last_writer.background_s > 0.0


class _CrashAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start_per_fold(self, *, trainer: Any, fold: int, batch_idx: int, **kwargs: Any) -> None:
        if (trainer.current_epoch, fold, batch_idx) == (self.epoch, 1, 1):
            raise KeyboardInterrupt("crash")


@pytest.mark.parametrize("schedule", ["interleaved", "sequential"])
def test_checkpoint_every_n_epochs_writes_less_often_and_resume_stays_exact(
    data, trainer_kwargs, tmp_path: Path, schedule: str
) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 5, "schedule": schedule, "checkpoint_every_n_epochs": 2}
    straight = CrossValidationTrainer(**kwargs).fit(AdamTiny, data)
    with pytest.raises(KeyboardInterrupt):
        CrossValidationTrainer(**kwargs, default_root_dir=str(tmp_path), callbacks=[_CrashAt(3)]).fit(AdamTiny, data)
    state = saving.load(tmp_path / "checkpoints" / "last.ckpt")
    done = [len(f["history"]) for f in state["folds"]]
    # written after epochs 2 and 4 (1-based) and after a fold's last: not after epoch 3, in which the crash came
    assert done == ([5, 2, 0, 0, 0] if schedule == "sequential" else [2] * 5)
    resumed = CrossValidationTrainer(**kwargs, default_root_dir=str(tmp_path)).fit(AdamTiny, data, ckpt_path="last")
    assert saving.load(tmp_path / "checkpoints" / "last.ckpt")["trainer"]["current_epoch"] == 4  # the last epoch
    for fold_a, fold_b in zip(straight.history, resumed.history, strict=True):
        assert len(fold_a) == len(fold_b) == 5
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-6)


def test_auto_writes_when_the_training_since_the_last_write_is_19_times_its_cost() -> None:
    writer = LastCheckpointWriter()
    assert writer.due()  # the first write: its cost is not known yet
    writer.writes, writer.last_cost_s = 1, 10.0
    assert writer.due()  # the second too: the first pays one-time work (a slow first write is no trend)
    writer.writes, writer.previous_cost_s, writer.last_cost_s = 2, 10.0, 0.01
    writer.last_end = time.perf_counter() - 0.1
    assert not writer.due()  # 0.1 s of training against 19 x 0.01 s
    writer.last_end = time.perf_counter() - 0.2
    assert writer.due()
    writer.previous_cost_s, writer.last_cost_s = 0.01, 10.0  # one slow write: the smaller cost of the last two
    assert writer.due()


class _SlowState(Callback):
    """A callback whose state takes ``seconds`` to capture (a checkpoint slow against the epochs); notes each time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.captured: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        self.captured.append(time.perf_counter())
        time.sleep(self.seconds)
        return {}


class _SlowEpochs(Callback):
    """Each epoch takes ``seconds`` longer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_fold_start(self, **kwargs: Any) -> None:
        time.sleep(self.seconds)


def test_auto_writes_a_slow_checkpoint_seldom_always_after_the_last_epoch_and_resumes_exactly(
    data, trainer_kwargs, tmp_path: Path
) -> None:
    epochs, capture = 30, 0.02  # a 20 ms capture against epochs of ~10 ms: every epoch would cost ~2/3 of the fit
    # checkpoint_every_n_epochs: auto, the default; interleaved for every run (the crash callback needs it)
    kwargs = {**trainer_kwargs, "max_epochs": epochs, "schedule": "interleaved"}
    slow = _SlowState(capture)
    callbacks = [slow, _SlowEpochs(0.005)]
    trainer = CrossValidationTrainer(**kwargs, default_root_dir=str(tmp_path / "run"), callbacks=callbacks)
    straight = trainer.fit(AdamTiny, data)
    writer = trainer.schedule.last_writer
    assert len(slow.captured) == writer.writes < epochs / 3
    # after the first two, a write comes only once the training since the one before took 19 times its cost
    between = slow.captured[1:-1]  # from the second write to the one before the last (which the end forces)
    gaps = [b - a for a, b in zip(between, between[1:], strict=False)]
    assert gaps, slow.captured
    assert all(gap >= 20 * capture for gap in gaps), gaps
    state = saving.load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert state["trainer"]["current_epoch"] == epochs - 1  # always after the last epoch
    # killed in epoch 20, resumed from whatever epoch auto wrote last: the uninterrupted history
    run = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        CrossValidationTrainer(**kwargs, default_root_dir=str(run), callbacks=[_SlowState(capture), _CrashAt(20)]).fit(
            AdamTiny, data
        )
    written = saving.load(run / "checkpoints" / "last.ckpt")["trainer"]["current_epoch"]
    assert 1 <= written <= 19
    resumed = CrossValidationTrainer(**kwargs, default_root_dir=str(run), callbacks=[_SlowState(capture)]).fit(
        AdamTiny, data, ckpt_path="last"
    )
    for fold_a, fold_b in zip(straight.history, resumed.history, strict=True):
        assert len(fold_a) == len(fold_b) == epochs
        for row_a, row_b in zip(fold_a, fold_b, strict=True):
            assert row_a == pytest.approx(row_b, abs=1e-6)


def test_auto_writes_after_every_epoch_when_the_checkpoint_is_cheap_against_them(
    data, trainer_kwargs, tmp_path: Path
) -> None:
    trainer = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 4}, default_root_dir=str(tmp_path), callbacks=[_SlowEpochs(0.5)]
    )
    trainer.fit(AdamTiny, data)
    assert trainer.schedule.last_writer.writes == 4  # a tiny model's checkpoint (ms) against 0.5 s epochs


@pytest.mark.parametrize("schedule", ["interleaved", "vectorized"])
def test_best_weights_of_the_epoch_just_trained_are_written_once_and_resume_to_the_best_models(
    data, trainer_kwargs, tmp_path: Path, schedule: str
) -> None:
    """While the best epoch is the last one, its weights are the folds' models: stored once, restored from them.

    ``mode="max"`` on the falling ``val_loss`` makes epoch 0 the best of all: the 1-epoch checkpoint holds it only
    as the folds' models, and the fit resumed from it to 4 epochs must still return epoch 0's weights, as the
    uninterrupted fit does (not the last epoch's).
    """
    kwargs = {**trainer_kwargs, "mode": "max", "schedule": schedule, "checkpoint_every_n_epochs": 1}
    kwargs.pop("max_epochs", None)
    CrossValidationTrainer(**kwargs, max_epochs=1, default_root_dir=str(tmp_path / "a")).fit(AdamTiny, data)
    state = saving.load(tmp_path / "a" / "checkpoints" / "last.ckpt")
    assert state["best_weights"]["epoch"] == 0 and state["best_weights"]["states_are_the_models"]
    assert state["best_weights"]["states"] == []  # not a second copy of every fold's weights
    resumed = CrossValidationTrainer(**kwargs, max_epochs=4, default_root_dir=str(tmp_path / "a")).fit(
        AdamTiny, data, ckpt_path="last"
    )
    whole = CrossValidationTrainer(**kwargs, max_epochs=4, default_root_dir=str(tmp_path / "b")).fit(AdamTiny, data)
    assert resumed.best_epoch == whole.best_epoch == 0
    assert resumed.history == whole.history
    last = saving.load(tmp_path / "b" / "checkpoints" / "last.ckpt")
    for got, want, trained in zip(resumed.models, whole.models, last["folds"], strict=True):
        for name, tensor in want.state_dict().items():
            assert torch.equal(got.state_dict()[name], tensor), name
        assert not torch.equal(want.state_dict()["net.0.weight"], trained["model"]["net.0.weight"])  # best != last
