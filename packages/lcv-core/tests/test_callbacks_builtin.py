"""The built-in callbacks in real fits: LearningRateMonitor, RichProgressBar, Timer, ModelSummary."""

from __future__ import annotations

import csv
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from lcv_config import LcvError
from lcv_core.callbacks.lr_monitor import LearningRateMonitor
from lcv_core.callbacks.model_summary import ModelSummary
from lcv_core.callbacks.progress import RichProgressBar
from lcv_core.callbacks.timer import Timer, parse_duration
from lcv_core.trainer import CrossValidationTrainer


def _fit(model: Any, data: Any, kwargs: dict[str, Any], *callbacks: Any, **extra: Any) -> Any:
    return CrossValidationTrainer(**{**kwargs, **extra}, callbacks=list(callbacks)).fit(model, data)


# -- LearningRateMonitor ------------------------------------------------------------------------------


def test_lr_monitor_per_epoch_logs_to_history_and_csv(data, tiny, trainer_kwargs, tmp_path: Path) -> None:
    class Decaying(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}

    monitor = LearningRateMonitor()
    _fit(Decaying, data, trainer_kwargs, monitor, max_epochs=3, limit_train_batches=1, default_root_dir=str(tmp_path))
    assert monitor.history["fold_0/lr-SGD"] == pytest.approx([0.1, 0.05, 0.025])
    assert monitor.history["fold_4/lr-SGD"] == pytest.approx([0.1, 0.05, 0.025])
    with (tmp_path / "logs" / "csv" / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("fold_2/lr-SGD")]
    assert [float(r["fold_2/lr-SGD"]) for r in rows] == pytest.approx([0.1, 0.05, 0.025])
    assert monitor.state_dict()["history"]["fold_1/lr-SGD"] == pytest.approx([0.1, 0.05, 0.025])


def test_lr_monitor_per_step_with_param_groups(data, tiny, trainer_kwargs) -> None:
    class TwoGroups(tiny):  # type: ignore[misc, valid-type]
        def configure_optimizers(self) -> Any:
            groups = [{"params": self.net[0].parameters()}, {"params": self.net[3].parameters(), "lr": 0.01}]
            opt = torch.optim.SGD(groups, lr=0.1)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    monitor = LearningRateMonitor(logging_interval="step")
    _fit(TwoGroups, data, trainer_kwargs, monitor, max_epochs=2, limit_train_batches=2)
    assert monitor.history["fold_1/lr-SGD-pg0"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert monitor.history["fold_1/lr-SGD-pg1"] == pytest.approx([0.01, 0.005, 0.0025, 0.00125])
    assert "fold_1/lr-SGD" not in monitor.history


def test_lr_monitor_rejects_an_unknown_interval() -> None:
    with pytest.raises(LcvError, match=r"logging_interval='batch'.*expected 'epoch' or 'step'"):
        LearningRateMonitor(logging_interval="batch")  # type: ignore[arg-type]


# -- RichProgressBar ----------------------------------------------------------------------------------


def test_progress_bar_prints_plain_lines_when_not_a_tty(data, tiny, trainer_kwargs, capsys) -> None:
    result = _fit(tiny, data, trainer_kwargs, RichProgressBar(), limit_train_batches=2)
    out = capsys.readouterr().out.strip().splitlines()
    lines = [line for line in out if not line.startswith("schedule='auto' chose")]  # the default schedule's choice
    assert len(lines) == 2
    for epoch, line in enumerate(lines):
        loss, acc = result.metric("val_loss", epoch), result.metric("val_acc", epoch)
        assert line.startswith(f"epoch {epoch + 1}/2  train_loss ")
        assert f"val_loss {loss.mean:.4f} ± {loss.std:.4f}" in line
        assert f"val_acc {acc.mean:.4f} ± {acc.std:.4f}" in line


def test_progress_bar_reports_an_early_stop(data, tiny, trainer_kwargs, capsys) -> None:
    _fit(tiny, data, trainer_kwargs, RichProgressBar(), Timer(duration=1e-6), max_epochs=4, limit_train_batches=1)
    out = capsys.readouterr().out
    assert "Stopped after epoch 1: Timer: the time limit" in out
    assert "epoch 2/4" not in out


# -- Timer --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("00:00:01:00", 60), ("01:02:00:05", 93605), ({"minutes": 2}, 120), (timedelta(hours=1), 3600), (1.5, 1.5)],
)
def test_timer_durations(duration: Any, seconds: float) -> None:
    assert parse_duration(duration).total_seconds() == seconds


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("1:00", r"duration='1:00'.*expected 'DD:HH:MM:SS'"),
        ({"minute": 2}, r"unknown key\(s\) \['minute'\]; use weeks, days, hours, minutes"),
        (0, "must be positive"),
        ([60], "a list is not a duration"),
    ],
)
def test_timer_bad_durations(duration: Any, message: str) -> None:
    with pytest.raises(LcvError, match=message):
        Timer(duration=duration)


def test_timer_stops_after_the_epoch_the_time_ran_out(data, tiny, trainer_kwargs) -> None:
    class Slow(tiny):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            time.sleep(0.01)
            return super().training_step(batch, batch_idx)

    timer = Timer(duration=0.02)
    result = _fit(Slow, data, trainer_kwargs, timer, max_epochs=5, limit_train_batches=2)
    assert result.n_epochs == 1 and result.stopped_epoch == 0
    assert "Timer: the time limit of 0:00:00.020000 was reached" in (result.stop_reason or "")
    assert timer.time_elapsed() >= 0.1  # 5 folds x 2 batches x 10 ms: every fold finished the epoch
    assert timer.state_dict()["time_elapsed"] == pytest.approx(timer.time_elapsed())


def test_timer_keeps_counting_after_load_state_dict(data, tiny, trainer_kwargs) -> None:
    timer = Timer(duration={"seconds": 30})
    timer.load_state_dict({"time_elapsed": 31.0})
    assert timer.time_elapsed() == 31.0 and timer.time_remaining() == 0.0
    result = _fit(tiny, data, trainer_kwargs, timer, max_epochs=3, limit_train_batches=1)
    assert result.n_epochs == 1 and timer.time_elapsed() > 31.0


def test_timer_with_time_left_does_not_stop(data, tiny, trainer_kwargs) -> None:
    result = _fit(tiny, data, trainer_kwargs, Timer(duration="00:01:00:00"), limit_train_batches=1)
    assert result.n_epochs == 2 and result.stop_reason is None


# -- ModelSummary -------------------------------------------------------------------------------------


def test_model_summary_prints_once_per_fit(data, tiny, trainer_kwargs, capsys) -> None:
    summary = ModelSummary()
    _fit(tiny, data, trainer_kwargs, summary, limit_train_batches=1)
    out = capsys.readouterr().out
    assert out.count("Trainable params") == 1
    assert "net  | Sequential | 195" in out
    assert "each of the 5 folds trains its own copy" in out
    assert summary.total_parameters == summary.trainable_parameters == 8 * 16 + 16 + 16 * 3 + 3
    assert summary.summary in out


def test_model_summary_max_depth_lists_nested_layers(data, tiny, trainer_kwargs, capsys) -> None:
    summary = ModelSummary(max_depth=2)
    _fit(tiny, data, trainer_kwargs, summary, max_epochs=1, limit_train_batches=1)
    assert "net.0 | Linear" in summary.summary and "net.3 | Linear" in summary.summary
    assert "net.3 | Linear     | 51" in capsys.readouterr().out
