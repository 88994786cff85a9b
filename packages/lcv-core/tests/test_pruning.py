"""TunerPruning: the fold mean reaches the trial every epoch; a pruned fit stops cleanly with TrialPruned."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from lcv_config import LcvError, TrialPruned
from lcv_core.callbacks.pruning import TunerPruning
from lcv_core.trainer import CrossValidationTrainer


class FakeTrial:
    """A Trial (lcv_config.protocols) that prunes once ``prune_at`` epochs were reported."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.prune_at = prune_at
        self.reports: list[tuple[float, int]] = []
        self.user_attrs: dict[str, Any] = {}

    number = 7
    params: dict[str, Any] = {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reports) >= self.prune_at

    def set_user_attr(self, key: str, value: Any) -> None:
        json.dumps(value)  # must be JSON-serialisable, as backends store it
        self.user_attrs[key] = value


def test_reports_fold_mean_every_epoch_and_stores_per_fold(tiny, data, trainer_kwargs) -> None:
    trial = FakeTrial()
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 3}, callbacks=[TunerPruning(trial)])
    result = trainer.fit(tiny, data)
    assert [step for _, step in trial.reports] == [0, 1, 2]
    assert [v for v, _ in trial.reports] == pytest.approx(result.curve("val_loss"))
    best = result.metric("val_loss")
    assert trial.user_attrs["per_fold"] == pytest.approx(best.per_fold)
    assert trial.user_attrs["std"] == pytest.approx(best.std)
    assert trial.user_attrs["best_epoch"] == result.best_epoch
    assert trial.user_attrs["epochs"] == 3


def test_pruned_fit_stops_raises_and_finalizes_logs(tiny, data, trainer_kwargs, tmp_path: Path) -> None:
    trial = FakeTrial(prune_at=2)
    pruning = TunerPruning(trial)
    trainer = CrossValidationTrainer(
        **{**trainer_kwargs, "max_epochs": 6}, callbacks=[pruning], default_root_dir=str(tmp_path)
    )
    with pytest.raises(TrialPruned, match="Trial 7 pruned by the tuner after epoch 2"):
        trainer.fit(tiny, data)
    assert len(trial.reports) == 2  # no epoch after the prune decision
    assert trainer.should_stop and "pruned" in (trainer.stop_reason or "")
    assert pruning.pruned and pruning.pruned_epoch == 1
    assert trial.user_attrs["epochs"] == 2 and len(trial.user_attrs["per_fold"]) == 5
    csv = (tmp_path / "logs" / "csv" / "metrics.csv").read_text()  # the CSV logger was flushed
    assert "cv/val_loss_mean" in csv.splitlines()[0]
    assert len(csv.strip().splitlines()) >= 3


def test_unknown_monitor_names_what_was_logged(tiny, data, trainer_kwargs) -> None:
    trainer = CrossValidationTrainer(**trainer_kwargs, callbacks=[TunerPruning(FakeTrial(), monitor="val_los")])
    with pytest.raises(LcvError, match="TunerPruning monitors 'val_los'.*Did you mean 'val_loss'"):
        trainer.fit(tiny, data)


def test_bad_mode_is_rejected() -> None:
    with pytest.raises(LcvError, match="expected 'min' or 'max'"):
        TunerPruning(FakeTrial(), mode="lowest")


class BackendPruned(Exception):  # noqa: N818 - named as a backend names it
    """A backend's own pruned exception."""


class BackendTrial(FakeTrial):
    """A trial whose backend names its pruned exception."""

    pruned_exception = BackendPruned


def test_prune_raises_the_backends_exception_that_is_also_lcvs(tiny, data, trainer_kwargs) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 4}, callbacks=[TunerPruning(BackendTrial(1))])
    with pytest.raises(BackendPruned, match="Trial 7 pruned") as caught:
        trainer.fit(tiny, data)
    assert isinstance(caught.value, TrialPruned)
    copy = pickle.loads(pickle.dumps(caught.value))  # a class made at run time still crosses processes
    assert type(copy) is type(caught.value) and copy.args == caught.value.args


def test_a_trial_without_a_backend_exception_gets_lcvs(tiny, data, trainer_kwargs) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 4}, callbacks=[TunerPruning(FakeTrial(1))])
    with pytest.raises(TrialPruned) as caught:
        trainer.fit(tiny, data)
    assert type(caught.value) is TrialPruned
