"""EarlyStopping on the fold mean: patience, thresholds, non-finite losses, min_epochs, unknown monitors."""

from __future__ import annotations

from typing import Any

import pytest

from lcv_config import LcvError
from lcv_core import CrossValidationTrainer, EarlyStopping


def _scripted(tiny: type, values: dict[int, list[float]]) -> type:
    """A module whose validation 'score' follows a script per fold: values[fold][epoch]."""

    class Scripted(tiny):  # type: ignore[misc, valid-type]
        def __init__(self, fold: int) -> None:
            super().__init__()
            self.fold = fold
            self.epoch = 0

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("score", values[self.fold][self.epoch])
            super().validation_step(batch, batch_idx)

        def on_validation_epoch_end(self) -> None:
            self.epoch += 1

    return Scripted


def _fit(tiny: type, data: Any, kwargs: dict[str, Any], script: dict[int, list[float]], **es: Any) -> tuple[Any, Any]:
    stopper = EarlyStopping(monitor="score", **es)
    model = _scripted(tiny, script)
    result = CrossValidationTrainer(**kwargs, callbacks=[stopper]).fit(lambda fold: model(fold), data)
    return result, stopper


FLAT = {f: [0.97, 0.9, 0.95, 0.96, 0.98, 0.98, 0.99, 1.0] for f in range(5)}


def test_patience_on_the_fold_mean(data, tiny, trainer_kwargs) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 8, "limit_train_batches": 1, "monitor": "score"}
    result, stopper = _fit(tiny, data, kwargs, FLAT, patience=2)
    # best at epoch 2 (0.9), no improvement at epochs 3 and 4 → stop after epoch 4
    assert result.n_epochs == 4
    assert result.stopped_epoch == 3 and stopper.stopped_epoch == 3
    assert "did not improve for 2 epochs" in (result.stop_reason or "")
    assert result.best_epoch == 1
    # the summary table `lcv cv` prints (and writes to summary.txt) says why the run stopped
    summary = " ".join(result.summary(print_table=False).split())
    assert f"Stopped early after epoch 4: {result.stop_reason}" in summary


def test_patience_is_judged_on_the_mean_not_on_one_fold(data, tiny, trainer_kwargs) -> None:
    # fold 0 gets worse every epoch, but the other folds improve enough: the mean keeps improving
    script = {0: [1.0, 2.0, 3.0, 4.0]} | {f: [10.0, 8.0, 6.0, 4.0] for f in range(1, 5)}
    kwargs = {**trainer_kwargs, "max_epochs": 4, "limit_train_batches": 1}
    result, stopper = _fit(tiny, data, kwargs, script, patience=1)
    assert result.n_epochs == 4 and result.stopped_epoch is None and stopper.stopped_epoch is None
    assert "Trained all 4 epochs: no early stop." in result.summary(print_table=False)


def test_min_epochs_is_respected(data, tiny, trainer_kwargs) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 8, "limit_train_batches": 1, "min_epochs": 6}
    result, _ = _fit(tiny, data, kwargs, FLAT, patience=1)
    assert result.n_epochs == 6 and result.stopped_epoch == 5


@pytest.mark.parametrize(
    ("es", "epochs", "message"),
    [
        ({"stopping_threshold": 0.92}, 2, "reached the stopping threshold 0.92 at epoch 2"),
        ({"divergence_threshold": 0.975, "patience": 10}, 5, "diverged past 0.975 at epoch 5"),
    ],
)
def test_thresholds(data, tiny, trainer_kwargs, es: dict[str, Any], epochs: int, message: str) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 8, "limit_train_batches": 1}
    result, _ = _fit(tiny, data, kwargs, FLAT, **es)
    assert result.n_epochs == epochs
    assert message in (result.stop_reason or "")


def test_max_mode(data, tiny, trainer_kwargs) -> None:
    script = {f: [0.1, 0.5, 0.4, 0.3, 0.2] for f in range(5)}
    kwargs = {**trainer_kwargs, "max_epochs": 5, "limit_train_batches": 1}
    result, stopper = _fit(tiny, data, kwargs, script, patience=2, mode="max")
    assert result.n_epochs == 4 and stopper.best == pytest.approx(0.5)


def test_nan_loss_stops_naming_fold_and_epoch(data, tiny, trainer_kwargs, capsys) -> None:
    script = {f: [1.0, 0.9, 0.8] for f in range(5)}
    script[3] = [1.0, float("nan"), 0.8]
    kwargs = {**trainer_kwargs, "max_epochs": 3, "limit_train_batches": 1, "enable_progress_bar": True}
    result, _ = _fit(tiny, data, kwargs, script, patience=5)
    assert result.n_epochs == 2
    assert result.stop_reason == "score is not finite at epoch 2 in fold_3"
    assert "Stopped after epoch 2: score is not finite at epoch 2 in fold_3" in capsys.readouterr().out


def test_nan_training_loss_stops(data, tiny, trainer_kwargs) -> None:
    # a learning rate this large makes the weights (and the validation loss) explode to NaN/inf
    stopper = EarlyStopping(monitor="val_loss", patience=100)
    result = CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 6}, callbacks=[stopper]).fit(
        tiny(lr=1e30, dropout=0.0), data
    )
    assert result.n_epochs < 6
    assert (result.stop_reason or "").startswith("val_loss is not finite at epoch ")
    assert "fold_" in (result.stop_reason or "")


def test_unknown_monitor_is_an_lcv_error_listing_the_logged_metrics(data, tiny, trainer_kwargs) -> None:
    stopper = EarlyStopping(monitor="val_los")
    with pytest.raises(
        LcvError, match=r"EarlyStopping monitors 'val_los', which no fold logged\. Did you mean 'val_loss'"
    ) as err:
        CrossValidationTrainer(**trainer_kwargs, callbacks=[stopper]).fit(tiny, data)
    assert "Logged: train_loss, val_acc, val_loss." in str(err.value)


def test_unknown_monitor_fails_at_the_first_validated_epoch(data, tiny, trainer_kwargs) -> None:
    epochs: list[int] = []

    class Count(tiny):  # type: ignore[misc, valid-type]
        def on_train_epoch_start(self) -> None:
            epochs.append(1)

    with pytest.raises(LcvError, match="Logged: train_loss, val_acc, val_loss"):
        CrossValidationTrainer(**{**trainer_kwargs, "max_epochs": 4}, callbacks=[EarlyStopping(monitor="nope")]).fit(
            Count, data
        )
    assert len(epochs) == 5  # one epoch of each fold, then the error


def test_bad_mode_is_refused() -> None:
    with pytest.raises(LcvError, match="EarlyStopping\\(mode='up'\\): expected 'min' or 'max'"):
        EarlyStopping(mode="up")  # type: ignore[arg-type]


def test_sequential_schedule_stops_on_the_fold_mean_like_interleaved(data, tiny, trainer_kwargs) -> None:
    kwargs = {**trainer_kwargs, "max_epochs": 8, "limit_train_batches": 1, "monitor": "score"}
    interleaved, _ = _fit(tiny, data, kwargs, FLAT, patience=2)
    sequential, stopper = _fit(tiny, data, {**kwargs, "schedule": "sequential"}, FLAT, patience=2)
    assert sequential.n_epochs == interleaved.n_epochs == 4
    assert sequential.stopped_epoch == 3 and stopper.stopped_epoch == 3
    assert "did not improve for 2 epochs" in (sequential.stop_reason or "")
    assert [len(h) for h in sequential.history] == [4] * 5, "histories are cut at the stop epoch"


def test_monitor_and_mode_default_to_the_trainers(data, tiny, trainer_kwargs) -> None:
    script = {f: [0.1, 0.5, 0.4, 0.3, 0.2] for f in range(5)}  # max mode: best at epoch 1, then worse
    stopper = EarlyStopping(patience=2)
    model = _scripted(tiny, script)
    kwargs = {**trainer_kwargs, "max_epochs": 5, "limit_train_batches": 1, "monitor": "score", "mode": "max"}
    result = CrossValidationTrainer(**kwargs, callbacks=[stopper]).fit(lambda fold: model(fold), data)
    assert (stopper.monitor, stopper.mode) == ("score", "max")
    assert result.n_epochs == 4 and "fold mean of score did not improve" in (result.stop_reason or "")


class _StopRecorder:
    """The two things EarlyStopping asks of a trainer: its config (monitor, mode) and ``stop``."""

    def __init__(self) -> None:
        self.config = type("Config", (), {"monitor": "score", "mode": "min"})()
        self.reasons: list[str] = []

    def stop(self, reason: str) -> None:
        self.reasons.append(reason)


def _stop_epoch(stopper: EarlyStopping, means: list[float]) -> int | None:
    """Feed the fold means epoch by epoch straight to the callback; return the epoch it asked to stop at."""
    trainer = _StopRecorder()
    for epoch, value in enumerate(means):
        stopper.on_validation_end(trainer=trainer, epoch=epoch, metrics={"cv/score_mean": value})  # type: ignore[arg-type]
        if trainer.reasons:
            return epoch
    return None


def test_warmup_epochs_are_not_counted_against_patience() -> None:
    worse = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # never improves after epoch 0
    assert _stop_epoch(EarlyStopping(monitor="score", patience=2), worse) == 2
    # epochs 0-3 are warm-up: the first counted ones are 4 and 5
    assert _stop_epoch(EarlyStopping(monitor="score", patience=2, warmup=4), worse) == 5


def test_min_delta_is_the_smallest_improvement_that_counts() -> None:
    creeping = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95]  # improves by 0.01 per epoch
    assert _stop_epoch(EarlyStopping(monitor="score", patience=2), creeping) is None
    assert _stop_epoch(EarlyStopping(monitor="score", patience=2, min_delta=0.05), creeping) == 2
    stopper = EarlyStopping(monitor="score", patience=2, min_delta=0.05, mode="max")
    assert _stop_epoch(stopper, [0.5, 0.54, 0.549, 0.7]) == 2  # +0.04 and +0.049 over the best 0.5: not enough


@pytest.mark.parametrize(
    ("option", "value"), [("patience", -3), ("warmup", -1), ("min_delta", -0.1), ("patience", float("nan"))]
)
def test_negative_settings_are_refused(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"EarlyStopping\({option}=.*expected a number >= 0"):
        EarlyStopping(**{option: value})


def test_negative_patience_in_a_config_names_the_callback_path() -> None:
    from lcv_config import ConfigError, build

    with pytest.raises(ConfigError, match="patience=-3") as info:
        build("callback", {"name": "early_stopping", "cfg": {"patience": -3}}, "callbacks[0]")
    assert info.value.path == "callbacks[0]"
