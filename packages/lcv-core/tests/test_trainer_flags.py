"""Lightning's debugging flags (fast_dev_run, overfit_batches) and scheduled gradient accumulation in the fold loop."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.fabric.loggers import CSVLogger
from lightning.pytorch import LightningModule
from torch import nn

from lcv_config import LcvError
from lcv_core.callbacks.accumulation import GradientAccumulationScheduler
from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.checkpoint import ModelCheckpoint
from lcv_core.trainer import CrossValidationTrainer


class BatchRecorder(Callback):
    """Records, per (fold, epoch), the inputs of every training and validation batch and the optimizer steps."""

    def __init__(self) -> None:
        self.train: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
        self.val: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
        self.steps: dict[tuple[int, int], int] = defaultdict(int)

    def on_train_batch_start_per_fold(self, *, trainer: Any, fold: int, batch: Any, **kwargs: Any) -> None:
        self.train[fold, trainer.current_epoch].append(batch[0].clone())

    def on_validation_batch_start_per_fold(self, *, trainer: Any, fold: int, batch: Any, **kwargs: Any) -> None:
        self.val[fold, trainer.current_epoch].append(batch[0].clone())

    def on_before_optimizer_step(self, *, trainer: Any, fold: int, **kwargs: Any) -> None:
        self.steps[fold, trainer.current_epoch] += 1


def test_fast_dev_run_runs_n_batches_of_one_epoch_and_writes_nothing(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = BatchRecorder()
    run_dir = tmp_path / "run"
    trainer = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 5},
        fast_dev_run=2,
        default_root_dir=str(run_dir),
        loggers=[CSVLogger(str(tmp_path / "csv"))],
        callbacks=[recorder, ModelCheckpoint(dirpath=str(tmp_path / "ckpt"))],
    )
    result = trainer.fit(tiny, fold_data(n_folds=3, n=90))
    assert result.n_epochs == 1  # max_epochs=5 is overridden
    assert sorted(recorder.train) == [(0, 0), (1, 0), (2, 0)]
    assert all(len(batches) == 2 for batches in recorder.train.values())
    assert all(len(batches) == 2 for batches in recorder.val.values())
    assert "cv/val_loss_mean" in trainer.epoch_metrics
    assert not list(tmp_path.rglob("*.*"))  # no checkpoint, metrics, plot or logger file
    assert "fast_dev_run=2: every fold runs 2 training and 2 validation batch(es)" in capsys.readouterr().out


def test_fast_dev_run_true_is_one_batch(tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]) -> None:
    recorder = BatchRecorder()
    CrossValidationTrainer(**trainer_kwargs, fast_dev_run=True, callbacks=[recorder]).fit(tiny, fold_data(n_folds=2))
    assert {k: len(v) for k, v in recorder.train.items()} == {(0, 0): 1, (1, 0): 1}
    assert {k: len(v) for k, v in recorder.val.items()} == {(0, 0): 1, (1, 0): 1}


def test_negative_fast_dev_run_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="fast_dev_run=-1 is negative"):
        CrossValidationTrainer(fast_dev_run=-1)


@pytest.mark.parametrize("overfit", [2, 0.25])  # 8 training batches per fold: 0.25 of them is 2
def test_overfit_batches_trains_and_validates_on_the_same_first_training_batches(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], overfit: float, capsys: pytest.CaptureFixture[str]
) -> None:
    data = fold_data(n_folds=2, n=64, batch_size=4, shuffle=True)  # 32 training samples per fold
    recorder = BatchRecorder()
    trainer = CrossValidationTrainer(**trainer_kwargs, overfit_batches=overfit, callbacks=[recorder])
    result = trainer.fit(tiny, data)
    for fold in (0, 1):
        first, second = recorder.train[fold, 0], recorder.train[fold, 1]
        assert len(first) == len(second) == 2
        # shuffle is off: the same batches every epoch, and they are the fold's first training samples
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
        expected = data.dataset.tensors[0][data.train_indices[fold][:8]]
        assert torch.equal(torch.cat(first), expected)
        # validation runs on exactly those batches
        assert all(torch.equal(a, b) for a, b in zip(recorder.val[fold, 0], first, strict=True))
    assert result.oof_predictions is None  # validation samples are not held out
    assert f"overfit_batches={overfit!r}: every fold trains and validates" in capsys.readouterr().out


def test_overfitting_one_batch_drives_the_loss_down(tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=40, overfit_batches=1)
    result = CrossValidationTrainer(**trainer_kwargs).fit(
        tiny(lr=0.5, dropout=0.0), fold_data(n_folds=2, n=64, batch_size=8)
    )
    losses = [row["val_loss"] for row in result.history[0]]
    assert losses[-1] < 0.2 * losses[0]


def test_accumulation_schedule_sets_optimizer_steps_per_epoch(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]
) -> None:
    recorder = BatchRecorder()
    scheduler = GradientAccumulationScheduler(scheduling={0: 4, 2: 1})
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[recorder, scheduler])
    trainer.fit(tiny, fold_data(n_folds=2, n=64, batch_size=4))  # 8 training batches per fold
    for fold in (0, 1):
        assert [recorder.steps[fold, e] for e in range(3)] == [2, 2, 8]
    assert trainer.accumulate_grad_batches == 1


def test_a_constant_schedule_trains_exactly_as_accumulate_grad_batches(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]
) -> None:
    data = fold_data(n_folds=2, n=60, batch_size=4, shuffle=False)
    by_config = CrossValidationTrainer(**trainer_kwargs, accumulate_grad_batches=3).fit(tiny, data)
    scheduler = GradientAccumulationScheduler(scheduling={0: 3})
    by_callback = CrossValidationTrainer(**trainer_kwargs, callbacks=[scheduler]).fit(tiny, data)
    plain = CrossValidationTrainer(**trainer_kwargs).fit(tiny, data)
    assert by_callback.history == by_config.history
    assert by_callback.history != plain.history


def test_epochs_before_the_first_key_accumulate_one_batch() -> None:
    scheduler = GradientAccumulationScheduler(scheduling={2: 8, 5: 2})
    assert [scheduler.get_accumulate_grad_batches(e) for e in range(7)] == [1, 1, 8, 8, 8, 2, 2]
    from_json = GradientAccumulationScheduler(scheduling={"5": 2, "2": 8})  # JSON/TOML keys are strings
    assert from_json.scheduling == {0: 1, 2: 8, 5: 2}


@pytest.mark.parametrize(
    ("scheduling", "message"),
    [
        ({-1: 2}, "key -1 of scheduling is not an epoch"),
        ({"-3": 2}, "key '-3' of scheduling is not an epoch"),
        ({0: 4, 3: 0}, r"scheduling\[3\] = 0 is not an accumulation factor"),
        ({0: 2.5}, r"scheduling\[0\] = 2.5"),
        ({"a": 2}, "key 'a' of scheduling"),
        ({}, "expected a non-empty dict"),
    ],
)
def test_invalid_schedules_are_refused_naming_the_key(scheduling: Any, message: str) -> None:
    with pytest.raises(LcvError, match=message):
        GradientAccumulationScheduler(scheduling=scheduling)


def test_the_schedule_and_accumulate_grad_batches_together_are_refused(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]
) -> None:
    scheduler = GradientAccumulationScheduler(scheduling={0: 2})
    trainer = CrossValidationTrainer(**trainer_kwargs, accumulate_grad_batches=2, callbacks=[scheduler])
    with pytest.raises(LcvError, match="accumulate_grad_batches=2 and a GradientAccumulationScheduler"):
        trainer.fit(tiny, fold_data(n_folds=2, n=40))


def test_the_vectorized_schedule_falls_back_to_follow_an_accumulation_schedule(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = BatchRecorder()
    scheduler = GradientAccumulationScheduler(scheduling={0: 4})
    trainer = CrossValidationTrainer(**trainer_kwargs, schedule="vectorized", callbacks=[recorder, scheduler])
    trainer.fit(tiny, fold_data(n_folds=2, n=64, batch_size=4))
    assert "falls back to 'interleaved': a GradientAccumulationScheduler" in capsys.readouterr().out
    assert [recorder.steps[0, e] for e in range(2)] == [2, 2]


def test_vectorized_says_when_the_model_is_too_large_to_gain_on_the_cpu(
    fold_data: Any, trainer_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from lcv_core.trainer import VECTORIZE_PARAMETERS_CPU

    class Wide(LightningModule):
        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 3))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    wide = VECTORIZE_PARAMETERS_CPU // 11 + 1  # 8 * h + h + 3 * h + 3 > the threshold
    for hidden, noted in ((16, False), (wide, True)):
        trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, schedule="vectorized")
        result = trainer.fit(Wide, fold_data(n_folds=2, n=40), model_kwargs={"hidden": hidden})
        out = capsys.readouterr().out
        assert ("parameters per fold on the CPU" in out) == noted, out
        assert "falls back" not in out and result.n_epochs == 1  # it still runs vectorized, as asked
