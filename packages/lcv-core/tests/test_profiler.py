"""profiler="simple" | "advanced" | a Profiler: per-fold action timings, printed and written to profiler.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.profilers import AdvancedProfiler, SimpleProfiler
from pydantic import ValidationError

from lcv_core.callbacks.base import Callback
from lcv_core.trainer import CrossValidationTrainer


class EpochWatcher(Callback):
    """Implements two per-fold hooks, so their dispatch is profiled (hooks no callback implements are skipped)."""

    def on_train_epoch_start_per_fold(self, **kwargs: Any) -> None:
        pass

    def on_validation_end_per_fold(self, **kwargs: Any) -> None:
        pass


ACTIONS = ("training_step", "backward", "optimizer_step", "validation_step", "train_dataloader_next")


def test_simple_profiler_times_every_step_of_every_fold(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = CrossValidationTrainer(
        **trainer_kwargs, profiler="simple", default_root_dir=str(tmp_path), callbacks=[EpochWatcher()]
    )
    trainer.fit(tiny, fold_data(n_folds=2, n=64, batch_size=8, val_batch_size=8))  # 4 train, 4 val batches
    assert isinstance(trainer.profiler, SimpleProfiler)
    durations = trainer.profiler.recorded_durations
    for fold in (0, 1):
        assert len(durations[f"[fold {fold}] training_step"]) == 2 * 4  # 2 epochs
        assert len(durations[f"[fold {fold}] optimizer_step"]) == 2 * 4
        assert len(durations[f"[fold {fold}] validation_step"]) == 2 * 4
        assert len(durations[f"[fold {fold}] val_dataloader_next"]) == 2 * 5  # the 5th call finds the loader empty
    assert len(durations["[Callback] on_train_epoch_start_per_fold"]) == 2 * 2  # epochs x folds
    assert "[Callback] on_before_zero_grad" not in durations  # no callback implements it: not even dispatched
    summary = (tmp_path / "profiler.txt").read_text()
    for action in ACTIONS:
        assert f"[fold 1] {action}" in summary
    assert "[Callback] on_validation_end_per_fold" in summary
    assert "[fold 0] training_step" in capsys.readouterr().out  # also printed


def test_advanced_profiler_writes_cprofile_stats(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    trainer = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 1}, profiler="advanced", default_root_dir=str(tmp_path)
    )
    trainer.fit(tiny, fold_data(n_folds=2, n=32, batch_size=8))
    assert isinstance(trainer.profiler, AdvancedProfiler)
    summary = (tmp_path / "profiler.txt").read_text()
    assert "Profile stats for: [fold 0] backward" in summary
    assert "cumulative" in summary  # cProfile's table, sorted by cumulative time


def test_a_profiler_object_is_used_as_given(tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any]) -> None:
    profiler = SimpleProfiler(extended=False)
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, profiler=profiler)
    trainer.fit(tiny, fold_data(n_folds=2, n=32, batch_size=8))
    assert trainer.profiler is profiler
    assert len(profiler.recorded_durations["[fold 1] training_step"]) == 2


def test_no_profiler_records_nothing_and_writes_no_file(
    tiny: Any, fold_data: Any, trainer_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 1}, default_root_dir=str(tmp_path))
    trainer.fit(tiny, fold_data(n_folds=2, n=32, batch_size=8))
    assert trainer.profiler is None
    assert (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "profiler.txt").exists()


@pytest.mark.parametrize(
    ("value", "message"), [("simpel", "Did you mean 'simple'"), (42, "a int is not a profiler"), ("pytorch", "Use")]
)
def test_unknown_profilers_are_refused_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        CrossValidationTrainer(profiler=value)
    assert "profiler" in str(info.value)
